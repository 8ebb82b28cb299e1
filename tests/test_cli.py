"""The `ledger-sync` command end to end on the embedded default database (no MONGODB_URI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import jwt


def test_demo_sync_and_trial_balance_on_the_embedded_database(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    env.update(LEDGER_HOME=str(tmp_path / "state"), PREFECT_API_URL=PREFECT_API_URL.value())

    def ledger_sync(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=240)

    demo = ledger_sync("demo", "--vendors", "acme", "--documents", "120")
    assert demo.returncode == 0, demo.stderr
    assert "new in salesinvoices" in demo.stderr

    first = ledger_sync("sync", "--vendor", "acme", "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)  # stdout is exactly one JSON object; logs went to stderr
    total = summary["stats"]["total"]
    assert summary["state"] == "completed" and summary["vendorId"] == "acme"
    assert total["scanned"] == 124 and total["errors"] == 4  # the demo's four broken documents
    assert total["synced"] > 0 and summary["durationMs"] > 0
    assert {"sales_invoices", "purchase_invoices", "expenses"} <= set(summary["stats"])

    balance = ledger_sync("trial-balance", "--vendor", "acme", "--json")
    assert balance.returncode == 0, balance.stderr
    books = json.loads(balance.stdout)
    amounts = {account: Decimal(value) for account, value in books["balances"].items()}
    assert sum(amounts.values()) == 0 and all(amounts.values())
    assert Decimal(books["totalDebit"]) == Decimal(books["totalCredit"]) \
        == Decimal(summary["verification"]["totalDebit"])
    assert amounts["accounts_receivable"] == Decimal(summary["verification"]["receivables"]["documents"])

    again = json.loads(ledger_sync("sync", "--vendor", "acme", "--json").stdout)
    assert again["stats"]["total"]["synced"] == 0 and again["stats"]["total"]["reversed"] == 0
    assert json.loads(ledger_sync("trial-balance", "--vendor", "acme", "--json").stdout) == books

    bad = ledger_sync("sync", "--vendor", "acme", "--from", "2026-13-01")
    assert bad.returncode == 2 and "not a date" in bad.stderr
    backwards = ledger_sync("sync", "--vendor", "acme", "--from", "2026-03-01", "--to", "2026-02-01")
    assert backwards.returncode == 2 and "after dateTo" in backwards.stderr

    token = ledger_sync("token", "--vendor", "acme")
    claims = jwt.decode(token.stdout.strip(), options={"verify_signature": False})
    assert claims["vendorId"] == "acme" and claims["exp"] > claims.get("iat", 0)

    # Each command stopped the embedded server it started: nothing is left running.
    assert not (tmp_path / "state" / "mongo.json").exists()
