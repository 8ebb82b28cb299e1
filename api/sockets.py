"""Socket.IO: live sync events in per-vendor rooms.

A client connects with `auth: {token}` (the same JWT as the REST API) and then
emits `join_vendor_room`; it can only ever join `vendor:<its own vendor id>`, and is
disconnected when that token expires.
Server events: `sync_progress`, `sync_complete`, `sync_error` (SPEC §6).
With `REDIS_URL`, an `AsyncRedisManager` fans emits out to every API process
(the polling transport then needs sticky sessions: docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import time

import socketio

from api.auth import LEEWAY_SECONDS, AuthError, verify_token

log = logging.getLogger("ledger_sync.api.sockets")

SYNC_PROGRESS = "sync_progress"
SYNC_COMPLETE = "sync_complete"
SYNC_ERROR = "sync_error"


def vendor_room(vendor_id: str) -> str:
    return f"vendor:{vendor_id}"


def create_socket_server(jwt_secret: str, cors_origins: list[str] | str | None, redis_url: str | None = None,
                         **engineio_options) -> socketio.AsyncServer:
    manager = socketio.AsyncRedisManager(redis_url, channel="ledger-sync-socketio") if redis_url else None
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins=cors_origins,
                               ping_interval=20, ping_timeout=20, **engineio_options)
    expiry_timers: dict[str, asyncio.Task] = {}

    async def disconnect_when_expired(sid: str, vendor_id: str, expires_at: int) -> None:
        """A connection is good for as long as the token that opened it (and the leeway a request gets)."""
        await asyncio.sleep(max(0.0, expires_at + LEEWAY_SECONDS - time.time()))
        log.info("socket token expired vendor=%s sid=%s: disconnecting", vendor_id, sid)
        await sio.disconnect(sid)

    @sio.event
    async def connect(sid, environ, auth):
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:  # non-browser clients may send the header instead
            from api.auth import bearer_token
            token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        try:
            caller = verify_token(token, jwt_secret)
        except AuthError as error:
            raise socketio.exceptions.ConnectionRefusedError(
                "unauthorized", {"code": error.code, "message": error.message}) from None
        await sio.save_session(sid, {"vendorId": caller.vendor_id, "exp": caller.expires_at})
        expiry_timers[sid] = asyncio.create_task(disconnect_when_expired(sid, caller.vendor_id, caller.expires_at))

    @sio.event
    async def disconnect(sid, *reason):
        timer = expiry_timers.pop(sid, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    @sio.event
    async def join_vendor_room(sid, data=None):
        session = await sio.get_session(sid)
        own = session["vendorId"]
        if session["exp"] < time.time():
            return {"ok": False, "code": "token_expired", "error": "Your token has expired; reconnect with a new one."}
        wanted = own
        if isinstance(data, dict) and data.get("vendorId") is not None:
            wanted = data.get("vendorId")
        elif isinstance(data, str) and data:
            wanted = data
        if wanted != own:
            return {"ok": False, "code": "forbidden",
                    "error": "You can only join your own vendor's room; this token is not for that vendor."}
        room = vendor_room(own)
        await sio.enter_room(sid, room)
        return {"ok": True, "room": room}

    @sio.event
    async def leave_vendor_room(sid, data=None):
        session = await sio.get_session(sid)
        await sio.leave_room(sid, vendor_room(session["vendorId"]))
        return {"ok": True}

    return sio


async def emit_to_vendor(sio: socketio.AsyncServer, event: str, payload: dict, vendor_id: str,
                         local_only: bool = False) -> None:
    """Send an event to a vendor's room. `local_only`: only this process's clients (the events
    bridge of every API process forwards the Prefect stream to its own clients)."""
    await sio.emit(event, payload, room=vendor_room(vendor_id), ignore_queue=local_only)
