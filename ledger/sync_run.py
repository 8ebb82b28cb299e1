"""The vocabulary of a sync run: its parameters, steps and statistics."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledger.sources import SYNC_TYPES

STEPS = ("check_existing", "sales_invoices", "purchase_invoices", "expenses", "complete")
STEP_LABELS = {
    "check_existing": "Checking existing transactions",
    "sales_invoices": "Sales invoices",
    "purchase_invoices": "Purchase invoices",
    "expenses": "Expenses",
    "complete": "Completion",
}
ALL_TYPES = tuple(SYNC_TYPES)


class SyncParameters(BaseModel):
    """What a caller asked to sync. Dates are inclusive, on the document's own date."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    date_from: date | None = Field(default=None, alias="dateFrom")
    date_to: date | None = Field(default=None, alias="dateTo")
    types: tuple[str, ...] = Field(default=ALL_TYPES)
    full: bool = False

    @field_validator("types", mode="before")
    @classmethod
    def _known_types(cls, value):
        if value is None:
            return ALL_TYPES
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [t for t in value if t not in SYNC_TYPES]
        if unknown:
            raise ValueError(f"unknown type(s) {', '.join(map(str, unknown))}; choose from {', '.join(ALL_TYPES)}")
        if not value:
            raise ValueError(f"choose at least one of {', '.join(ALL_TYPES)}")
        return tuple(t for t in ALL_TYPES if t in value)

    @model_validator(mode="after")
    def _ordered_dates(self):
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"dateFrom {self.date_from} is after dateTo {self.date_to}")
        return self

    @property
    def start(self) -> datetime | None:
        return None if self.date_from is None else datetime.combine(self.date_from, time(), timezone.utc)

    @property
    def end_exclusive(self) -> datetime | None:
        return None if self.date_to is None else datetime.combine(self.date_to + timedelta(days=1), time(), timezone.utc)

    @property
    def covers_everything(self) -> bool:
        """A run without a date range reads every (changed) document of its types."""
        return self.date_from is None and self.date_to is None

    def includes(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end_exclusive is None or moment < self.end_exclusive)

    def as_document(self) -> dict:
        return {"dateFrom": self.date_from.isoformat() if self.date_from else None,
                "dateTo": self.date_to.isoformat() if self.date_to else None,
                "types": list(self.types), "full": self.full}


class TypeStats(BaseModel):
    """Per-type counts. `synced` counts entries posted, `reversed` reversal entries,
    `skipped` documents with nothing to write, `errors` rejected documents."""

    scanned: int = 0
    synced: int = 0
    reversed: int = 0
    skipped: int = 0
    errors: int = 0

    def __add__(self, other: TypeStats) -> TypeStats:
        return TypeStats(**{name: getattr(self, name) + getattr(other, name) for name in TypeStats.model_fields})


class SyncStats(BaseModel):
    sales_invoices: TypeStats = TypeStats()
    purchase_invoices: TypeStats = TypeStats()
    expenses: TypeStats = TypeStats()

    @property
    def total(self) -> TypeStats:
        return self.sales_invoices + self.purchase_invoices + self.expenses

    def with_type(self, sync_type: str, stats: TypeStats) -> SyncStats:
        return self.model_copy(update={sync_type: stats})

    def as_document(self) -> dict:
        return {"total": self.total.model_dump(), **{t: getattr(self, t).model_dump() for t in ALL_TYPES}}

    @classmethod
    def from_document(cls, document: dict | None) -> SyncStats:
        document = document or {}
        return cls(**{t: TypeStats(**document.get(t, {})) for t in ALL_TYPES})


def overall_percent(step: str, fraction: float) -> float:
    """Percent of the whole run: each of the five steps is a fifth; never above 100."""
    index = STEPS.index(step)
    return round(min(100.0, (index + max(0.0, min(1.0, fraction))) * 100 / len(STEPS)), 1)
