"""`ledger-sync` commands that read and guard the books: trial balance, ledger, reports, history,
export, verify, periods.

Each has `--json` (one JSON object on stdout, the shape of its API route) and a readable
table otherwise. An unknown vendor, a bad date or a refused close is exit 2 with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_commands(commands: Any, database: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
    """Register the books' commands; `database()` makes the configured (or embedded) database available."""

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("--vendor", required=True)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

        def run(args: argparse.Namespace) -> int:
            with database():
                return handler(args)

        parser.set_defaults(handler=run)
        return parser

    balance = command("trial-balance", "the vendor's trial balance (as of a day)", _trial_balance)
    balance.add_argument("--as-of", dest="as_of", type=day, help="entries dated on or before this day (YYYY-MM-DD)")
    command("verify", "walk the books' hash chain and name the first bad entry", _verify)
    close = command("close", "close the books through a day", _close)
    close.add_argument("--through", type=day, required=True)
    reopen = command("reopen", "move the close date back, for a reason", _reopen)
    reopen.add_argument("--through", type=day, required=True)
    reopen.add_argument("--reason", required=True)
    command("periods", "every close and reopen of the books", _periods)
    ledger = command("ledger", "an account's lines with the running balance (all pages)", _ledger)
    ledger.add_argument("--account", required=True)
    _period_arguments(ledger)
    report = command("report", "profit and loss, balance sheet or aging", _report)
    report.add_argument("name", choices=["pnl", "balance-sheet", "aging"])
    _period_arguments(report)
    report.add_argument("--as-of", dest="as_of", type=day, help="balance sheet and aging: as of this day")
    report.add_argument("--side", choices=["receivable", "payable"], help="aging: which side")
    history = command("history", "every entry posted for a document, and why each reversal was", _history)
    history.add_argument("--type", required=True, help="sales_invoice, purchase_invoice or expense")
    history.add_argument("--id", required=True)
    export = command("export", "the books as Beancount or CSV", _export)
    export.add_argument("--format", choices=["beancount", "csv"], required=True)
    _period_arguments(export)
    export.add_argument("-o", dest="output", help="write to this file (default: stdout)")


def _period_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="day_from", type=day, help="first day (YYYY-MM-DD)")
    parser.add_argument("--to", dest="day_to", type=day, help="last day (YYYY-MM-DD)")


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


@contextlib.contextmanager
def _store_of(vendor_id: str) -> Iterator[Any]:
    """The store, once the vendor is known to it (source documents or books); else `UnknownVendor`."""
    from flows.database import get_store

    store = get_store()
    if not store.knows_vendor(vendor_id):
        raise UnknownVendor(vendor_id)
    yield store


class UnknownVendor(Exception):
    pass


