"""A sync's Prefect artifacts, for operators: the statistics per kind, a summary of the verification
and the rejections with a link to the run's page in the web UI, and a progress bar that moves as the
batches complete.

Keyed per vendor (`ledger-<vendor>-<hash>-statistics`, `-summary`, `-progress`), so the Prefect UI's
Artifacts page keeps each vendor's history. An artifact that cannot be written is logged, never a
reason to stop a sync.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from typing import Any, cast
from uuid import UUID

from flows import progress
from flows.settings import get_settings
from ledger.run_report import statistics_rows, summary_markdown
from ledger.sync_run import SyncRun

log = logging.getLogger("ledger_sync.artifacts")


def artifact_key(vendor_id: str, what: str) -> str:
    """Prefect keys take lowercase letters, digits and dashes only: the vendor id reduced to those, and a
    short hash of it, so two ids that reduce alike (`Acme_1`, `acme-1`) keep histories of their own."""
    slug = re.sub(r"[^a-z0-9]+", "-", vendor_id.lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha256(vendor_id.encode()).hexdigest()[:8]
    return f"ledger-{slug}-{digest}-{what}" if slug else f"ledger-{digest}-{what}"


def publish_report(run: SyncRun) -> None:
    """The statistics table and the summary of a run that has just ended."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    described = f"Sync {run.sync_id}: {run.state.value}"
    try:
        create_table_artifact(statistics_rows(run), key=artifact_key(run.vendor_id, "statistics"),
                              description=described)
        create_markdown_artifact(summary_markdown(run, get_settings().run_page_url(run.sync_id)),
                                 key=artifact_key(run.vendor_id, "summary"), description=described)
    except Exception as error:  # noqa: BLE001 - the books are what matters; the artifacts only tell of them
        _logger().warning("sync %s of vendor %s: its Prefect artifacts could not be written: %s", run.sync_id,
                          run.vendor_id, error)


class ProgressArtifact:
    """The run's progress artifact, moved by its progress events: only by one that moves the bar
    (a batch done, a step begun or ended), and not more than once every `min_interval` seconds,
    so a sync never waits on it; where it got to is written when the run ends."""

    def __init__(self, sync_id: str, vendor_id: str, min_interval: float = 1.0):
        self.sync_id = sync_id
        self.vendor_id = vendor_id
        self.min_interval = min_interval
        self._artifact: UUID | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._shown = 0.0
        self._latest = 0.0
        self._shown_at = 0.0

    def __enter__(self) -> ProgressArtifact:
        from prefect.artifacts import create_progress_artifact
        from prefect.client.orchestration import get_client

        try:
            created = create_progress_artifact(0.0, key=artifact_key(self.vendor_id, "progress"),
                                               description=f"Sync {self.sync_id}")
            self._artifact = cast(UUID, created)  # called in a flow run's thread: synchronous
            self._client = get_client(sync_client=True).__enter__()
        except Exception as error:  # noqa: BLE001 - see the module's docstring
            self._give_up(error)
            return self
        progress.add_listener(self)
        return self

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        if payload.get("syncId") != self.sync_id or "percent" not in payload:
            return
        with self._lock:
            self._latest = max(self._latest, float(payload["percent"]))
            if self._latest <= self._shown or time.monotonic() - self._shown_at < self.min_interval:
                return
        self._show()

    def __exit__(self, *exc: object) -> None:
        progress.remove_listener(self)
        if self._latest > self._shown:
            self._show()
        if self._client is not None:
            client, self._client = self._client, None
            client.__exit__(None, None, None)

    def _show(self) -> None:
        from prefect.client.schemas.actions import ArtifactUpdate

        with self._lock:
            percent, self._shown, self._shown_at = self._latest, self._latest, time.monotonic()
            artifact, client = self._artifact, self._client
        if artifact is None or client is None:
            return
        try:
            client.update_artifact(artifact_id=artifact, artifact=ArtifactUpdate(data=percent))
        except Exception as error:  # noqa: BLE001 - see the module's docstring
            self._give_up(error)

    def _give_up(self, error: Exception) -> None:
        self._artifact = None
        progress.remove_listener(self)
        _logger().warning("sync %s of vendor %s: its Prefect progress artifact could not be written: %s",
                          self.sync_id, self.vendor_id, error)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (its lines show in the Prefect UI), else this module's."""
    from prefect import get_run_logger

    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run (a listener thread): the process's log
        return log
