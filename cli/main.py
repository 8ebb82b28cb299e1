"""`ledger-sync`: run syncs, read the books, load demo data, start the stack.

Machine-readable output (`--json`) is one JSON object on stdout; everything
else (progress bar, logs) goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from datetime import date
from typing import Any

from cli.books import add_commands as add_book_commands
from cli.runs import add_commands as add_run_commands
from cli.runs import unknown_sync
from flows.settings import get_settings
from ledger.kinds import kind_steps

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ALREADY_RUNNING = 3
DEMO_VENDORS = ["acme-traders", "bluebird-cafe"]


def main(argv: list[str] | None = None) -> int:
    from flows.logs import use_log_format

    use_log_format()  # before any Prefect logging; the stack's processes inherit it
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return args.handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger-sync", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")

    up = commands.add_parser("up", help="start the whole stack on this machine (database, Prefect, API)")
    up.add_argument("--port", type=int, default=None,
                    help="API and web UI port (default 4000; a taken default is replaced by a free port)")
    up.add_argument("--prefect-port", type=int, default=None,
                    help="Prefect server port (default LEDGER_PREFECT_PORT, else 4200; a taken default is "
                         "replaced by a free port, an explicit one is not)")
    up.add_argument("--no-demo", action="store_true", help="do not load demo data")
    up.add_argument("--dev", action="store_true",
                    help="serve the development routes: GET /api/dev/token gives a token for ANY vendor without "
                         "authentication (the web UI's vendor picker). Demo use only")
    up.add_argument("--watch", action="store_true",
                    help="also run the continuous sync: every change of the source collections is posted within "
                         "seconds (ledger-sync watch)")
    up.set_defaults(handler=_up)

    sync = commands.add_parser("sync", help="sync one vendor in the foreground")
    sync.add_argument("--vendor", required=True)
    sync.add_argument("--from", dest="date_from", type=_date, help="first document date (YYYY-MM-DD, inclusive)")
    sync.add_argument("--to", dest="date_to", type=_date, help="last document date (YYYY-MM-DD, inclusive)")
    sync.add_argument("--types", help="comma-separated steps (default all): " + ",".join(kind_steps()))
    sync.add_argument("--full", action="store_true", help="reconcile everything, detecting hard deletes")
    sync.add_argument("--resume", metavar="SYNC_ID", help="resume an interrupted sync from its last checkpoint")
    sync.add_argument("--json", action="store_true", help="print the final statistics as one JSON object")
    sync.set_defaults(handler=_sync)

    watch = commands.add_parser("watch", help="post every change of the source collections within seconds "
                                              "(a change-stream watcher; stops on Ctrl-C or SIGTERM)")
    watch.add_argument("--window", type=float, default=0.3,
                       help="seconds to gather changes into one micro-batch per vendor (default 0.3)")
    watch.add_argument("--for", dest="stop_after", type=float, default=None, metavar="SECONDS",
                       help="stop after this many seconds (default: run until stopped)")
    watch.set_defaults(handler=_watch)

    add_book_commands(commands, _database)
    add_run_commands(commands, _database)

    token = commands.add_parser("token", help="print a development token for a vendor")
    token.add_argument("--vendor", required=True)
    token.add_argument("--ttl", type=int, default=8 * 3600, help="lifetime in seconds (default 8 h)")
    token.set_defaults(handler=_token)

    demo = commands.add_parser("demo", help="load a realistic demo data set")
    demo.add_argument("--vendors", default=",".join(DEMO_VENDORS), help="comma-separated vendor ids")
    demo.add_argument("--documents", type=int, default=400, help="documents per vendor (default 400)")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(handler=_demo)
    return parser


def _date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


@contextlib.contextmanager
def _database():
    """The configured database, or the embedded one (started here if no process of the project runs it)."""
    settings = get_settings()
    if settings.mongodb_uri:
        yield
        return
    from cli.embedded_db import EmbeddedDatabase

    server = EmbeddedDatabase(settings.ledger_home / "db", settings.embedded_state_file)
    server.start()
    try:
        yield
    finally:
        server.stop()


def _use_prefect() -> None:
    """Point this process at a Prefect server, before Prefect is imported (it reads its settings then):
    PREFECT_API_URL; else the stack's when `ledger-sync up` runs (CLI syncs show in its UI); else this home's
    background server, started if none runs, held until this process exits and stopped by itself once unused
    for LEDGER_PREFECT_IDLE_STOP_SECONDS (cli/prefect_background.py)."""
    settings = get_settings()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if os.environ.get("PREFECT_API_URL"):
        return
    try:
        stack = json.loads((settings.ledger_home / "stack.json").read_text())
        os.kill(int(stack["pid"]), 0)
        os.environ["PREFECT_API_URL"] = stack["prefectApiUrl"]
        return
    except (OSError, ValueError, KeyError):
        pass
    from cli import prefect_background

    os.environ.setdefault("PREFECT_HOME", str(prefect_background.Paths(settings.ledger_home).prefect_home))
    os.environ["PREFECT_API_URL"] = prefect_background.hold(settings.ledger_home,
                                                            settings.ledger_prefect_idle_stop_seconds)


def _watch(args) -> int:
    """Run the watcher in the foreground. SIGTERM or Ctrl-C stops it after the micro-batch it is
    posting: nothing is left half-done, and the next watcher goes on from its saved token."""
    import signal

    if args.window <= 0 or (args.stop_after is not None and args.stop_after <= 0):
        print("ledger-sync: --window and --for take a positive number of seconds", file=sys.stderr)
        return EXIT_USAGE
    try:
        _use_prefect()
    except RuntimeError as error:  # the background Prefect server did not start: its log says why
        print(f"ledger-sync: {error}", file=sys.stderr)
        return EXIT_FAILED
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with _database():
        import threading

        from flows.watch import request_stop, watch_sources

        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["totals"] = watch_sources(window_seconds=args.window, stop_after_seconds=args.stop_after)
            except BaseException as error:  # noqa: BLE001 - reported below, in the main thread
                outcome["error"] = error

        # The flow runs in a thread of its own: the main thread keeps the signals, so Prefect's
        # SIGTERM handler (which aborts the run where it stands) never replaces the graceful stop.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: request_stop())
        watcher = threading.Thread(target=run, name="watcher")
        with contextlib.redirect_stdout(sys.stderr):
            watcher.start()
            while watcher.is_alive():
                watcher.join(0.5)
    if "error" in outcome:
        print(f"ledger-sync: the watcher stopped: {outcome['error']}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(outcome["totals"]))
    return 0


def _sync(args) -> int:
    from ledger.sync_run import SyncParameters

    try:
        parameters = SyncParameters(date_from=args.date_from, date_to=args.date_to, types=args.types, full=args.full)
    except ValueError as error:
        print(f"ledger-sync: {_first_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with _database():
        from flows import progress
        from flows.database import get_store
        from flows.runs import open_run, summary_view
        from ledger.store import SyncAlreadyRunning

        resumed = get_store().runs.get(args.resume, args.vendor) if args.resume else None
        if args.resume and resumed is None:
            return unknown_sync(args.resume)
        if resumed is not None and not resumed.active and not resumed.resumable:
            print(f"ledger-sync: sync {args.resume} is {resumed.state}; only a failed, crashed or cancelled sync "
                  "can be resumed", file=sys.stderr)
            return EXIT_USAGE
        bar = _ProgressBar() if sys.stderr.isatty() else None
        if bar:
            progress.add_listener(bar)
        try:
            sync_id = args.resume
            if sync_id is None:  # claimed before the flow starts: a vendor already syncing is refused at once
                settings = get_settings()
                sync_id = open_run(get_store(), args.vendor, parameters, settings.ledger_incremental_overlap_seconds,
                                   settings.ledger_stale_after_seconds).sync_id
            try:
                _use_prefect()  # after the claim: a refused sync never waits for a Prefect server to start
            except RuntimeError as error:  # the background server did not start: its log says why
                if args.resume is None:
                    _settle_unstarted(sync_id, f"the sync could not start: {error}")
                raise
            from flows.sync_vendor import summary_of, sync_vendor_ledger

            with contextlib.redirect_stdout(sys.stderr), (bar or contextlib.nullcontext()):
                # No Prefect slot: the run claimed above is the one-sync-per-vendor guarantee, and a slot a killed
                # CLI sync left on the (long-lived) background server would hold up the next sync for 5 s.
                summary = summary_of(sync_vendor_ledger(args.vendor, sync_id=sync_id, prefect_slot=False,
                                                        return_state=True))
        except SyncAlreadyRunning as running:
            print(f"ledger-sync: a sync is already running for {args.vendor}: {running.sync_id}", file=sys.stderr)
            if args.json:
                print(json.dumps({"syncId": running.sync_id, "vendorId": args.vendor, "state": "running"}))
            return EXIT_ALREADY_RUNNING
        except Exception as error:  # noqa: BLE001 - reported below from the run record
            # the resumed run, or the one this sync opened (the vendor's newest)
            found = get_store().runs.get(args.resume) if args.resume else None
            latest = [found] if found else get_store().runs.recent(args.vendor, limit=1)
            summary = summary_view(latest[0]) if latest else {"vendorId": args.vendor, "state": "failed",
                                                             "error": str(error)}
            if summary.get("state") != "failed":
                summary = {**summary, "state": "failed", "error": summary.get("error") or str(error)}
        finally:
            if bar:
                progress.remove_listener(bar)
        _report(summary, args.json)
        return 0 if summary["state"] in ("completed", "cancelled") else EXIT_FAILED


def _settle_unstarted(sync_id: str, message: str) -> None:
    """Fail a run this command opened but could not start, so the vendor's next sync is not refused."""
    from flows.database import get_store
    from ledger.clock import utc_now
    from ledger.sync_run import RunState

    store = get_store()
    run = store.runs.get(sync_id)
    if run is not None and run.active:
        store.runs.close(run.closed(RunState.FAILED, message, utc_now()))


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, default=str))
        return
    total = summary.get("stats", {}).get("total", {})
    print(f"{summary.get('syncId', '?')}: {summary['state']}", file=sys.stderr)
    if total:
        print("  " + ", ".join(f"{k} {v}" for k, v in total.items()), file=sys.stderr)
    if summary.get("durationMs") is not None:
        print(f"  took {summary['durationMs'] / 1000:.1f}s", file=sys.stderr)
    if summary.get("error"):
        print(f"  error: {summary['error']}", file=sys.stderr)
    if total.get("errors"):
        print(f"  {total['errors']} document(s) rejected: see `ledger-sync errors {summary.get('syncId', '?')}`",
              file=sys.stderr)


