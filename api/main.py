"""The API process: FastAPI (REST, static UI) inside Socket.IO's ASGI app, plus the events bridge.

Run it with `uvicorn api.main:create_app --factory --port 4000` (what
`ledger-sync up` does), with PREFECT_API_URL and the database configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import socketio
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import schemas
from api.auth import VENDOR_ID_PATTERN, issue_token
from api.books import router as books_router
from api.deps import SettingsDep, StoreDep, blocking
from api.errors import http_error, validation_error
from api.events_bridge import EventsBridge
from api.orchestrator import Orchestrator
from api.periods import router as periods_router
from api.routes import router
from api.settings import ApiSettings, ConfigurationError, get_api_settings
from api.sockets import SYNC_ERROR, create_socket_server, emit_to_vendor
from flows.database import get_store as store_for
from flows.logs import use_log_format
from flows.metrics import bridge_metrics, exposition
from flows.runs import crash_stale_runs
from ledger.kinds import kinds as registered_kinds
from ledger.sync_run import step_label
from ledger.sync_run import steps as sync_steps

log = logging.getLogger("ledger_sync.api")

STATIC_DIR = Path(__file__).resolve().parent / "static"
PROJECT_DIR = Path(__file__).resolve().parent.parent
SOCKET_IO_CLIENT = PROJECT_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
SWAGGER_UI = PROJECT_DIR / "node_modules" / "swagger-ui-dist"  # npm's swagger-ui-dist: /docs works offline
SWAGGER_UI_URL = "/static/vendor/swagger-ui"


def create_app(settings: ApiSettings | None = None, *, start_bridge: bool = True) -> socketio.ASGIApp:
    """The whole ASGI app: `socketio.ASGIApp(sio, other_asgi_app=fastapi_app)`.

    The FastAPI app is `.fastapi_app` and the Socket.IO server `.sio` on the returned object.
    """
    use_log_format()
    settings = settings or get_api_settings()
    jwt_secret = settings.resolve_jwt_secret()  # refuses to start without one (outside development)
    dev_routes = settings.dev_routes  # refuses them outside development
    api_url = settings.prefect_api_url or _prefect_api_url_from_profile()
    if not api_url:
        raise ConfigurationError("PREFECT_API_URL is not set: the API triggers syncs on a Prefect server "
                                 "(`ledger-sync up` starts one and sets it).")
    cors = settings.cors_origins
    sio = create_socket_server(jwt_secret, "*" if cors == ["*"] else (cors or None), settings.redis_url)
    orchestrator = Orchestrator(api_url, settings.prefect_deployment)

    async def forward(event: str, payload: dict, vendor_id: str) -> None:
        await emit_to_vendor(sio, event, payload, vendor_id, local_only=True)

    bridge = EventsBridge(api_url, lambda: store_for(settings), forward)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await orchestrator.start()
        try:  # create the indexes once, before the first request
            await anyio.to_thread.run_sync(lambda: store_for(settings))
        except Exception as error:  # noqa: BLE001 - health reports it; requests will retry
            log.error("database not reachable at start-up: %s", error)
        if start_bridge:
            bridge.start()
        detector = (asyncio.create_task(_detect_stale_runs(settings, sio), name="stale-run-detector")
                    if settings.ledger_stale_check_seconds > 0 else None)
        try:
            yield
        finally:
            if detector is not None:
                detector.cancel()
                await asyncio.gather(detector, return_exceptions=True)
            await bridge.stop()
            await orchestrator.close()
            await _stop_socket_server(sio)

    app = FastAPI(title="Ledger Sync API", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Trigger and follow ledger syncs. Authenticate with `Authorization: Bearer <JWT>` "
                              "(HS256, `vendorId` and `exp` claims). Live progress: Socket.IO at `/socket.io` "
                              "(`auth: {token}`, then emit `join_vendor_room`; events `sync_progress`, "
                              "`sync_complete`, `sync_error`).")
    app.state.settings = settings
    app.state.jwt_secret = jwt_secret
    app.state.sio = sio
    app.state.orchestrator = orchestrator
    app.state.bridge = bridge
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=cors, allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    app.include_router(router)
    app.include_router(periods_router)
    app.include_router(books_router)
    # Starlette types a handler as taking any Exception; these take the one they are registered for.
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]

    @app.exception_handler(PyMongoError)
    async def database_unavailable(request: Request, error: PyMongoError):
        log.error("database error on %s %s: %s", request.method, request.url.path, error)
        return JSONResponse(status_code=503, content={"detail": {
            "code": "database_unavailable",
            "message": "The database is not reachable right now; try again in a moment."}})

    @app.get("/api/health", response_model=schemas.Health, tags=["ops"], summary="Liveness and dependencies",
             responses={503: {"model": schemas.Health, "description": "The database is not reachable"}})
    async def health(settings: SettingsDep):
        try:
            store = await anyio.to_thread.run_sync(lambda: store_for(settings))
            await anyio.to_thread.run_sync(lambda: store.db.command("ping"))
            database = True
        except Exception:  # noqa: BLE001
            database = False
        prefect = await orchestrator.healthy()
        body = {"status": "ok" if database and prefect else "degraded", "database": database, "prefect": prefect,
                "eventsBridge": bridge.connected}
        return JSONResponse(body, status_code=200 if database else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(store: StoreDep):
        """Prometheus' text format: the syncs from the run records (see `flows.metrics`), this process's events
        bridge; unauthenticated, like any scrape."""
        own = bridge_metrics(bridge.connected, bridge.reconnects, bridge.lag_seconds)
        return Response(await blocking(exposition, store, own), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        """Swagger UI from this server's own copy (FastAPI's self-hosted docs assets), never a CDN."""
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — docs",
                                   swagger_js_url=f"{SWAGGER_UI_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{SWAGGER_UI_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{SWAGGER_UI_URL}/favicon-32x32.png",
                                   # no badge from the online validator: nothing is fetched from outside
                                   swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None})

    if dev_routes:
        log.warning("development routes ON: GET /api/dev/token mints a token for any vendor without "
                    "authentication (LEDGER_DEV_ROUTES=true); never expose this server")
        database_down: dict[int | str, dict[str, Any]] = {
            503: {"model": schemas.ErrorResponse, "description": "The database is not reachable"}}

        @app.get("/api/dev/vendors", tags=["development"], response_model=schemas.DevVendors,
                 summary="Vendors that have source data (LEDGER_DEV_ROUTES only)", responses=database_down)
        async def dev_vendors(store: StoreDep):
            return {"vendors": await anyio.to_thread.run_sync(store.sources.vendor_ids)}

        @app.get("/api/dev/token", tags=["development"], response_model=schemas.DevToken,
                 summary="A token for any vendor, without authentication (LEDGER_DEV_ROUTES only)")
        async def dev_token(vendor: str = Query(..., pattern=f"^{VENDOR_ID_PATTERN}$",
                                                description="The vendor id the token is for")):
            # The pattern is checked by pydantic's regex engine, where `$` is the end of the text: "a\n" is 422.
            return {"token": issue_token(vendor, jwt_secret, settings.ledger_token_ttl_seconds)}

    @app.get("/", include_in_schema=False)
    async def index():
        page = STATIC_DIR / "index.html"
        if not page.exists():
            return JSONResponse({"detail": "The web UI is not installed; see /docs for the API."}, status_code=404)
        return FileResponse(page, headers={"Cache-Control": "no-cache"})

    @app.get("/static/vendor/socket.io.min.js", include_in_schema=False)
    async def socket_io_client():
        if not SOCKET_IO_CLIENT.exists():
            raise HTTPException(404, detail="socket.io client not installed (run `npm install`)")
        return FileResponse(SOCKET_IO_CLIENT, media_type="application/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/ledger-kinds.js", include_in_schema=False)
    async def kinds_module():
        """The sync's steps and the kinds of documents, from the registry, for the web UI."""
        return Response(kinds_javascript(), media_type="application/javascript", headers={"Cache-Control": "no-cache"})

    if SWAGGER_UI.is_dir():  # before /static, which would otherwise take these paths
        app.mount(SWAGGER_UI_URL, StaticFiles(directory=SWAGGER_UI), name="swagger-ui")
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    asgi = socketio.ASGIApp(sio, other_asgi_app=app, socketio_path="socket.io")
    asgi.fastapi_app = app
    asgi.sio = sio
    asgi.bridge = bridge
    return asgi


