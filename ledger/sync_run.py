"""The vocabulary of a sync run: its parameters, steps, statistics, and the run record itself.

The run record (`SyncRun`) is one typed model with its state machine:

    queued → running → completed | failed | cancelled | crashed
                 ↘ cancelling ↗            (failed, crashed, cancelled → queued again: resume)

`SyncRun.closed` is the one place that says what closing a run changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ledger.clock import as_utc
from ledger.kinds import by_step, kind_steps, kinds

CHECK_EXISTING = "check_existing"
COMPLETE = "complete"
_STEP_LABELS = {CHECK_EXISTING: "Checking existing transactions", COMPLETE: "Completion"}
PROGRESS_STATS = ("synced", "skipped", "reversed", "errors")  # the counters a progress event carries
CLOSING_FIELDS = ("state", "error", "ended_at", "duration_ms", "steps", "coverage", "progress")


def steps() -> tuple[str, ...]:
    """Every step of a run, in order: the check, one per source kind, the completion."""
    return (CHECK_EXISTING, *kind_steps(), COMPLETE)


def step_label(step: str) -> str:
    return _STEP_LABELS.get(step) or by_step(step).label


class SyncParameters(BaseModel):
    """What a caller asked to sync. Dates are inclusive, on the document's own date."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    date_from: date | None = Field(default=None, alias="dateFrom")
    date_to: date | None = Field(default=None, alias="dateTo")
    types: tuple[str, ...] = Field(default_factory=kind_steps)
    full: bool = False
    # Only these documents (id keys, `ledger.ids`, per step): what the continuous sync saw change. One
    # of them gone from its collection is reversed, as a full sync would.
    documents: dict[str, tuple[str, ...]] | None = None

    @field_validator("types", mode="before")
    @classmethod
    def _known_types(cls, value: Any) -> tuple[str, ...]:
        every = kind_steps()
        if value is None:
            return every
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [t for t in value if t not in every]
        if unknown:
            raise ValueError(f"unknown type(s) {', '.join(map(str, unknown))}; choose from {', '.join(every)}")
        if not value:
            raise ValueError(f"choose at least one of {', '.join(every)}")
        return tuple(t for t in every if t in value)

    @model_validator(mode="after")
    def _ordered_dates(self) -> SyncParameters:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"dateFrom {self.date_from} is after dateTo {self.date_to}")
        return self

    @property
    def start(self) -> datetime | None:
        return None if self.date_from is None else datetime.combine(self.date_from, time(), UTC)

    @property
    def end_exclusive(self) -> datetime | None:
        return None if self.date_to is None else datetime.combine(self.date_to + timedelta(days=1), time(), UTC)

    @property
    def covers_everything(self) -> bool:
        """A run without a date range or a list of documents reads every (changed) document of its types."""
        return self.date_from is None and self.date_to is None and self.documents is None

    @property
    def mode(self) -> str:
        """What kind of sync this is, for `/metrics` and the run record: full, continuous, selective or incremental."""
        if self.full:
            return "full"
        if self.documents is not None:
            return "continuous"
        return "incremental" if self.covers_everything and self.types == kind_steps() else "selective"

    def includes(self, moment: datetime) -> bool:
        return ((self.start is None or moment >= self.start)
                and (self.end_exclusive is None or moment < self.end_exclusive))

    def selects(self, step: str) -> bool:
        return step in (CHECK_EXISTING, COMPLETE) or step in self.types

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"dateFrom": self.date_from.isoformat() if self.date_from else None,
                                    "dateTo": self.date_to.isoformat() if self.date_to else None,
                                    "types": list(self.types), "full": self.full}
        if self.documents is not None:
            document["documents"] = {step: list(keys) for step, keys in self.documents.items()}
        return document


class TypeStats(BaseModel):
    """Per-type counts. `synced` counts entries posted, `reversed` reversal entries,
    `skipped` documents with nothing to write, `errors` rejected documents."""

    scanned: int = 0
    synced: int = 0
    reversed: int = 0
    skipped: int = 0
    errors: int = 0
    late: int = 0  # entries booked the day after a closed period instead of on their own date

    def __add__(self, other: TypeStats) -> TypeStats:
        return TypeStats(**{name: getattr(self, name) + getattr(other, name) for name in TypeStats.model_fields})


class SyncStats(BaseModel):
    """The statistics of a run: per source kind (by step name) and in total."""

    model_config = ConfigDict(frozen=True)

    by_type: dict[str, TypeStats] = Field(default_factory=dict)

    def of(self, step: str) -> TypeStats:
        return self.by_type.get(step, TypeStats())

    @property
    def total(self) -> TypeStats:
        return sum(self.by_type.values(), TypeStats())

    def with_type(self, step: str, stats: TypeStats) -> SyncStats:
        return SyncStats(by_type={**self.by_type, step: stats})

    def as_document(self) -> dict[str, Any]:
        """`{"total": {...}, "<step>": {...}, …}`, every registered kind present."""
        return {"total": self.total.model_dump(), **{step: self.of(step).model_dump() for step in kind_steps()}}

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> SyncStats:
        document = document or {}
        return cls(by_type={step: TypeStats(**document[step]) for step in kind_steps() if step in document})


def overall_percent(step: str, fraction: float) -> float:
    """Percent of the whole run: each step an equal share; never above 100."""
    every = steps()
    index = every.index(step)
    return round(min(100.0, (index + max(0.0, min(1.0, fraction))) * 100 / len(every)), 1)


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"

    @property
    def resumable(self) -> bool:
        return self in (RunState.FAILED, RunState.CRASHED, RunState.CANCELLED)

    @property
    def finished(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED, RunState.CRASHED)


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