class _ProgressBar:
    """A rich progress bar fed by the flow's progress events, counting the rejected documents. While it
    shows, Prefect's console log lines (a rejection's warning) are printed above it, not through it."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column

        # The step's message gives way on a narrow terminal; the percentage and the rejections never do.
        self.progress = Progress(TextColumn("{task.description}", table_column=Column(max_width=40, no_wrap=True)),
                                 BarColumn(), TextColumn("{task.percentage:>5.1f}%", table_column=Column(min_width=6)),
                                 TextColumn("{task.fields[rejected]}", table_column=Column(no_wrap=True)),
                                 TimeElapsedColumn(), console=Console(stderr=True))
        self.task = self.progress.add_task("Starting", total=100, rejected="")
        self._consoles: list[tuple[Any, Any]] = []  # (Prefect console handler, the console it had)

    def __call__(self, event: str, payload: dict) -> None:
        if "percent" in payload:
            rejected = (payload.get("stats") or {}).get("errors", 0)
            self.progress.update(self.task, completed=payload["percent"], description=payload.get("message", ""),
                                 rejected=f"{rejected:,} rejected" if rejected else "")

    def __enter__(self):
        import logging

        from prefect.logging.handlers import PrefectConsoleHandler

        self.progress.start()
        loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                          if isinstance(logger, logging.Logger))]
        for handler in {h for logger in loggers for h in logger.handlers if isinstance(h, PrefectConsoleHandler)}:
            self._consoles.append((handler, handler.console))
            handler.console = self.progress.console
        return self

    def __exit__(self, *exc):
        for handler, console in self._consoles:
            handler.console = console
        self.progress.stop()


def _token(args) -> int:
    from api.auth import issue_token
    from api.settings import ConfigurationError, get_api_settings

    os.environ.setdefault("LEDGER_ENV", "development")  # the same local secret `ledger-sync up` uses
    try:
        secret = get_api_settings().resolve_jwt_secret()
    except ConfigurationError as error:
        print(f"ledger-sync: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        print(issue_token(args.vendor, secret, ttl_seconds=args.ttl))
    except ValueError as error:  # the API would refuse a token for it: never print one
        print(f"ledger-sync: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _demo(args) -> int:
    vendors = [vendor.strip() for vendor in args.vendors.split(",") if vendor.strip()]
    with _database():
        from cli.demo_data import load
        from flows.database import get_store

        counts = load(get_store().db, vendors, documents=args.documents, seed=args.seed)
    print(f"demo data for {', '.join(vendors)}: " + ", ".join(f"{n} new in {c}" for c, n in sorted(counts.items())),
          file=sys.stderr)
    return 0


def _up(args) -> int:
    from cli.stack import run_stack

    def load_demo_and_sync(stack) -> None:
        """Demo data for two vendors and a first sync of each, through the API like a user's click."""
        from pymongo import MongoClient

        from cli.demo_data import load

        client: MongoClient[dict[str, Any]]
        with MongoClient(stack.mongodb_uri) as client:
            counts = load(client[get_settings().mongodb_db], DEMO_VENDORS, documents=400)
        print(f"demo data     {sum(counts.values())} new documents for {', '.join(DEMO_VENDORS)}", file=sys.stderr)
        for vendor in DEMO_VENDORS:
            print(f"first sync    {vendor}: {_trigger_sync(stack.app_url, stack.token_for(vendor))}", file=sys.stderr)

    prefect_port, explicit = args.prefect_port, args.prefect_port is not None
    if prefect_port is None and os.environ.get("LEDGER_PREFECT_PORT"):
        try:
            prefect_port, explicit = int(os.environ["LEDGER_PREFECT_PORT"]), True
        except ValueError:
            print(f"ledger-sync: LEDGER_PREFECT_PORT is not a port number: {os.environ['LEDGER_PREFECT_PORT']!r}",
                  file=sys.stderr)
            return EXIT_USAGE
    return run_stack(port=args.port or 4000, port_explicit=args.port is not None,
                     on_ready=None if args.no_demo else load_demo_and_sync,
                     prefect_port=prefect_port or 4200, prefect_port_explicit=explicit,
                     token_vendor=DEMO_VENDORS[0] if not args.no_demo else None, dev=args.dev, watch=args.watch)


def _trigger_sync(app_url: str, token: str) -> str:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{app_url}/api/ledger/sync-data", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["syncId"]
    except urllib.error.HTTPError as error:  # 409: one is running already
        return json.loads(error.read()).get("message", str(error))


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return str(first.get("msg", error)).removeprefix("Value error, ")
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
