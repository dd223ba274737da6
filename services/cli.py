"""trailpay's command line: one entry point for every process and operator task."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer

from trailpay.settings import Settings

app = typer.Typer(help="trailpay: event-sourced partner commissions.", no_args_is_help=True)
audit = typer.Typer(help="Audit the books.")
plans = typer.Typer(help="Plan documents.")
app.add_typer(audit, name="audit")
keys = typer.Typer(help="Bearer API keys (stored hashed).")
app.add_typer(plans, name="plans")
app.add_typer(keys, name="keys")


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not settings.database_url:
        typer.echo("DATABASE_URL is not set (or run `trailpay dev` for the embedded default)",
                   err=True)
        raise typer.Exit(2)
    return settings


def _serve(run: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    settings = _settings()
    if settings.gc_young_threshold:
        # A batch of 10,000 records allocates hundreds of thousands of objects that live
        # until the batch ends; at Python's default (700) the collector ran so often,
        # re-scanning the partners' long-lived state, that it cost a third of the
        # consumers' CPU (accrual 17.0 -> 12.4 s, ledger 10.0 -> 6.6 s at 50,000). At
        # 50,000 each mid-batch collection still took some 17 ms, 0.6-0.7 s of CPU per
        # process per benchmark run; at 300,000 there are none once the service runs.
        gc.set_threshold(settings.gc_young_threshold, 20, 100)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    loop_factory = None
    if settings.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # not built for this platform (Windows): the standard loop
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


@app.command()
def ledger() -> None:
    """Run the ledger service (trailpay.events -> journal -> trailpay.ledger)."""
    from services.ledger.main import run

    _serve(run)


@app.command()
def accrual() -> None:
    """Run the accrual service (trailpay.ledger -> postings, balances)."""
    from services.accrual.main import run

    _serve(run)


@app.command()
def gateway() -> None:
    """Run the HTTP gateway."""
    from services.gateway.main import run

    _serve(run)


@app.command()
def migrate() -> None:
    """Create the database if needed and upgrade its schema to the latest revision."""
    from trailpay.adapters.db import ensure_database, migrate_sync

    settings = _settings()
    asyncio.run(ensure_database(settings.async_database_url))
    migrate_sync(settings)
    typer.echo("database schema is up to date")


@audit.command("verify")
def audit_verify() -> None:
    """Walk every journal stream's hash chain; exit 1 if any row was tampered with."""
    from trailpay.adapters.db import create_engine
    from trailpay.adapters.journal_store import verify

    settings = _settings()

    async def main() -> dict[str, int | None]:
        engine = create_engine(settings)
        async with engine.connect() as conn:
            result = await verify(conn)
        await engine.dispose()
        return result

    result = asyncio.run(main())
    broken = {s: p for s, p in result.items() if p is not None}
    for stream, pos in sorted(result.items()):
        typer.echo(f"{stream}: {'intact' if pos is None else f'BROKEN at position {pos}'}")
    if broken:
        raise typer.Exit(1)


@app.command()
def rebuild(check: bool = typer.Option(False, "--check",
                                       help="Compare with the live balances and monthly sums; exit 1 on any "
                                            "difference."),
            workers: int = typer.Option(0, help="Processes for the fold (0: one per core)")) -> None:
    """Replay the journal into fresh in-memory projections (same fold as the accrual service)."""
    from trailpay.adapters import rebuild as rebuilding
    from trailpay.adapters.db import create_engine

    settings = _settings()

    async def main() -> rebuilding.Rebuild:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:  # one snapshot for entries and live balances
                await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return await rebuilding.rebuild(conn, check=check, workers=workers or None)
        finally:
            await engine.dispose()

    r = asyncio.run(main())
    typer.echo(f"rebuilt {r.events} journal events ({r.entries} entries, {r.applied} applied, "
               f"{r.refused} refused, {r.groups} posting groups, {len(r.balances)} balance rows) "
               f"in {r.seconds:.2f}s: {r.events_per_s:,.0f} events/s")
    if check:
        for m in r.mismatches or []:
            typer.echo(f"JOURNAL {m}")
        for key, rebuilt, live in r.differences or []:
            typer.echo(f"DIFFERS {' '.join(map(str, key))}: rebuilt {rebuilt} live {live}")
        if r.mismatches or r.differences:
            raise typer.Exit(1)
        typer.echo("every journal body gives the entries folded, and balances and monthly sums "
                   "equal the live projections to the cent")


