"""FastAPI dependencies: the app's settings, the ledger store, Prefect, the socket server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from fastapi import Request

from api.orchestrator import Orchestrator
from api.settings import ApiSettings
from flows.database import get_store as _get_store
from ledger.store import LedgerStore

T = TypeVar("T")


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_store(request: Request) -> LedgerStore:
    """The store for the API's database (one pooled client per process)."""
    return _get_store(request.app.state.settings)


def get_orchestrator(request: Request) -> Orchestrator:
    return request.app.state.orchestrator


def get_sio(request: Request):
    return request.app.state.sio


async def blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (pymongo) call off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
