"""Shared fixtures: one real MongoDB-wire server and one Prefect test server per session.

Each test gets its own database, so tests never see each other's data.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")

import pytest
from pymongo import MongoClient, monitoring

import flows.database
from cli.embedded_db import EmbeddedDatabase
from flows.database import get_store, reset_clients

# The real-stack session fixtures (Prefect server, served deployment, API, Socket.IO listeners), shared by
# tests/api and tests/browser: one definition, so one instance per session.
pytest_plugins = ["tests.stack"]

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def mongo_uri():
    """A SecantusDB server in its own process (as in production: a server over TCP)."""
    with EmbeddedDatabase(":memory:") as server:
        yield server.uri


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120), \
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture
def db(mongo_uri, monkeypatch):
    """A fresh database for this test, configured for the flow through the environment."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    monkeypatch.setenv("LEDGER_INCREMENTAL_OVERLAP_SECONDS", "0")
    reset_clients()
    client = MongoClient(mongo_uri, tz_aware=True)
    yield client[name]
    client.drop_database(name)
    client.close()
    reset_clients()


@pytest.fixture
def private_server(monkeypatch, prefect_server):
    """A database server of this test's own, and its database. A process paused or killed inside a
    transaction leaves it open until the server's transaction lifetime (60 s, as on mongod) ends;
    no other test should wait on that."""
    with EmbeddedDatabase(":memory:") as server:
        monkeypatch.setenv("MONGODB_URI", server.uri)
        monkeypatch.setenv("MONGODB_DB", "private")
        monkeypatch.setenv("LEDGER_INCREMENTAL_OVERLAP_SECONDS", "0")
        reset_clients()
        with MongoClient(server.uri, tz_aware=True) as client:
            yield client["private"], server.uri
    reset_clients()


@pytest.fixture
def store(db):
    return get_store()


@pytest.fixture
def sync(prefect_server, db):
    """Run the real Prefect flow for a vendor; returns its summary (stats, state, verification)."""
    from flows.sync_vendor import summary_of, sync_vendor_ledger

    def run(vendor_id: str = "v1", **parameters):
        return summary_of(sync_vendor_ledger(vendor_id, return_state=True, **parameters))

    return run


class Recorder(monitoring.CommandListener):
    def __init__(self):
        self.commands: list[dict] = []
        self.replies: list[dict] = []
        self._lock = threading.Lock()

    def started(self, event):
        with self._lock:
            self.commands.append({"name": event.command_name, "db": event.database_name,
                                  "command": dict(event.command)})

    def succeeded(self, event):
        with self._lock:
            self.replies.append({"name": event.command_name, "reply": dict(event.reply)})

    def failed(self, event):
        pass


@pytest.fixture
def recorder(db, monkeypatch):
    """Every command the flow's MongoDB client sends, and every reply it gets."""
    listener = Recorder()
    monkeypatch.setattr(flows.database, "MongoClient", functools.partial(MongoClient, event_listeners=[listener]))
    reset_clients()
    return listener
