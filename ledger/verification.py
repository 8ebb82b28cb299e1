"""Checks an accountant would run on the books before trusting them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from ledger.accounts import ACCOUNTS_PAYABLE, ACCOUNTS_RECEIVABLE
from ledger.entries import ZERO, JournalEntry


class LedgerInconsistent(Exception):
    """The books fail verification: never retried; the sync fails with the reason."""


class Balances(BaseModel):
    """Debits and credits per account (a trial balance before netting)."""

    model_config = ConfigDict(frozen=True)

    debits: Mapping[str, Decimal]
    credits: Mapping[str, Decimal]

    def balance(self, account: str) -> Decimal:
        """Debits − credits: positive for a debit balance."""
        return self.debits.get(account, ZERO) - self.credits.get(account, ZERO)

    def plus(self, more: Balances) -> Balances:
        """These balances and `more` together (the ledger is append-only: start + what a sync wrote)."""
        accounts = set(self.debits) | set(self.credits) | set(more.debits) | set(more.credits)
        return Balances(debits={a: self.debits.get(a, ZERO) + more.debits.get(a, ZERO) for a in accounts},
                        credits={a: self.credits.get(a, ZERO) + more.credits.get(a, ZERO) for a in accounts})

    def minus(self, less: Balances) -> Balances:
        """These balances without `less` (the books before a sync: after it, less what it wrote)."""
        accounts = set(self.debits) | set(self.credits) | set(less.debits) | set(less.credits)
        return Balances(debits={a: self.debits.get(a, ZERO) - less.debits.get(a, ZERO) for a in accounts},
                        credits={a: self.credits.get(a, ZERO) - less.credits.get(a, ZERO) for a in accounts})

    def net_balances(self) -> dict[str, Decimal]:
        """Non-zero balances per account, sorted by key."""
        accounts = sorted(set(self.debits) | set(self.credits))
        return {account: self.balance(account) for account in accounts if self.balance(account) != ZERO}


class TrialBalance(BaseModel):
    model_config = ConfigDict(frozen=True)

    balances: dict[str, Decimal]
    total_debit: Decimal
    total_credit: Decimal

    @property
    def is_balanced(self) -> bool:
        return self.total_debit == self.total_credit


class BalanceCheck(BaseModel):
    """A control account compared with the open balances of the documents behind it."""

    model_config = ConfigDict(frozen=True)

    ledger: Decimal
    documents: Decimal

    @property
    def ok(self) -> bool:
        return self.ledger == self.documents

    @property
    def difference(self) -> Decimal:
        return self.ledger - self.documents


class Verification(BaseModel):
    model_config = ConfigDict(frozen=True)

    trial_balance: TrialBalance
    unbalanced_entries: int
    receivables: BalanceCheck
    payables: BalanceCheck

    @property
    def ok(self) -> bool:
        return (self.trial_balance.is_balanced and self.unbalanced_entries == 0
                and self.receivables.ok and self.payables.ok)


def is_balanced(entry: JournalEntry) -> bool:
    return entry.total_debit == entry.total_credit and all(
        line.debit >= 0 and line.credit >= 0 for line in entry.lines
    )


def balances_of(entries: Iterable[JournalEntry]) -> Balances:
    debits: dict[str, Decimal] = {}
    credits: dict[str, Decimal] = {}
    for entry in entries:
        for line in entry.lines:
            debits[line.account] = debits.get(line.account, ZERO) + line.debit
            credits[line.account] = credits.get(line.account, ZERO) + line.credit
    return Balances(debits=debits, credits=credits)


def trial_balance(balances: Balances) -> TrialBalance:
    """Net balance per account; total debit balances against total credit balances."""
    net = balances.net_balances()
    total_debit = sum((amount for amount in net.values() if amount > 0), ZERO)
    total_credit = sum((-amount for amount in net.values() if amount < 0), ZERO)
    return TrialBalance(balances=net, total_debit=total_debit, total_credit=total_credit)


def verify(balances: Balances, unbalanced_entries: int, open_receivables: Decimal,
           open_payables: Decimal) -> Verification:
    """Trial balance nets to zero, every entry balances, and the control accounts
    equal the open balances of the invoices behind them (receivable as a debit
    balance, payable as a credit balance)."""
    return Verification(
        trial_balance=trial_balance(balances),
        unbalanced_entries=unbalanced_entries,
        receivables=BalanceCheck(ledger=balances.balance(ACCOUNTS_RECEIVABLE), documents=open_receivables),
        payables=BalanceCheck(ledger=-balances.balance(ACCOUNTS_PAYABLE), documents=open_payables),
    )


def describe_differences(held: Balances, expected: Balances) -> str:
    """Accounts whose debits or credits differ, with both figures ("" when none do)."""
    accounts = sorted(set(held.debits) | set(held.credits) | set(expected.debits) | set(expected.credits))
    parts = []
    for account in accounts:
        held_pair = (held.debits.get(account, ZERO), held.credits.get(account, ZERO))
        expected_pair = (expected.debits.get(account, ZERO), expected.credits.get(account, ZERO))
        if held_pair != expected_pair:
            parts.append(f"{account} holds debits {held_pair[0]} / credits {held_pair[1]}, expected "
                         f"{expected_pair[0]} / {expected_pair[1]} (balance off by "
                         f"{(held_pair[0] - held_pair[1]) - (expected_pair[0] - expected_pair[1])})")
    return "; ".join(parts)


def describe_failure(verification: Verification) -> str:
    """What failed in a verification, with the accounts and amounts, for a person to act on."""
    problems = []
    tb = verification.trial_balance
    if not tb.is_balanced:
        problems.append(f"the trial balance does not net to zero (debits {tb.total_debit}, credits {tb.total_credit})")
    if verification.unbalanced_entries:
        problems.append(f"{verification.unbalanced_entries} entries do not balance")
    for account, check in ((ACCOUNTS_RECEIVABLE, verification.receivables), (ACCOUNTS_PAYABLE, verification.payables)):
        if not check.ok:
            problems.append(f"{account} is {check.ledger} in the ledger but the documents leave {check.documents} "
                            f"open (off by {check.difference})")
    return "; ".join(problems)
