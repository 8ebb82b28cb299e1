"""What every step of a run knows about it, and how a step says the run must stop."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from ledger.kinds import kind_steps
from ledger.store import RunGuard
from ledger.sync_run import SyncParameters


class SyncCancelled(Exception):
    """The vendor cancelled the run: it stops after the current batch."""


class SyncContext(BaseModel):
    """What every step needs to know about the run it belongs to."""

    model_config = ConfigDict(frozen=True)

    sync_id: str
    vendor_id: str
    attempt: int
    owner: str  # this process's claim on the attempt
    parameters: SyncParameters
    changed_since: dict[str, datetime | None]
    base_currency: str
    closed_through: date | None = None  # nothing is booked on or before it

    @property
    def guard(self) -> RunGuard:
        return RunGuard(self.sync_id, self.attempt, self.owner)

    @property
    def reads_everything(self) -> bool:
        """Every document of every kind is read (no date range, no change filter)."""
        return (self.parameters.covers_everything and set(self.parameters.types) == set(kind_steps())
                and all(self.changed_since.get(step) is None for step in kind_steps()))