class _Stored(BaseModel):
    """A part of the run record: camelCase in the database, snake_case here."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              arbitrary_types_allowed=True)


class StepRecord(_Stored):
    state: StepState = StepState.PENDING
    processed: int = 0
    total: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    # The checkpoint: the step read up to `last_id` in `phase` (see `ledger.store.sources`).
    phase: int = 0
    last_id: Any = None
    deletes_checked: bool = False


class Progress(_Stored):
    """Where a run is, as `sync-status` and the first `sync_progress` show it."""

    step: str = CHECK_EXISTING
    step_index: int = 0
    steps_total: int = Field(default_factory=lambda: len(steps()))
    percent: float = 0.0
    processed: int = 0
    total: int = 0
    message: str | None = None


class SyncRun(_Stored):
    """One sync of one vendor, as `ledger_sync_runs` keeps it (one document per sync)."""

    sync_id: str
    vendor_id: str
    state: RunState
    parameters: dict[str, Any] = Field(default_factory=dict)
    mode: str = "incremental"  # `SyncParameters.mode`, stored so `/metrics` groups runs by it on the server
    since: dict[str, datetime | None] = Field(default_factory=dict)  # incremental: read changes from here, per type
    recheck: dict[str, list[Any]] = Field(default_factory=dict)  # documents rejected last time, per type
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)
    errors_count: int = 0
    error: str | None = None
    progress: Progress = Field(default_factory=Progress)
    started_at: datetime | None = None
    attempt_started_at: datetime | None = None  # this attempt (a resume starts a new one)
    heartbeat_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None  # time spent running, over every attempt (not the gaps between)
    flow_run_id: str | None = None
    attempts: int = 1
    run_number: int = 0
    active: bool = False
    owner: str | None = None  # the process that claimed this attempt
    cancel_requested: bool = False
    ledger_at_start: dict[str, Any] | None = None
    ledger_delta: dict[str, Any] = Field(default_factory=dict)
    entries_written: int = 0
    open_amounts: dict[str, str] = Field(default_factory=dict)
    open_change: dict[str, str] = Field(default_factory=dict)
    verification: dict[str, Any] | None = None
    ledger: dict[str, Any] | None = None  # the seal a completed run leaves for the next
    documents_open: dict[str, str] | None = None
    coverage: list[str] = Field(default_factory=list)

    @field_validator("started_at", "attempt_started_at", "heartbeat_at", "ended_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value)

    @property
    def sync_stats(self) -> SyncStats:
        return SyncStats.from_document(self.stats)

    @property
    def sync_parameters(self) -> SyncParameters:
        return SyncParameters(**self.parameters)

    @property
    def resumable(self) -> bool:
        return self.state.resumable

    def step(self, name: str) -> StepRecord:
        return self.steps.get(name) or StepRecord()

    def running_ms(self, now: datetime) -> int:
        """Time spent running so far: earlier attempts plus this one since it started."""
        began = self.attempt_started_at or self.started_at
        earlier = self.duration_ms if self.attempt_started_at is not None and self.duration_ms else 0
        return earlier + (max(0, int((now - began).total_seconds() * 1000)) if began else 0)

    def closed(self, state: RunState, error: str | None, now: datetime) -> SyncRun:
        """This run closed as `state`: ended, the time it ran added up, every step still running
        marked failed (or cancelled). Only these `CLOSING_FIELDS` change; the repository writes them."""
        unfinished = StepState.CANCELLED if state is RunState.CANCELLED else StepState.FAILED
        # A crashed run last ran at its last heartbeat: the time until the crash was noticed is idle,
        # and a resume must not count it.
        ran_until = min(now, self.heartbeat_at) if state is RunState.CRASHED and self.heartbeat_at else now
        update: dict[str, Any] = {
            "state": state, "error": error, "ended_at": now, "duration_ms": self.running_ms(ran_until),
            "active": False,
            "steps": {name: step.model_copy(update={"state": unfinished}) if step.state is StepState.RUNNING else step
                      for name, step in self.steps.items()}}
        if state is RunState.COMPLETED:
            parameters = self.sync_parameters
            update["coverage"] = list(parameters.types) if parameters.covers_everything else []
            update["progress"] = self.progress.model_copy(update={
                "step": COMPLETE, "step_index": len(steps()) - 1, "steps_total": len(steps()), "percent": 100.0,
                "message": "Sync complete"})
        return self.model_copy(update=update)

    @classmethod
    def new(cls, sync_id: str, vendor_id: str, parameters: SyncParameters, since: dict[str, datetime | None],
            recheck: dict[str, list[Any]], run_number: int, now: datetime,
            state: RunState = RunState.QUEUED) -> SyncRun:
        return cls(
            sync_id=sync_id, vendor_id=vendor_id, state=state, parameters=parameters.as_document(),
            mode=parameters.mode, since=since,
            recheck=recheck, steps={step: StepRecord(state=StepState.PENDING if parameters.selects(step)
                                                     else StepState.SKIPPED) for step in steps()},
            stats=SyncStats().as_document(), progress=Progress(message="Queued"), started_at=now,
            attempt_started_at=now, heartbeat_at=now, run_number=run_number, active=True)


def kinds_selected(parameters: SyncParameters) -> list:
    """The source kinds a run reads, in step order."""
    return [kind for kind in kinds() if kind.step in parameters.types]
