"""One pooled MongoDB client per process, shared by every task."""

from __future__ import annotations

import threading

from pymongo import MongoClient

from flows.settings import Settings, get_settings
from ledger.store import Store

_clients: dict[tuple[str, int], MongoClient] = {}
_lock = threading.Lock()
_indexed: set[tuple[str, str]] = set()


def _client(uri: str, timeout_ms: int) -> MongoClient:
    with _lock:
        key = (uri, timeout_ms)
        if key not in _clients:
            # timeoutMS bounds every operation, so nothing ever hangs on a dead server.
            _clients[key] = MongoClient(uri, tz_aware=True, timeoutMS=timeout_ms,
                                        serverSelectionTimeoutMS=min(timeout_ms, 10000),
                                        connectTimeoutMS=min(timeout_ms, 5000), appname="ledger-sync")
        return _clients[key]


def get_store(settings: Settings | None = None) -> Store:
    """The store for the configured database, with its indexes ensured once per process."""
    settings = settings or get_settings()
    uri = settings.resolve_mongodb_uri()
    store = Store(_client(uri, settings.ledger_db_timeout_ms)[settings.mongodb_db], settings.collections,
                  batch_size=settings.ledger_batch_size)
    if (uri, settings.mongodb_db) not in _indexed:
        store.ensure_indexes()
        _indexed.add((uri, settings.mongodb_db))
    return store


def reset_clients() -> None:
    """Close cached clients and forget settings (for tests that switch databases)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _indexed.clear()
    get_settings.cache_clear()
