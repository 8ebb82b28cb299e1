"""Reports on the books, as people and programs read them: amounts as decimal strings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ledger.accounts import account_for
from ledger.verification import TrialBalance


def money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def trial_balance_document(vendor_id: str, tb: TrialBalance) -> dict[str, Any]:
    """SPEC §6: balance = debits − credits per account (zero balances left out); the totals of
    the debit and of the credit balances, both positive."""
    return {"vendorId": vendor_id, "balances": {key: money(amount) for key, amount in tb.balances.items()},
            "totalDebit": money(tb.total_debit), "totalCredit": money(tb.total_credit)}


def account_views(keys: Iterable[str], opened: Iterable[Mapping[str, Any]] = ()) -> dict[str, dict[str, str]]:
    """Code, name and type of each account key: as the vendor's chart opened it, else the
    standard chart; a key neither knows (written by something else) shows as itself, type unknown."""
    known = {row["key"]: {"code": str(row.get("code", "")), "name": str(row.get("name", row["key"])),
                          "type": str(row.get("type", "unknown"))} for row in opened}
    views: dict[str, dict[str, str]] = {}
    for key in keys:
        if key in known:
            views[key] = known[key]
            continue
        try:
            account = account_for(key)
        except KeyError:
            views[key] = {"code": "", "name": key, "type": "unknown"}
        else:
            views[key] = {"code": account.code, "name": account.name, "type": account.type.value}
    return views
