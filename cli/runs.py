"""`ledger-sync` commands that follow syncs: runs (history), status, cancel, errors.

The same views as the API's routes (`--json`: one JSON object, that route's shape), read
from the run records, so a sync shows alike whichever process ran it. A sync id is found
without its vendor; an unknown one is exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

EXIT_USAGE = 2
EXIT_NOT_ACTIVE = 3


def add_commands(commands: Any, database: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
    """Register the run commands; `database()` makes the configured (or embedded) database available."""

    def command(name: str, help_text: str, handler: Callable[[Any, argparse.Namespace], int],
                by_sync_id: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        if by_sync_id:
            parser.add_argument("sync_id", metavar="SYNC_ID")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

        def run(args: argparse.Namespace) -> int:
            from flows.database import get_store

            with database():
                return handler(get_store(), args)

        parser.set_defaults(handler=run)
        return parser

    history = command("runs", "a vendor's sync history, newest first", _runs, by_sync_id=False)
    history.add_argument("--vendor", required=True)
    history.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    command("status", "where a sync is: state, steps, statistics", _known(_status))
    command("cancel", "cancel a queued or running sync (it stops after its current batch)", _known(_cancel))
    command("errors", "the documents a sync rejected, with the field and the reason", _known(_errors))


def unknown_sync(sync_id: str) -> int:
    print(f"ledger-sync: unknown sync id {sync_id!r}", file=sys.stderr)
    return EXIT_USAGE


def _known(handler: Callable[[Any, Any, argparse.Namespace], int]) -> Callable[[Any, argparse.Namespace], int]:
    """The handler gets the run record; an unknown sync id stops here."""
    def run(store: Any, args: argparse.Namespace) -> int:
        record = store.runs.get(args.sync_id)
        return unknown_sync(args.sync_id) if record is None else handler(store, record, args)
    return run


def _emit(document: dict[str, Any], as_json: bool, lines: Callable[[], list[str]]) -> None:
    print(json.dumps(document, default=str) if as_json else "\n".join(lines()))


def _runs(store: Any, args: argparse.Namespace) -> int:
    from flows.runs import run_view

    if args.limit < 1:
        print("ledger-sync: --limit takes a positive number", file=sys.stderr)
        return EXIT_USAGE
    views = [run_view(run) for run in store.runs.recent(args.vendor, args.limit)]

    def lines() -> list[str]:
        if not views:
            return [f"{args.vendor}: no syncs yet"]
        return [f"{view['syncId']}  {view['state']:<10} {view['startedAt']}  {_took(view)}  "
                f"{view['stats']['total']['scanned']:,} documents, {view['stats']['total']['errors']:,} rejected"
                for view in views]

    _emit({"vendorId": args.vendor, "runs": views}, args.json, lines)
    return 0


def _status(store: Any, run: Any, args: argparse.Namespace) -> int:
    from flows.runs import run_view

    view = run_view(run)

    def lines() -> list[str]:
        total = view["stats"]["total"]
        shown = [f"{view['syncId']} ({view['vendorId']}): {view['state']}, {view['progress']['percent']:.0f}%  "
                 f"{_took(view)}", "  " + ", ".join(f"{key} {value}" for key, value in total.items())]
        shown += [f"  {step['label']:<34} {step['state']:<10} {step['processed']:,}/{step['total']:,}"
                  for step in view["steps"]]
        if view["error"]:
            shown.append(f"  error: {view['error']}")
        if total["errors"]:
            shown.append(f"  see `ledger-sync errors {view['syncId']}`")
        return shown

    _emit(view, args.json, lines)
    return 0


def _cancel(store: Any, run: Any, args: argparse.Namespace) -> int:
    """Flag the run: its flow stops after the current batch. One no process has claimed yet is settled here."""
    from ledger.clock import utc_now
    from ledger.sync_run import RunState

    flagged = store.runs.request_cancel(run.sync_id, run.vendor_id, utc_now()) if run.active else None
    if flagged is None:
        current = store.runs.get(run.sync_id) or run
        result = {"success": False, "syncId": run.sync_id, "state": current.state.value,
                  "message": f"This sync is not running (it is {current.state.value})."}
    elif flagged.owner is None and flagged.flow_run_id is None:
        settled = store.runs.close(flagged.closed(RunState.CANCELLED, None, utc_now()), flow_run_id=None)
        result = {"success": settled is not None, "syncId": run.sync_id, "state": RunState.CANCELLED.value,
                  "message": "The sync was cancelled before it started."}
    else:
        result = {"success": True, "syncId": run.sync_id, "state": RunState.CANCELLING.value,
                  "message": "Cancelling: the sync stops after its current batch."}
    _emit(result, args.json, lambda: [f"{run.sync_id}: {result['message']}"])
    return 0 if result["success"] else EXIT_NOT_ACTIVE


def _errors(store: Any, run: Any, args: argparse.Namespace) -> int:
    from flows.runs import rejection_view

    rows = [rejection_view(record) for record in store.rejections.of_run(run.sync_id, run.vendor_id)]

    def lines() -> list[str]:
        if not rows:
            return [f"{run.sync_id}: no document was rejected"]
        return [f"{row['sourceType']:<16} {row['number'] or '—':<14} id {row['sourceId']:<26} {row['field'] or '—'}: "
                f"{row['reason']}" for row in rows]

    _emit({"syncId": run.sync_id, "errors": rows}, args.json, lines)
    return 0


def _took(view: dict[str, Any]) -> str:
    return "" if view["durationMs"] is None else f"{view['durationMs'] / 1000:.1f}s"