async def _detect_stale_runs(settings: ApiSettings, sio: socketio.AsyncServer) -> None:
    """Every `ledger_stale_check_seconds`: mark crashed the runs whose heartbeat stopped
    (`LEDGER_STALE_AFTER_SECONDS`) and tell their rooms. Several API processes may run it at
    once; each run is settled, and announced, by exactly one of them (through Redis to all)."""
    while True:
        await asyncio.sleep(settings.ledger_stale_check_seconds)
        try:
            crashed = await anyio.to_thread.run_sync(
                lambda: crash_stale_runs(store_for(settings), settings.ledger_stale_after_seconds))
        except Exception as error:  # noqa: BLE001 - the database may be down for a while; try again later
            log.warning("stale-run check failed: %s", error)
            continue
        for run in crashed:
            await emit_to_vendor(sio, SYNC_ERROR, {"syncId": run.sync_id, "vendorId": run.vendor_id,
                                                   "state": run.state.value, "error": run.error}, run.vendor_id)


async def _stop_socket_server(sio: socketio.AsyncServer) -> None:
    """Stop Socket.IO's background tasks (Engine.IO's service task, the Redis listener)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sio.shutdown(), 2)
    listener = getattr(sio.manager, "thread", None)
    if isinstance(listener, asyncio.Future) and not listener.done():
        listener.cancel()
        await asyncio.wait([listener], timeout=2)


def kinds_javascript() -> str:
    """An ES module with the steps of a sync and the kinds of source documents (`ledger.kinds`)."""
    steps = [{"key": step, "label": step_label(step)} for step in sync_steps()]
    kinds = [{"type": kind.type, "step": kind.step, "label": kind.label, "noun": kind.noun,
              "collection": kind.collection} for kind in registered_kinds()]
    return ("// Generated by the API from the registry of source kinds (ledger/kinds); do not edit.\n"
            f"export const STEPS = {json.dumps(steps)};\nexport const KINDS = {json.dumps(kinds)};\n")


def _prefect_api_url_from_profile() -> str | None:
    try:
        from prefect.settings import PREFECT_API_URL

        return PREFECT_API_URL.value()
    except Exception:  # noqa: BLE001
        return None
