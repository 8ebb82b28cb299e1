"""Where the background syncs are (`ledger_watch_state`): the continuous sync's resume token, kept
after every batch it posted, so a watcher that was killed goes on from the last change it handled;
and the nightly's horizon, where the next one looks for changes from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection

DEFAULT_WATCHER = "default"  # the watcher's name, when one watcher follows the whole database
BEAT_SECONDS = 5.0  # how often an idle watcher says it is alive
LIVE_WITHIN_SECONDS = 6 * BEAT_SECONDS  # silent longer than this: not live (the web UI's badge goes out)


class WatchStateStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        """Read by `_id` only."""

    def get(self, name: str) -> dict[str, Any]:
        return self.collection.find_one({"_id": name}) or {}

    def save(self, name: str, token: Any, at: datetime) -> None:
        """The change stream is handled up to `token`."""
        self.collection.update_one({"_id": name}, {"$set": {"token": token, "savedAt": at}}, upsert=True)

    def forget(self, name: str) -> None:
        self.collection.update_one({"_id": name}, {"$unset": {"token": ""}})

    def beat(self, name: str, at: datetime, **facts: Any) -> None:
        """The watcher is alive (and, in `facts`, what it last did)."""
        self.collection.update_one({"_id": name}, {"$set": {"aliveAt": at, **facts}}, upsert=True)

    def live(self, name: str, now: datetime, within_seconds: float) -> dict[str, Any]:
        """Whether a watcher is following the changes now: it said so within `within_seconds`."""
        state = self.get(name)
        alive_at: datetime | None = state.get("aliveAt")
        if alive_at is not None and alive_at.tzinfo is None:
            alive_at = alive_at.replace(tzinfo=UTC)
        live = alive_at is not None and (now - alive_at).total_seconds() <= within_seconds
        return {"live": live, "aliveAt": alive_at, "liveSince": state.get("liveSince") if live else None}
    def horizon(self, name: str) -> datetime | None:
        """Where the nightly `name` looks for changes from; None before its first selection."""
        return self.get(name).get("horizon")

    def save_horizon(self, name: str, horizon: datetime) -> None:
        self.collection.update_one({"_id": name}, {"$set": {"horizon": horizon}}, upsert=True)
