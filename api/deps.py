"""FastAPI dependencies, as `Annotated` types a route names in its signature:
the caller's vendor, the app's settings, the ledger store, Prefect, the socket server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
import socketio
from fastapi import Depends, Request

from api.auth import current_vendor
from api.orchestrator import Orchestrator
from api.settings import ApiSettings
from flows.database import get_store as store_for
from ledger.store import Store

T = TypeVar("T")


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    """The store for the API's database (one pooled client per process)."""
    return store_for(request.app.state.settings)


def get_orchestrator(request: Request) -> Orchestrator:
    orchestrator: Orchestrator = request.app.state.orchestrator
    return orchestrator


def get_sio(request: Request) -> socketio.AsyncServer:
    sio: socketio.AsyncServer = request.app.state.sio
    return sio


VendorDep = Annotated[str, Depends(current_vendor)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]
SocketsDep = Annotated[socketio.AsyncServer, Depends(get_sio)]


async def blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (pymongo) call off the event loop."""
    return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
