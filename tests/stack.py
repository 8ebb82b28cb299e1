"""The whole stack against real parts, started once per session (a pytest plugin: `tests/conftest.py` loads
it, so tests/api, tests/browser and any other folder share ONE instance of each session fixture):

- SecantusDB (the `mongo_uri` fixture), one database for all API tests (each test uses its own vendors);
- a real `prefect server start` on a free port (PostgreSQL on 127.0.0.1:5432 in a fresh database when it
  is there, else SQLite under a temporary directory);
- `python -m flows.serve` serving `sync-vendor-ledger/on-demand` (small batches so syncs can be watched);
- the API (uvicorn in this process, on a free port) with its events bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import socketio
import uvicorn
from pymongo import MongoClient

from cli.stack import QUIET_PREFECT, spawn, start_deployment_server, start_prefect_server, wait_http

SECRET = "test-secret-" + "x" * 40
BATCH_SIZE = 25
_vendor_numbers = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_url() -> str | None:
    """A fresh database on the local PostgreSQL (trust auth), or None when there is none."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return None
    name = f"prefect_api_tests_{os.getpid()}"
    created = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"],
                             capture_output=True, text=True)
    if created.returncode != 0:
        return None
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def _drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                   capture_output=True)


@pytest.fixture(scope="session")
def api_database(mongo_uri):
    name = f"api_tests_{os.getpid()}"
    yield name
    with MongoClient(mongo_uri) as client:
        client.drop_database(name)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """A real Prefect server for the session: its API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    database_url = _postgres_url()
    process, api_url = start_prefect_server(home, free_port(), dict(os.environ), home / "logs",
                                            database_url=database_url)
    yield api_url
    process.stop()
    if database_url:
        _drop_postgres(database_url)


@pytest.fixture(scope="session")
def stack_env(mongo_uri, api_database, prefect_api, tmp_path_factory):
    """The environment of every process of the stack under test."""
    home = tmp_path_factory.mktemp("ledger-home")
    env = {**os.environ, **QUIET_PREFECT, "MONGODB_URI": mongo_uri, "MONGODB_DB": api_database,
           "PREFECT_API_URL": prefect_api, "LEDGER_HOME": str(home), "LEDGER_BATCH_SIZE": str(BATCH_SIZE),
           "LEDGER_INCREMENTAL_OVERLAP_SECONDS": "0", "LEDGER_JWT_SECRET": SECRET, "LEDGER_ENV": "test",
           "PREFECT_LOGGING_TO_API_ENABLED": "false", "PYTHONUNBUFFERED": "1",
           # flows.serve also serves the nightly/weekly deployments: never let them fire mid-test
           "LEDGER_SCHEDULES_ACTIVE": "false"}
    return env


@pytest.fixture(scope="session")
def deployment_server(stack_env, prefect_api, tmp_path_factory):
    """`python -m flows.serve`, ready to take runs."""
    logs = tmp_path_factory.mktemp("serve-logs")
    process = start_deployment_server(stack_env, logs, prefect_api)
    yield process
    process.stop()


def api_settings(stack_env, **overrides):
    from api.settings import ApiSettings

    values = dict(mongodb_uri=stack_env["MONGODB_URI"], mongodb_db=stack_env["MONGODB_DB"],
                  ledger_jwt_secret=SECRET, prefect_api_url=stack_env["PREFECT_API_URL"], ledger_env="development",
                  ledger_dev_routes=True,  # the browser tests pick their vendor in the development picker
                  ledger_home=Path(stack_env["LEDGER_HOME"]), ledger_incremental_overlap_seconds=0,
                  ledger_batch_size=BATCH_SIZE)
    values.update(overrides)
    return ApiSettings(**values)


class RunningApi:
    def __init__(self, url: str, app, server: uvicorn.Server, task: asyncio.Task):
        self.url = url
        self.app = app
        self.server = server
        self.task = task

    @property
    def bridge(self):
        return self.app.bridge

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, 10)
        except TimeoutError:
            self.task.cancel()


async def start_api_in_process(settings) -> RunningApi:
    from api.main import create_app

    app = create_app(settings)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="websockets-sansio",
                            timeout_graceful_shutdown=2, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.02)
    running = RunningApi(f"http://127.0.0.1:{port}", app, server, task)
    await asyncio.wait_for(app.bridge.ready.wait(), 20)
    return running


@pytest.fixture(scope="session")
async def api(stack_env, deployment_server):
    """The API under test (in this process), its events bridge connected to Prefect."""
    running = await start_api_in_process(api_settings(stack_env))
    yield running
    await running.stop()


@pytest.fixture
async def http(api):
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
        yield client


@pytest.fixture
def mongo(mongo_uri, api_database):
    client = MongoClient(mongo_uri, tz_aware=True)
    yield client[api_database]
    client.close()


@pytest.fixture
def new_vendor():
    """A vendor id no other test uses."""
    def make(prefix: str = "v") -> str:
        return f"{prefix}{next(_vendor_numbers)}-{uuid.uuid4().hex[:6]}"
    return make


def token_for(vendor_id: str, ttl: int = 3600) -> str:
    from api.auth import issue_token

    return issue_token(vendor_id, SECRET, ttl)


def bearer(vendor_id: str) -> dict:
    return {"Authorization": f"Bearer {token_for(vendor_id)}"}


class Listener:
    """A real Socket.IO client that records every event with its arrival time."""

    def __init__(self, url: str, token: str | None, transports: list[str] | None = None):
        self.url = url
        self.token = token
        self.transports = transports
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, dict, float]] = []
        self._changed = asyncio.Event()
        for name in ("sync_progress", "sync_complete", "sync_error"):
            self.client.on(name, self._recorder(name))

    def _recorder(self, name: str):
        async def record(data):
            self.events.append((name, data, time.time()))
            self._changed.set()
        return record

    async def connect(self, join: bool = True) -> dict | None:
        auth = {"token": self.token} if self.token is not None else None
        await self.client.connect(self.url, auth=auth, transports=self.transports or ["websocket"],
                                  socketio_path="socket.io", wait_timeout=10)
        if join:
            return await self.client.call("join_vendor_room", {}, timeout=10)
        return None

    def of(self, sync_id: str) -> list[tuple[str, dict, float]]:
        return [e for e in self.events if e[1].get("syncId") == sync_id]

    async def wait_for(self, predicate, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [(e[0], e[1].get("step"), e[1].get("state")) for e in self.events]
                raise AssertionError(f"timed out; got {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_end(self, sync_id: str, timeout: float = 90.0):
        return await self.wait_for(lambda e: e[0] in ("sync_complete", "sync_error") and e[1].get("syncId") == sync_id,
                                   timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(), 1.5)


@pytest.fixture
async def listeners():
    opened: list[Listener] = []

    async def open_listener(url: str, vendor_id: str | None, transports=None, join: bool = True, token=None):
        listener = Listener(url, token if token is not None else (token_for(vendor_id) if vendor_id else None),
                            transports)
        opened.append(listener)
        ack = await listener.connect(join=join)
        if join:
            assert ack and ack.get("ok"), ack
        return listener

    yield open_listener
    for listener in opened:
        await listener.close()


def load_demo(mongo, vendor_id: str, documents: int) -> dict:
    from cli.demo_data import load

    return load(mongo, [vendor_id], documents=documents)


__all__ = [
    "SECRET",
    "api_settings",
    "bearer",
    "free_port",
    "load_demo",
    "spawn",
    "start_api_in_process",
    "token_for",
    "wait_http",
]