def _with_conn(work):
    """Run work(conn) in one committed transaction against DATABASE_URL."""
    from trailpay.adapters.db import create_engine

    settings = _settings()

    async def main():
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@app.command()
def whatif(
    candidate: Path = typer.Argument(..., exists=True, dir_okay=False,
                                     help="The candidate plan version, YAML or JSON"),
    from_: str = typer.Option(None, "--from", help="First day, YYYY-MM-DD (default: all history)"),
    to: str = typer.Option(None, "--to", help="Last day, included (default: all history)"),
    partners: str = typer.Option(None, "--partners", help="Comma-separated partner ids"),
    type_: str = typer.Option(None, "--type", help="Every partner of this type"),
    workers: int = typer.Option(0, help="Processes for the fold (0: one per core, at most 4)"),
) -> None:
    """Replay the recorded facts under a candidate plan; actual against candidate. Writes
    only to the simulation tables (never postings, balances or payouts)."""
    import secrets
    from datetime import date

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from trailpay.adapters import simulation_store
    from trailpay.adapters.db import create_engine
    from trailpay.adapters.plan_documents import read_plan_document
    from trailpay.core.plans import PlanError, parse_plan
    from trailpay.core.whatif import summary

    settings = _settings()
    try:
        doc = read_plan_document(candidate.read_bytes(), "yaml" if candidate.suffix.lower()
                                 in (".yaml", ".yml") else "json")
        plan = parse_plan(doc)
        start, end = simulation_store.period(date.fromisoformat(from_) if from_ else None,
                                             date.fromisoformat(to) if to else None)
    except PlanError as exc:
        typer.echo(f"{candidate}: {exc.path}: {exc.why}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"--from/--to: {exc}", err=True)
        raise typer.Exit(2) from None
    names = [p.strip() for p in partners.split(",") if p.strip()] if partners else None
    console = Console()

    async def main():
        engine = create_engine(settings)
        try:
            async with engine.begin() as conn:
                types = await simulation_store.chosen_partners(conn, names, type_, plan.plan_id)
                sim_id = f"sim-{secrets.token_hex(8)}"
                await simulation_store.create(conn, sim_id, "whatif", {
                    "candidate": doc, "from": from_, "to": to, "partners": sorted(types),
                    "type": type_, "via": "cli"})
            with Progress("[progress.description]{task.description}", BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                          transient=True) as bar:
                task = bar.add_task(f"replaying {len(types)} partners", total=None)
                outcome = await simulation_store.execute(
                    engine, settings.asyncpg_dsn, sim_id, {p: plan for p in types}, types,
                    start, end, workers or max(1, min(os.cpu_count() or 1, 4)),
                    total=lambda n: bar.update(task, total=n),
                    progress=lambda k: bar.advance(task, k))
            return sim_id, outcome
        finally:
            await engine.dispose()

    try:
        sim_id, outcome = asyncio.run(main())
    except PlanError as exc:
        typer.echo(f"{exc.path}: {exc.why}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"what-if {sim_id}: {plan.plan_id} v{plan.version}, "
                        f"{outcome.entries:,} entries in {outcome.seconds:.2f}s")
    for col in ("level", "key", "cur", "cost actual", "cost candidate", "difference",
                "revenue", "share actual", "share candidate"):
        table.add_column(col, justify="right" if col not in ("level", "key") else "left")
    items = summary(outcome.rows)
    shown = [i for i in items if i["level"] != "partner"] + (
        [i for i in items if i["level"] == "partner"] if len(items) <= 60 else [])
    for i in shown:
        cost, revenue = i["figures"]["cost"], i["figures"].get("revenue", {}).get("actual", "")
        table.add_row(i["level"], i["key"], i["currency"], f"{cost['actual']}",
                      f"{cost['candidate']}", f"{cost['difference']}", f"{revenue}",
                      f"{i['cost_share']['actual'] or ''}", f"{i['cost_share']['candidate'] or ''}")
    console.print(table)
    typer.echo(f"{outcome.applied:,} applied, {outcome.refused:,} refused; every figure: "
               f"GET /v1/simulations/{sim_id} (JSON, or CSV with Accept: text/csv)")


@plans.command("publish")
def plans_publish(path: Path = typer.Argument(..., exists=True, dir_okay=False,
                                             help="A plan version, YAML or JSON")) -> None:
    """Publish a plan version (journaled). The same document again changes nothing."""
    from trailpay.adapters import plan_store
    from trailpay.adapters.plan_documents import read_plan_document
    from trailpay.core.plans import PlanError

    kind = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        doc = read_plan_document(path.read_bytes(), kind)
        published = _with_conn(lambda c: plan_store.publish_plan(c, doc))
        created, plan = published.created, published.plan
    except plan_store.RetroactiveNeeded as exc:
        typer.echo(f"{path}: retroactive: it would re-rate {exc} already recorded; publish it "
                   "with PUT /v1/plans/{plan_id}/versions/{n}?retroactive=true", err=True)
        raise typer.Exit(1) from None
    except PlanError as exc:
        typer.echo(f"{path}: {exc.path}: {exc.why}", err=True)
        raise typer.Exit(2) from None
    except plan_store.VersionConflict as exc:
        typer.echo(f"{path}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"plan {plan.plan_id} version {plan.version} (from {plan.effective_from}): "
               f"{'published' if created else 'already published, unchanged'}")


@keys.command("create")
def keys_create(
    name: str = typer.Argument(..., help="Who the key is for"),
    scope: list[str] = typer.Option(..., "--scope", "-s", help="Repeat for several scopes"),
    partner: str | None = typer.Option(None, "--partner", help="Bind the key to one partner"),
) -> None:
    """Create a key; its token is printed once and never stored."""
    from trailpay.adapters import api_keys

    try:
        key, token = _with_conn(lambda c: api_keys.create(c, name, scope, partner))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"key {key.key_id} ({', '.join(key.scopes)}"
               f"{', partner ' + partner if partner else ''})\n{token}")


@keys.command("list")
def keys_list() -> None:
    from trailpay.adapters import api_keys

    for k in _with_conn(api_keys.list_keys):
        state = "revoked" if k.revoked else "active"
        typer.echo(f"{k.key_id}  {k.name:<20} {state:<8} {','.join(k.scopes)}"
                   f"{'  partner=' + k.partner_id if k.partner_id else ''}")


@keys.command("revoke")
def keys_revoke(key_id: str) -> None:
    from trailpay.adapters import api_keys

    if not _with_conn(lambda c: api_keys.revoke(c, key_id)):
        typer.echo(f"no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@app.command()
def dev(demo: bool = typer.Option(False, "--demo", envvar="DEMO",
                                  help="Load the demo programme and print a statement.")) -> None:
    """Start the embedded default: broker, PostgreSQL and the three services."""
    from services.devserver import run_dev

    sys.exit(run_dev(Settings(), demo=demo, root=Path.cwd()))


if __name__ == "__main__":
    app()
