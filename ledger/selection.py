"""Which vendors the nightly syncs (SPEC §10): the ones with something to do, found without
looking at each vendor.

The nightly looks for changes since its horizon: the moment the previous nightly made its
selection (or the start of a run that was active then, if earlier). Each vendor's changes up
to there were posted by a sync, or its sync failed, or left rejected documents: those runs
started after the horizon too, so they are among the runs read. A vendor needs a sync when

- a source document of one kind changed at or after the start of its last completed sync
  covering that kind (less the overlap), or it has no such sync since the horizon;
- its latest run did not complete (failed, crashed, cancelled, or still active: the sync
  itself then says it is running);
- its latest completed run left rejected documents, which every sync reads again.

A document without a datetime `updatedAt` says nothing of when it changed: the continuous
sync and the weekly full reconcile post those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Need(StrEnum):
    CHANGED = "documents changed"
    INCOMPLETE = "last sync did not complete"
    REJECTIONS = "rejected documents outstanding"
    FULL = "full reconcile"


@dataclass(frozen=True)
class Changes:
    """A vendor's documents of one kind changed since the horizon: how many, and the latest `updatedAt`."""

    documents: int
    latest: datetime | None


@dataclass(frozen=True)
class RunFact:
    """What selection needs of one run record."""

    vendor_id: str
    state: str
    started_at: datetime
    coverage: tuple[str, ...] = ()
    errors: int = 0
    active: bool = False


@dataclass(frozen=True)
class Selected:
    vendor_id: str
    needs: tuple[Need, ...]
    documents: int  # changed documents (every document for a full reconcile): how big its sync is


@dataclass(frozen=True)
class Selection:
    vendors: list[Selected]
    horizon: datetime  # where the next nightly looks for changes from
    runs_read: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # vendors with changes, per kind step


def select(changes: Mapping[str, Mapping[str, Changes]], runs: Iterable[RunFact], overlap: timedelta,
           selected_at: datetime) -> Selection:
    """The vendors to sync, from each kind's changes by vendor (`changes[step][vendor]`) and the
    runs started since the horizon that matter (not completed, with rejections, or of a changed vendor)."""
    ordered = sorted(runs, key=lambda r: r.started_at)
    by_vendor: dict[str, list[RunFact]] = {}
    for run in ordered:
        by_vendor.setdefault(run.vendor_id, []).append(run)
    needs: dict[str, list[Need]] = {}
    documents: dict[str, int] = {}
    for step, vendors in changes.items():
        for vendor, changed in vendors.items():
            covered = [run.started_at for run in by_vendor.get(vendor, ())
                       if run.state == "completed" and step in run.coverage]
            if not covered or changed.latest is None or changed.latest >= max(covered) - overlap:
                _add(needs, vendor, Need.CHANGED)
                documents[vendor] = documents.get(vendor, 0) + changed.documents
    for vendor, history in by_vendor.items():
        latest = history[-1]
        if latest.state != "completed":
            _add(needs, vendor, Need.INCOMPLETE)
        elif latest.errors:
            _add(needs, vendor, Need.REJECTIONS)
    active = [run.started_at for run in ordered if run.active]
    return Selection(vendors=[Selected(vendor, tuple(reasons), documents.get(vendor, 0))
                              for vendor, reasons in sorted(needs.items())],
                     horizon=min([selected_at, *active]), runs_read=len(ordered),
                     changes={step: len(vendors) for step, vendors in changes.items()})


def every_vendor(documents: Mapping[str, Mapping[str, Changes]], selected_at: datetime) -> Selection:
    """A full reconcile: every vendor with source documents."""
    sizes: dict[str, int] = {}
    for vendors in documents.values():
        for vendor, found in vendors.items():
            sizes[vendor] = sizes.get(vendor, 0) + found.documents
    return Selection(vendors=[Selected(vendor, (Need.FULL,), size) for vendor, size in sorted(sizes.items())],
                     horizon=selected_at)


def _add(needs: dict[str, list[Need]], vendor: str, need: Need) -> None:
    reasons = needs.setdefault(vendor, [])
    if need not in reasons:
        reasons.append(need)
