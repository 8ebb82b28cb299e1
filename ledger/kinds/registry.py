"""The registry of source kinds: everything the sync needs to know about one kind of document.

A kind (sales invoice, purchase invoice, expense, …) is one module that builds a
`SourceKind` and registers it. The sync's steps, the statistics, the settings of the
collection names, the API's schemas and the UI's step list are all derived from here;
no other module names a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ledger.accounts import ACCOUNTS_PAYABLE, ACCOUNTS_RECEIVABLE
from ledger.entries import EntryDraft
from ledger.sources import ReadDocument, SourceDocument


class Side(StrEnum):
    """Which control account a kind's open documents sit on."""

    RECEIVABLE = "receivable"
    PAYABLE = "payable"

    @property
    def control_account(self) -> str:
        return ACCOUNTS_RECEIVABLE if self is Side.RECEIVABLE else ACCOUNTS_PAYABLE

    def open_balance(self, debit_minus_credit: Decimal) -> Decimal:
        """The control account's balance as an amount left open: a debit balance for
        receivables, a credit balance for payables."""
        return debit_minus_credit if self is Side.RECEIVABLE else -debit_minus_credit


@dataclass(frozen=True)
class SourceKind:
    """One kind of source document and how it becomes entries.

    `read(raw, base_currency)` validates a raw document (SPEC §2) into the kind's model,
    a `Withdrawn` or a `Rejection`; `drafts(document)` are the postings it should
    currently have (SPEC §3); `open_amount(document)` is what it leaves open on its
    side's control account.
    """

    type: str  # as entries store it: `source.type`
    step: str  # the sync step, the statistics key and the `types` parameter value
    label: str  # for people: the step's name in the UI and the logs ("Sales invoices")
    noun: str  # one document, for people ("Sales invoice")
    collection: str  # default source collection (setting `LEDGER_<STEP>_COLLECTION`)
    date_field: str  # the document's own date: selective syncs filter on it
    side: Side
    party_label: str  # what its party is: customer, supplier, category
    read: Callable[[dict[str, Any], str], ReadDocument]
    drafts: Callable[[Any], list[EntryDraft]]
    open_amount: Callable[[Any], Decimal]
    order: int  # where its step comes in the sync (and in every list of kinds)

    def drafts_of(self, document: SourceDocument) -> list[EntryDraft]:
        """The postings a document should have, all-zero ones left out."""
        return [draft for draft in self.drafts(document) if draft.lines]


class UnknownKind(ValueError):
    pass


_KINDS: dict[str, SourceKind] = {}


def register(kind: SourceKind) -> SourceKind:
    """Add a kind; its `order` places its step among the others."""
    for existing in _KINDS.values():
        clash = {"type": existing.type == kind.type, "step": existing.step == kind.step,
                 "collection": existing.collection == kind.collection}
        if any(clash.values()):
            raise ValueError(f"kind {kind.type!r} has the same {', '.join(k for k, v in clash.items() if v)} "
                             f"as {existing.type!r}")
    _KINDS[kind.type] = kind
    return kind


def unregister(kind_type: str) -> None:
    _KINDS.pop(kind_type, None)


def kinds() -> tuple[SourceKind, ...]:
    return tuple(sorted(_KINDS.values(), key=lambda kind: kind.order))


def by_type(kind_type: str) -> SourceKind:
    try:
        return _KINDS[kind_type]
    except KeyError:
        raise UnknownKind(f"unknown source type {kind_type!r}; one of {', '.join(_KINDS)}") from None


def by_step(step: str) -> SourceKind:
    for kind in _KINDS.values():
        if kind.step == step:
            return kind
    raise UnknownKind(f"unknown type {step!r}; choose from {', '.join(kind_steps())}")


def by_name(name: str) -> SourceKind:
    """A kind by its type (`sales_invoice`) or its step (`sales_invoices`)."""
    if name in _KINDS:
        return _KINDS[name]
    try:
        return by_step(name)
    except UnknownKind:
        raise UnknownKind(f"unknown source type {name!r}; one of {', '.join(k.type for k in kinds())}") from None


def kind_steps() -> tuple[str, ...]:
    return tuple(kind.step for kind in kinds())
