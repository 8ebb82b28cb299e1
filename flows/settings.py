"""Settings shared by the flow, the CLI and the API, read from the environment."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.kinds import SourceKind, kinds
from ledger.store import CollectionNames


class NoDatabase(RuntimeError):
    pass


def collection_setting(kind: SourceKind) -> str:
    """The environment variable naming a kind's source collection: `LEDGER_<STEP>_COLLECTION`."""
    return f"LEDGER_{kind.step.upper()}_COLLECTION"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    mongodb_uri: str | None = None
    mongodb_db: str = "ledger_sync"
    ledger_base_currency: str = "INR"
    ledger_collection_prefix: str = "ledger_"
    ledger_vendors_collection: str = "vendors"
    ledger_batch_size: int = 2000
    # Project-local state: the embedded database's data and its address.
    ledger_home: Path = Path(".ledger-sync")
    # Incremental syncs re-read what changed this long before the last sync
    # started, so a write committed late by the app is never missed.
    ledger_incremental_overlap_seconds: int = 5
    # Every database operation gives up after this long (then the task retries).
    ledger_db_timeout_ms: int = 15000
    # A running sync whose heartbeat is older than this is marked crashed.
    ledger_stale_after_seconds: int = 60
    # Test hook: stop the process hard after this many documents (resume tests).
    ledger_crash_after_documents: int | None = None
    # How many entries of the chain each sync re-verifies beyond what it wrote (a rolling window:
    # over syncs the whole chain is walked again, at a constant cost per sync).
    ledger_verify_window: int = 2000
    # The same for a watcher's micro-batch: it runs every few seconds, so a tenth of the stretch
    # keeps its latency low and still walks the chain again over its many runs.
    ledger_verify_window_micro_batch: int = 200
    # Hold the per-vendor Prefect global concurrency limit `ledger-vendor-<id>` while a sync runs.
    ledger_vendor_concurrency_limit: bool = True
    # The nightly syncs a vendor with more documents to read than this in a flow run of its own (on the
    # work pool); smaller ones share the nightly's process as subflow runs.
    ledger_own_flow_run_above_documents: int = 2000
    # The CLI's background Prefect server (cli/prefect_background.py) stops after this long unused.
    ledger_prefect_idle_stop_seconds: float = 900
    # Where people open the web UI (`ledger-sync up` serves it on port 4000): the Prefect artifacts of a
    # sync link to its page there.
    ledger_public_url: str = "http://127.0.0.1:4000"

    @property
    def collections(self) -> CollectionNames:
        """Each kind's source collection: `LEDGER_<STEP>_COLLECTION`, else the kind's default."""
        sources = {kind.type: (os.environ.get(collection_setting(kind)) or "").strip() or kind.collection
                   for kind in kinds()}
        return CollectionNames(sources=sources, vendors=self.ledger_vendors_collection,
                               ledger_prefix=self.ledger_collection_prefix)

    def run_page_url(self, sync_id: str) -> str:
        """The web UI's page of one sync."""
        return f"{self.ledger_public_url.rstrip('/')}/?run={quote(sync_id, safe='')}"

    @property
    def embedded_state_file(self) -> Path:
        return self.ledger_home / "mongo.json"

    def resolve_mongodb_uri(self) -> str:
        """`MONGODB_URI`, else the embedded server this project started (if alive)."""
        if self.mongodb_uri:
            return self.mongodb_uri
        state = read_embedded_state(self.embedded_state_file)
        if state is None:
            raise NoDatabase("no database: set MONGODB_URI, or start the embedded one with `ledger-sync up`")
        return str(state["uri"])


def read_embedded_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, dict) else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
