"""The chart of accounts: stable keys, codes, names and types.

Keys are what entries refer to; codes and names are for people. Expense
accounts are opened on demand per category (`expenses:<slug>`).
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    INCOME = "income"
    EXPENSE = "expense"


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    code: str
    name: str
    type: AccountType


CASH = "cash"
BANK = "bank"
ACCOUNTS_RECEIVABLE = "accounts_receivable"
INPUT_TAX = "input_tax"
ACCOUNTS_PAYABLE = "accounts_payable"
OUTPUT_TAX = "output_tax"
SALES = "sales"
PURCHASES = "purchases"
ROUND_OFF = "round_off"
EXPENSES_PREFIX = "expenses:"

STANDARD_ACCOUNTS: dict[str, Account] = {
    a.key: a
    for a in (
        Account(key=CASH, code="1000", name="Cash", type=AccountType.ASSET),
        Account(key=BANK, code="1010", name="Bank", type=AccountType.ASSET),
        Account(key=ACCOUNTS_RECEIVABLE, code="1100", name="Accounts Receivable", type=AccountType.ASSET),
        Account(key=INPUT_TAX, code="1200", name="Input Tax", type=AccountType.ASSET),
        Account(key=ACCOUNTS_PAYABLE, code="2000", name="Accounts Payable", type=AccountType.LIABILITY),
        Account(key=OUTPUT_TAX, code="2100", name="Output Tax", type=AccountType.LIABILITY),
        Account(key=SALES, code="4000", name="Sales", type=AccountType.INCOME),
        Account(key=PURCHASES, code="5000", name="Purchases", type=AccountType.EXPENSE),
        Account(key=ROUND_OFF, code="5900", name="Round Off", type=AccountType.EXPENSE),
    )
}

_NON_ALNUM_RUN = re.compile(r"[^a-z0-9]+")


def category_slug(category: str) -> str:
    """`"Office Rent"` → `office-rent`: lower-case, runs of other characters to one `-`."""
    return _NON_ALNUM_RUN.sub("-", category.lower()).strip("-")


def expense_account_key(category: str) -> str:
    return EXPENSES_PREFIX + category_slug(category)


def settlement_account(method: str) -> str:
    """Cash payments settle through `cash`; every other method through `bank`."""
    return CASH if method.strip().lower() == "cash" else BANK


def account_for(key: str) -> Account:
    """The account behind a key, opening an expense account for a new category."""
    if key in STANDARD_ACCOUNTS:
        return STANDARD_ACCOUNTS[key]
    if key.startswith(EXPENSES_PREFIX):
        slug = key[len(EXPENSES_PREFIX):]
        return Account(key=key, code="6000", name="Expenses: " + slug.replace("-", " ").title(),
                       type=AccountType.EXPENSE)
    raise KeyError(f"unknown account {key!r}")
