"""Request and response models: what OpenAPI (/docs) shows for every route. Money is always a decimal string."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, create_model, field_validator

from ledger.kinds import kind_steps, kinds

ALL_TYPES = kind_steps()

# The step names a sync can be limited to: the one list of them in the API, taken from the ledger's own, so
# the OpenAPI enum, the validation and the error messages never disagree with what a sync runs.
SyncTypeName = Literal[ALL_TYPES]  # type: ignore[valid-type]
# What /entries accepts as sourceType: a document type or the plural step name of one.
SourceTypeName = Literal[tuple(k.type for k in kinds()) + ALL_TYPES]  # type: ignore[valid-type]
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_token"])
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail


class SyncDataRequest(BaseModel):
    """What to sync; every field is optional (default: everything that changed since the last sync)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"dateFrom": "2026-01-01", "dateTo": "2026-03-31", "types": ["sales_invoices"], "full": False}]})

    dateFrom: date | None = Field(default=None, description="Inclusive, on the document's own date (YYYY-MM-DD).")
    dateTo: date | None = Field(default=None, description="Inclusive (YYYY-MM-DD); not before dateFrom (the one "
                                                          "rule the schema cannot express: 422 when it is).")
    types: list[SyncTypeName] | None = Field(default=None, min_length=1,
                                             description=f"A non-empty subset of {', '.join(ALL_TYPES)}.")
    # Strict: `0`, `1` or `"true"` are not booleans, so they are refused rather than guessed.
    full: StrictBool = Field(default=False, description="Reconcile everything, detecting hard deletes.")
    vendorId: str | None = Field(default=None, description="Optional; when given it must be the token's vendor.")

    @field_validator("dateFrom", "dateTo", mode="before")
    @classmethod
    def _date_string(cls, value: Any) -> Any:
        """Only a YYYY-MM-DD string is a date here (pydantic alone would take a number as a timestamp)."""
        if value is None or (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
            return value
        raise ValueError(f"not a date: {value!r}; use a YYYY-MM-DD string")

    @field_validator("types")
    @classmethod
    def _in_step_order(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [t for t in ALL_TYPES if t in value]

    @field_validator("dateTo")
    @classmethod
    def _not_before_from(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("dateFrom")
        if value is not None and start is not None and start > value:
            raise ValueError(f"dateFrom {start} is after dateTo {value}")
        return value


class SyncAccepted(BaseModel):
    success: bool = True
    message: str = "Data sync started. You will receive real-time updates."
    syncId: str = Field(examples=["sync_acme_1767225600000"])


class SyncConflict(BaseModel):
    success: bool = False
    message: str
    syncId: str


class TypeStats(BaseModel):
    """Documents `scanned`; entries posted (`synced`) and `reversed`; documents `skipped` (nothing to
    write) and rejected (`errors`); entries booked `late` (the day after a closed period)."""

    scanned: int = 0
    synced: int = 0
    reversed: int = 0
    skipped: int = 0
    errors: int = 0
    late: int = 0


_STATS_FIELDS: dict[str, Any] = {"total": (TypeStats, ...), **{kind.step: (TypeStats, ...) for kind in kinds()}}
Stats = create_model("Stats", __doc__="Counts in total and per kind of document (one key per sync step).",
                     **_STATS_FIELDS)


class Progress(BaseModel):
    model_config = ConfigDict(extra="allow")

    step: str
    stepIndex: int
    stepsTotal: int
    percent: float
    processed: int = 0
    total: int = 0
    message: str | None = None


class StepView(BaseModel):
    name: str
    label: str
    state: str = Field(description="pending | running | completed | skipped | failed | cancelled")
    processed: int
    total: int
    startedAt: str | None = None
    endedAt: str | None = None
    durationMs: int | None = None


class RunView(BaseModel):
    """The latest snapshot of a sync run (also the polling fallback when the socket fails)."""

    syncId: str
    vendorId: str
    state: str = Field(description="queued | running | cancelling | completed | failed | crashed | cancelled")
    parameters: dict[str, Any]
    progress: Progress | None = None
    steps: list[StepView]
    stats: Stats  # built from the registry of kinds
    verification: dict[str, Any] | None = None
    error: str | None = None
    errorsCount: int = 0
    durationMs: int | None = None
    documentsPerSecond: float | None = None
    startedAt: str | None = None
    endedAt: str | None = None
    flowRunId: str | None = None
    resumable: bool
    attempts: int = 1
    ledgerEntries: int | None = Field(None, description="Entries in the vendor's ledger when this sync completed "
                                                        "(null until it has)")


class RunList(BaseModel):
    vendorId: str
    runs: list[RunView]


class CancelResult(BaseModel):
    success: bool
    syncId: str
    state: str
    message: str


class RejectedDocument(BaseModel):
    sourceType: str
    sourceId: str
    sourceKey: str = Field(description="The document's _id exactly, whatever its BSON type")
    number: str | None = None
    date: str | None = Field(None, description="The document's date as it states it (YYYY-MM-DD when it reads)")
    amount: str | None = Field(None, description="The document's total (amount) as it states it")
    field: str | None = None
    reason: str
    recordedAt: str | None = None


class RejectedList(BaseModel):
    syncId: str
    errors: list[RejectedDocument]


class AccountView(BaseModel):
    name: str
    code: str
    type: str


class TrialBalanceView(BaseModel):
    vendorId: str
    balances: dict[str, str] = Field(description="Debits − credits per account, zero balances left out.")
    totalDebit: str
    totalCredit: str
    accounts: dict[str, AccountView]


class LineView(BaseModel):
    account: str
    debit: str
    credit: str


class SourceView(BaseModel):
    type: str
    id: str = Field(description="The document's _id as a person reads it")
    key: str = Field(description="The _id exactly, whatever its BSON type (give it back as `sourceId`)")
    number: str | None = None
    paymentId: str | None = None


class EntryView(BaseModel):
    id: str
    date: str | None = None
    source: SourceView
    lines: list[LineView]
    reversalOf: str | None = None
    syncId: str | None = None
    postedAt: str | None = None


class EntryList(BaseModel):
    vendorId: str
    sourceType: str | None
    sourceId: str
    entries: list[EntryView]


class DevVendors(BaseModel):
    vendors: list[str] = Field(description="Vendors that have source documents")


class DevToken(BaseModel):
    token: str = Field(description="A bearer token for the vendor, signed with the server's secret")


class LiveStatus(BaseModel):
    """Whether the continuous sync (`ledger-sync watch`) is posting changes as they happen."""
    live: bool
    aliveAt: datetime | None = Field(None, description="when the watcher last said it was alive")
    liveSince: datetime | None = Field(None, description="when the watcher now running started")


class Health(BaseModel):
    status: str
    database: bool
    prefect: bool
    eventsBridge: bool


# ---- reading the books (SPEC §8) -------------------------------------------------------

class ChartAccount(BaseModel):
    key: str
    code: str
    name: str
    type: str
    balance: str = Field(description="Current debits − credits")


class Chart(BaseModel):
    vendorId: str
    accounts: list[ChartAccount]


class LedgerSource(BaseModel):
    type: str
    id: str
    key: str = Field(description="The _id exactly, whatever its BSON type")
    number: str | None = None
    paymentId: str | None = None


class AccountLedgerLine(BaseModel):
    entryId: str
    date: str
    debit: str
    credit: str
    balance: str = Field(description="Running debits − credits from openingBalance")
    source: LedgerSource
    reversalOf: str | None = None


class AccountLedger(BaseModel):
    vendorId: str
    account: str
    from_: str | None = Field(alias="from")
    to: str | None
    openingBalance: str
    closingBalance: str
    lines: list[AccountLedgerLine]
    nextCursor: str | None = Field(description="Give it back as `cursor` for the next page; null on the last")


class ProfitAndLoss(BaseModel):
    vendorId: str
    from_: str | None = Field(alias="from")
    to: str | None
    income: dict[str, str] = Field(description="Credits − debits per income account")
    expenses: dict[str, str] = Field(description="Debits − credits per expense account (round_off among them)")
    totalIncome: str
    totalExpenses: str
    netProfit: str


class BalanceSheet(BaseModel):
    vendorId: str
    asOf: str | None
    assets: dict[str, str]
    liabilities: dict[str, str]
    equity: dict[str, str] = Field(description="retained_earnings: the net profit of everything to asOf")
    totalAssets: str
    totalLiabilitiesAndEquity: str


class AgingParty(BaseModel):
    id: str | None
    name: str


class AgingRow(BaseModel):
    party: AgingParty
    buckets: dict[str, str] = Field(description="0-30, 31-60, 61-90, 91+ days since the document date")
    total: str


class Aging(BaseModel):
    vendorId: str
    side: Literal["receivable", "payable"]
    asOf: str
    parties: list[AgingRow]
    buckets: dict[str, str]
    total: str = Field(description="The receivable (payable) balance as of asOf")


class HistoryEntry(BaseModel):
    entryId: str
    date: str
    syncId: str | None
    source: LedgerSource
    lines: list[LineView]
    reversalOf: str | None = None
    reason: str | None = Field(description="For a reversal: voided, cancelled, deleted, changed, payment removed, …")
    changed: list[str] = Field(description="For a `changed` reversal: the posting-relevant fields that changed")
    late: bool


class DocumentHistory(BaseModel):
    vendorId: str
    sourceType: str
    sourceId: str
    entries: list[HistoryEntry]
