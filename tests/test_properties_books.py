"""Properties of reading the books (SPEC §8) over generated documents and their changes: pure and fast."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.balances import books_as_of, by_month, daily_movements, month_of
from ledger.entries import ZERO
from ledger.reconcile import plan_document
from ledger.reports import balance_sheet, ledger_lines, profit_and_loss
from ledger.verification import balances_of
from tests.test_properties import SYNC_TIME, documents, drafts_for, histories, read

days = st.dates(min_value=date(2024, 12, 1), max_value=date(2027, 1, 31))


def ledger_of(states_list) -> list:
    """Every entry the reconciliation writes for these documents' histories."""
    ledger: list = []
    for states in states_list:
        mine: list = []
        for step, state in enumerate(states):
            when = SYNC_TIME + timedelta(days=step)
            drafts = [] if state is None else drafts_for(read(state, updated_at=when))
            mine.extend(plan_document(drafts, mine, reversal_date=when).entries)
        ledger.extend(mine)
    return ledger


def through(entries, day):
    return balances_of(entry for entry in entries if entry.date.date() <= day)


@settings(max_examples=60, deadline=None)
@given(st.lists(histories(), min_size=1, max_size=4), days, days)
def test_the_statements_agree_with_each_other_and_the_trial_balance(states_list, one, other):
    entries = ledger_of(states_list)
    day_from, day_to = min(one, other), max(one, other)
    for day in (day_from, day_to):
        sheet = balance_sheet(through(entries, day), {})
        assert sheet.total_assets == sheet.total_liabilities_and_equity
    # P&L of [from, to] = the change of retained earnings from the day before `from` to `to`
    before = through(entries, day_from - timedelta(days=1))
    period = through(entries, day_to).minus(before)
    assert profit_and_loss(period, {}).net_profit == \
        balance_sheet(through(entries, day_to), {}).retained_earnings - balance_sheet(before, {}).retained_earnings
    # an account's ledger closes at its as-of balance
    ordered = sorted(entries, key=lambda entry: (entry.date, entry.id))
    for account in ("accounts_receivable", "bank", "accounts_payable"):
        opening = before.balance(account)
        lines = ledger_lines(account, opening, [e for e in ordered if day_from <= e.date.date() <= day_to])
        assert (lines[-1].balance if lines else opening) == through(entries, day_to).balance(account)


@settings(max_examples=60, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=6), days)
def test_the_books_as_of_a_day_from_monthly_balances_equal_summing_the_entries(models, day):
    entries = [entry for model in models for entry in plan_document(drafts_for(read(model)), [], SYNC_TIME).postings]
    daily = daily_movements(entries)
    month = month_of(day)
    held = books_as_of([moved for key, moved in by_month(daily).items() if key < month],
                       {key: moved for key, moved in daily.items() if key.startswith(month)}, day)
    direct = through(entries, day)
    assert held.net_balances() == direct.net_balances()
    assert sum(held.net_balances().values(), ZERO) == ZERO