def _vendor_command(handler: Callable[[Any, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            with _store_of(args.vendor) as store:
                return handler(store, args)
        except UnknownVendor:
            print(f"ledger-sync: unknown vendor {args.vendor!r}: it has no source documents and no books",
                  file=sys.stderr)
            return EXIT_USAGE
    return run


def _print(document: dict[str, Any], as_json: bool, table: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(document, default=str))
    else:
        table()


def _money(amount: Decimal | str) -> str:
    return f"{Decimal(amount):,.2f}"


@_vendor_command
def _trial_balance(store: Any, args: argparse.Namespace) -> int:
    from ledger.reports import account_views, trial_balance_document
    from ledger.verification import trial_balance

    balances = store.books.current(args.vendor) if args.as_of is None else store.books.as_of(args.vendor, args.as_of)
    tb = trial_balance(balances)
    accounts = account_views(tb.balances, store.accounts.chart(args.vendor))
    document = trial_balance_document(args.vendor, tb)

    def table() -> None:
        from rich.console import Console
        from rich.table import Table

        title = f"Trial balance — {args.vendor}" + (f", as of {args.as_of}" if args.as_of else "")
        view = Table(title=title)
        for column in ("Code", "Account"):
            view.add_column(column)
        for column in ("Debit", "Credit"):
            view.add_column(column, justify="right")
        for key, amount in tb.balances.items():
            view.add_row(accounts[key]["code"], f"{accounts[key]['name']} ({key})",
                         _money(amount) if amount > 0 else "", _money(-amount) if amount < 0 else "")
        view.add_row("", "Total", _money(tb.total_debit), _money(tb.total_credit), style="bold")
        Console().print(view)

    _print(document, args.json, table)
    return 0


@_vendor_command
def _verify(store: Any, args: argparse.Namespace) -> int:
    from flows.verify import verify_vendor

    report = verify_vendor(store, args.vendor)

    def table() -> None:
        if report["ok"]:
            print(f"{args.vendor}: the chain of {report['entries']:,} entries verifies (head {report['head']['seq']}, "
                  f"{report['head']['hash'][:16]}…)")
        else:
            bad = report["firstBad"]
            print(f"{args.vendor}: {bad['problem']} at place {bad['seq']} (entry {bad['entryId']}); "
                  f"{report['entries']:,} entries verified before it. See docs/operations.md, 'When verify fails'.")

    _print(report, args.json, table)
    return 0 if report["ok"] else EXIT_FAILED


def _period_command(action: str) -> Callable[[Any, argparse.Namespace], int]:
    def run(store: Any, args: argparse.Namespace) -> int:
        from flows.periods import close_books, reopen_books
        from ledger.periods import PeriodRefused

        try:
            record = close_books(store, args.vendor, args.through) if action == "close" else \
                reopen_books(store, args.vendor, args.through, args.reason)
        except PeriodRefused as refused:
            print(f"ledger-sync: {action} refused: {refused}", file=sys.stderr)
            return EXIT_USAGE
        _print(record, args.json, lambda: print(f"{args.vendor}: books {'closed' if action == 'close' else 'reopened'}"
                                                f" through {record['through']}", file=sys.stderr))
        return 0
    return run


_close = _vendor_command(_period_command("close"))
_reopen = _vendor_command(_period_command("reopen"))


@_vendor_command
def _periods(store: Any, args: argparse.Namespace) -> int:
    from flows.periods import periods_view

    view = periods_view(store, args.vendor)

    def table() -> None:
        print(f"{args.vendor}: closed through {view['closedThrough'] or '— (open)'}")
        for period in view["periods"]:
            print(f"  {period['at']}  {period['action']:<6} through {period['through']}"
                  + (f"  ({period['reason']})" if period["reason"] else ""))

    _print(view, args.json, table)
    return 0


def _rows(title: str, rows: Sequence[Sequence[str]], money_columns: int) -> None:
    """An aligned table: text columns left, the last `money_columns` right (thousands separators)."""
    from rich.console import Console
    from rich.table import Table

    view = Table(title=title)
    width = len(rows[0]) if rows else money_columns
    for index in range(width):
        view.add_column("", justify="right" if index >= width - money_columns else "left")
    for row in rows:
        view.add_row(*row)
    Console().print(view)


@_vendor_command
def _ledger(store: Any, args: argparse.Namespace) -> int:
    from flows.books import MAX_LIMIT, ledger_view

    document = ledger_view(store, args.vendor, args.account, args.day_from, args.day_to, MAX_LIMIT)
    lines = list(document["lines"])
    while document["nextCursor"]:
        document = ledger_view(store, args.vendor, args.account, args.day_from, args.day_to, MAX_LIMIT,
                               document["nextCursor"])
        lines += document["lines"]
    document = {**document, "lines": lines, "nextCursor": None}
    rows = [("", "Opening balance", "", "", _money(document["openingBalance"]))]
    rows += [(line["date"], f"{line['source']['type']} {line['source']['number'] or line['source']['id']}"
              + (" (reversal)" if line["reversalOf"] else ""), _money(line["debit"]), _money(line["credit"]),
              _money(line["balance"])) for line in lines]
    rows.append(("", "Closing balance", "", "", _money(document["closingBalance"])))
    _print(document, args.json, lambda: _rows(f"{args.account} — {args.vendor}", rows, 3))
    return 0


@_vendor_command
def _report(store: Any, args: argparse.Namespace) -> int:
    from flows.books import aging_view, balance_sheet_view, profit_and_loss_view
    from ledger.clock import utc_now
    from ledger.kinds import Side

    rows: list[tuple[str, ...]]
    if args.name == "pnl":
        document = profit_and_loss_view(store, args.vendor, args.day_from, args.day_to)
        rows = [("Income", key, _money(amount)) for key, amount in document["income"].items()]
        rows += [("Expenses", key, _money(amount)) for key, amount in document["expenses"].items()]
        rows += [("", "Total income", _money(document["totalIncome"])),
                 ("", "Total expenses", _money(document["totalExpenses"])),
                 ("", "Net profit", _money(document["netProfit"]))]
    elif args.name == "balance-sheet":
        document = balance_sheet_view(store, args.vendor, args.as_of)
        rows = [("Assets", key, _money(amount)) for key, amount in document["assets"].items()]
        rows += [("Liabilities", key, _money(amount)) for key, amount in document["liabilities"].items()]
        rows += [("Equity", key, _money(amount)) for key, amount in document["equity"].items()]
        rows += [("", "Total assets", _money(document["totalAssets"])),
                 ("", "Total liabilities and equity", _money(document["totalLiabilitiesAndEquity"]))]
    else:
        if args.side is None:
            print("ledger-sync: report aging needs --side receivable|payable", file=sys.stderr)
            return EXIT_USAGE
        document = aging_view(store, args.vendor, Side(args.side), args.as_of or utc_now().date())
        rows = [
            (row["party"]["name"], *(_money(amount) for amount in row["buckets"].values()), _money(row["total"]))
            for row in document["parties"]]
        rows.append(("Total", *(_money(amount) for amount in document["buckets"].values()), _money(document["total"])))
        _print(document, args.json, lambda: _rows(f"Aging ({args.side}) — {args.vendor}, as of {document['asOf']}"
                                                  " (0-30, 31-60, 61-90, 91+, total)", rows, 5))
        return 0
    _print(document, args.json, lambda: _rows(f"{args.name} — {args.vendor}", rows, 1))
    return 0


@_vendor_command
def _history(store: Any, args: argparse.Namespace) -> int:
    from flows.books import history_view
    from ledger.ids import candidate_ids
    from ledger.kinds import UnknownKind, by_name

    try:
        source_type = by_name(args.type).type
    except UnknownKind as error:
        print(f"ledger-sync: {error}", file=sys.stderr)
        return EXIT_USAGE
    document: dict[str, Any] = {}
    for candidate in candidate_ids(args.id):
        document = history_view(store, args.vendor, source_type, candidate)
        if document["entries"]:
            break
    rows = [(entry["date"], entry["entryId"], entry["syncId"] or "",
             (entry["reason"] or "") + (f" ({', '.join(entry['changed'])})" if entry["changed"] else ""),
             _money(sum((Decimal(line["debit"]) for line in entry["lines"]), Decimal(0))))
            for entry in document["entries"]]
    _print(document, args.json, lambda: _rows(f"History of {source_type} {args.id} — {args.vendor}", rows, 1))
    return 0


@_vendor_command
def _export(store: Any, args: argparse.Namespace) -> int:
    from flows.books import export_chunks

    chunks = export_chunks(store, args.vendor, args.format, args.day_from, args.day_to)
    if args.output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return 0
    with open(args.output, "w", encoding="utf-8") as out:
        written = sum(out.write(chunk) for chunk in chunks)
    _print({"vendorId": args.vendor, "format": args.format, "file": args.output, "characters": written}, args.json,
           lambda: print(f"{args.vendor}: {args.format} export written to {args.output}", file=sys.stderr))
    return 0
