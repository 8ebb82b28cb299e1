"""Every route and the socket refuse a caller without a valid token, and never show another vendor's data."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import UTC, datetime

import jwt
import pytest
import socketio

from api.auth import LEEWAY_SECONDS, issue_token
from tests.api.conftest import SECRET, bearer, token_for

ROUTES = [
    ("POST", "/api/ledger/sync-data"),
    ("GET", "/api/ledger/sync-status/sync_x_1"),
    ("GET", "/api/ledger/sync-runs"),
    ("POST", "/api/ledger/sync-runs/sync_x_1/cancel"),
    ("POST", "/api/ledger/sync-runs/sync_x_1/resume"),
    ("GET", "/api/ledger/sync-runs/sync_x_1/errors"),
    ("GET", "/api/ledger/trial-balance"),
    ("GET", "/api/ledger/entries?sourceId=abc"),
    ("GET", "/api/ledger/trial-balance?asOf=2026-03-31"),
    ("GET", "/api/ledger/verify"),
    ("GET", "/api/ledger/live"),
    ("GET", "/api/ledger/periods"),
    ("POST", "/api/ledger/periods/close"),
    ("POST", "/api/ledger/periods/reopen"),
    ("GET", "/api/ledger/accounts"),
    ("GET", "/api/ledger/accounts/bank/ledger"),
    ("GET", "/api/ledger/reports/profit-and-loss"),
    ("GET", "/api/ledger/reports/balance-sheet"),
    ("GET", "/api/ledger/reports/aging?side=receivable"),
    ("GET", "/api/ledger/documents/sales_invoice/abc/history"),
    ("GET", "/api/ledger/export?format=csv"),
]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens() -> dict[str, tuple[str | None, str]]:
    now = int(time.time())
    return {
        "missing": (None, "missing_token"),
        "garbage": ("Bearer not-a-jwt", "invalid_token"),
        "wrong scheme": (f"Basic {token_for('v1')}", "invalid_token"),
        "wrong signature": ("Bearer " + issue_token("v1", "another-secret-" + "y" * 40), "invalid_token"),
        "alg none": ("Bearer " + _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({"vendorId": "v1", "exp": now + 600})
                     + ".", "invalid_token"),
        "HS512": ("Bearer " + jwt.encode({"vendorId": "v1", "exp": now + 600}, SECRET, algorithm="HS512"),
                  "invalid_token"),
        "no exp": ("Bearer " + jwt.encode({"vendorId": "v1"}, SECRET, algorithm="HS256"), "invalid_token"),
        "no vendorId": ("Bearer " + jwt.encode({"exp": now + 600}, SECRET, algorithm="HS256"), "invalid_token"),
        "vendorId not a string": ("Bearer " + jwt.encode({"exp": now + 600, "vendorId": {"$ne": 1}}, SECRET,
                                                         algorithm="HS256"), "invalid_token"),
        # `re.match` with `$` took "a\n" for a vendor id (its runs could not be reached by the REST path).
        "vendorId with a newline": ("Bearer " + jwt.encode({"exp": now + 600, "vendorId": "a\n"}, SECRET,
                                                           algorithm="HS256"), "invalid_token"),
        # PyJWT alone takes a numeric string for a number: `exp` must be a JSON number.
        "exp a string": ("Bearer " + jwt.encode({"vendorId": "v1", "exp": str(now + 600)}, SECRET, algorithm="HS256"),
                         "invalid_token"),
        "exp Infinity": ("Bearer " + jwt.encode({"vendorId": "v1", "exp": float("inf")}, SECRET, algorithm="HS256"),
                         "invalid_token"),
        "exp true": ("Bearer " + jwt.encode({"vendorId": "v1", "exp": True}, SECRET, algorithm="HS256"),
                     "invalid_token"),
        "expired": ("Bearer " + jwt.encode({"vendorId": "v1", "exp": now - 60}, SECRET, algorithm="HS256"),
                    "token_expired"),
    }


CASES = ["missing", "garbage", "wrong scheme", "wrong signature", "alg none", "HS512", "no exp", "no vendorId",
         "vendorId not a string", "vendorId with a newline", "exp a string", "exp Infinity", "exp true", "expired"]


def test_no_token_is_issued_for_a_vendor_id_with_a_newline():
    with pytest.raises(ValueError, match="not a valid vendor id"):
        issue_token("a\n", SECRET)
    assert jwt.decode(issue_token("a", SECRET), SECRET, algorithms=["HS256"])["vendorId"] == "a"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("case", CASES)
async def test_every_route_refuses_a_bad_token(http, case):
    header, code = bad_tokens()[case]
    for method, path in ROUTES:
        headers = {"Authorization": header} if header else {}
        response = await http.request(method, path, headers=headers)
        assert response.status_code == 401, (case, path, response.text)
        detail = response.json()["detail"]
        assert detail["code"] == code and detail["message"], (case, path, detail)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_another_vendors_sync_is_not_found_like_a_missing_one(http, mongo, new_vendor):
    owner, intruder = new_vendor("own"), new_vendor("intr")
    mongo.ledger_sync_runs.insert_one({"_id": f"sync_{owner}_1", "syncId": f"sync_{owner}_1", "vendorId": owner,
                                       "state": "failed", "parameters": {}, "steps": {}, "stats": {}})
    mongo.ledger_sync_errors.insert_one({"_id": "e1", "syncId": f"sync_{owner}_1", "vendorId": owner,
                                         "sourceType": "expense", "sourceId": "x", "reason": "secret"})
    for method, suffix in [("GET", "sync-status/{}"), ("GET", "sync-runs/{}/errors"), ("POST", "sync-runs/{}/cancel"),
                           ("POST", "sync-runs/{}/resume")]:
        theirs = await http.request(method, "/api/ledger/" + suffix.format(f"sync_{owner}_1"), headers=bearer(intruder))
        nobody = await http.request(method, "/api/ledger/" + suffix.format(f"sync_{owner}_2"), headers=bearer(intruder))
        assert theirs.status_code == nobody.status_code == 404, (suffix, theirs.text)
        assert theirs.json() == nobody.json()
    runs = (await http.get("/api/ledger/sync-runs", headers=bearer(intruder))).json()
    assert runs == {"vendorId": intruder, "runs": []}
    # the owner sees it
    assert (await http.get(f"/api/ledger/sync-status/sync_{owner}_1", headers=bearer(owner))).status_code == 200
    # naming another vendor in the body is forbidden
    forbidden = await http.post("/api/ledger/sync-data", headers=bearer(intruder), json={"vendorId": owner})
    assert forbidden.status_code == 403 and forbidden.json()["detail"]["code"] == "forbidden"
    assert mongo.ledger_sync_runs.count_documents({"vendorId": {"$in": [owner, intruder]}, "active": True}) == 0


async def test_entries_never_take_an_operator_from_the_client(http, mongo, new_vendor):
    vendor = new_vendor("inj")
    mongo.ledger_entries.insert_one({"_id": f"{vendor}-e1", "vendorId": vendor, "date": None,
                                     "source": {"type": "expense", "id": "plain-id"}, "lines": [],
                                     "fingerprint": "f", "syncId": "s"})
    ok = await http.get("/api/ledger/entries", params={"sourceId": "plain-id", "sourceType": "expense"},
                        headers=bearer(vendor))
    assert ok.status_code == 200 and [e["id"] for e in ok.json()["entries"]] == [f"{vendor}-e1"]
    for attempt in ('{"$ne": null}', "[$ne]=1"):
        response = await http.get("/api/ledger/entries", params={"sourceId": attempt}, headers=bearer(vendor))
        assert response.status_code == 200 and response.json()["entries"] == []
    response = await http.get("/api/ledger/entries?sourceId[$ne]=x", headers=bearer(vendor))
    assert response.status_code == 422
    bad_type = await http.get("/api/ledger/entries", params={"sourceId": "x", "sourceType": "invoices"},
                              headers=bearer(vendor))
    assert bad_type.status_code == 422 and "sourceType" in bad_type.text


@pytest.mark.parametrize("body, field", [
    ({"dateFrom": "2026-13-01"}, "dateFrom"),
    ({"dateTo": "yesterday"}, "dateTo"),
    ({"dateFrom": "2026-03-01", "dateTo": "2026-02-01"}, "dateTo"),
    ({"types": ["sales_invoices", "bananas"]}, "types"),
    ({"types": []}, "types"),
    ({"full": "maybe"}, "full"),
    ({"surprise": 1}, "surprise"),
])
async def test_bad_parameters_are_422_naming_the_field(http, new_vendor, body, field):
    response = await http.post("/api/ledger/sync-data", headers=bearer(new_vendor()), json=body)
    assert response.status_code == 422, response.text
    assert any(field in entry["loc"] for entry in response.json()["detail"]), response.json()


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_socket_refuses_bad_tokens_with_a_code(api):
    cases = {name: (header.split(" ", 1)[1] if header else None, code)
             for name, (header, code) in bad_tokens().items() if name != "wrong scheme"}
    for name, (token, code) in cases.items():
        client = socketio.AsyncClient(reconnection=False)
        refusals = []
        client.on("connect_error", refusals.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(api.url, auth={"token": token} if token else None, transports=["websocket"],
                                 wait_timeout=5)
        assert refusals and refusals[0]["message"] == "unauthorized", (name, refusals)
        assert refusals[0]["data"]["code"] == code, (name, refusals)
        await client.disconnect()


@pytest.mark.parametrize("token", [["a", "b"], 42, {"token": "x"}, True, 1.5, []], ids=repr)
async def test_a_socket_token_that_is_not_a_string_is_refused_cleanly(api, caplog, token):
    """The connect handler called `.strip()` on whatever `auth.token` was (AttributeError, a traceback)."""
    caplog.set_level(logging.INFO)
    client = socketio.AsyncClient(reconnection=False)
    refusals = []
    client.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(api.url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
    await client.disconnect()
    assert refusals and refusals[0]["message"] == "unauthorized", refusals
    assert refusals[0]["data"]["code"] == "invalid_token" and "string" in refusals[0]["data"]["message"]
    tracebacks = [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]
    assert tracebacks == [], [record.getMessage() for record in tracebacks]


async def test_a_socket_with_a_string_token_still_connects(api, new_vendor):
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(api.url, auth={"token": token_for(new_vendor())}, transports=["websocket"], wait_timeout=5)
    try:
        assert (await client.call("join_vendor_room", {}, timeout=5))["ok"]
    finally:
        await client.disconnect()


async def test_socket_is_disconnected_when_its_token_expires(api):
    """A token is good for a while; so is the connection it opened. Another one, with a later
    expiry, stays connected."""
    clients, gone = {}, {}
    for name, ttl in (("short", 1), ("long", 3600)):
        client = socketio.AsyncClient(reconnection=False)
        gone[name] = asyncio.Event()
        client.on("disconnect", lambda *reason, name=name: gone[name].set())
        await client.connect(api.url, auth={"token": issue_token("v-expiry", SECRET, ttl_seconds=ttl)},
                             transports=["websocket"], wait_timeout=5)
        assert (await client.call("join_vendor_room", {}, timeout=5))["ok"]
        clients[name] = client
    try:
        await asyncio.wait_for(gone["short"].wait(), timeout=1 + LEEWAY_SECONDS + 5)
        assert not clients["short"].connected
        assert clients["long"].connected and not gone["long"].is_set()
        assert (await clients["long"].call("join_vendor_room", {}, timeout=5))["ok"]
    finally:
        for client in clients.values():
            await client.disconnect()


async def test_socket_refusal_carries_the_code(api):
    """The JS client sees err.data.code; check the raw Engine.IO/Socket.IO handshake answer."""
    import httpx

    async with httpx.AsyncClient(base_url=api.url) as client:
        handshake = await client.get("/socket.io/?EIO=4&transport=polling")
        sid = json.loads(handshake.text[1:])["sid"]
        await client.post(f"/socket.io/?EIO=4&transport=polling&sid={sid}", content='40{"token":"garbage"}')
        answer = await client.get(f"/socket.io/?EIO=4&transport=polling&sid={sid}")
        assert answer.text.startswith("44"), answer.text
        payload = json.loads(answer.text[2:])
        assert payload["message"] == "unauthorized" and payload["data"]["code"] == "invalid_token"


async def test_dev_routes_only_when_switched_on_in_development(stack_env):
    """`/api/dev/token` mints a token for any vendor: only with LEDGER_DEV_ROUTES (`up --dev`), and never
    outside development. Development alone (a generated local secret) does not serve it."""
    import httpx

    from api.main import create_app
    from api.settings import ConfigurationError
    from tests.api.conftest import api_settings

    async def dev_statuses(**overrides) -> tuple[int, int]:
        app = create_app(api_settings(stack_env, **overrides), start_bridge=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.fastapi_app), base_url="http://x") as client:
            token = await client.get("/api/dev/token", params={"vendor": "v1"})
            return token.status_code, (await client.get("/api/dev/vendors")).status_code

    assert await dev_statuses(ledger_env="development", ledger_dev_routes=False) == (404, 404)
    assert await dev_statuses(ledger_env="production", ledger_dev_routes=False) == (404, 404)
    assert (await dev_statuses(ledger_env="development", ledger_dev_routes=True))[0] == 200
    with pytest.raises(ConfigurationError, match="LEDGER_DEV_ROUTES=true needs LEDGER_ENV=development"):
        create_app(api_settings(stack_env, ledger_env="production", ledger_dev_routes=True), start_bridge=False)


def test_no_secret_outside_development_refuses_to_start(stack_env, tmp_path):
    from api.main import create_app
    from api.settings import ConfigurationError
    from tests.api.conftest import api_settings

    with pytest.raises(ConfigurationError, match="LEDGER_JWT_SECRET"):
        create_app(api_settings(stack_env, ledger_jwt_secret=None, ledger_env="production"))
    dev = api_settings(stack_env, ledger_jwt_secret=None, ledger_env="development", ledger_home=tmp_path)
    first = dev.resolve_jwt_secret()
    assert first == dev.resolve_jwt_secret() and len(first) >= 32
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600


async def test_openapi_describes_every_route(http):
    spec = (await http.get("/openapi.json")).json()
    paths = spec["paths"]
    for method, path in ROUTES:
        template = path.split("?")[0].replace("sync_x_1", "{syncId}") \
            .replace("/accounts/bank/", "/accounts/{account}/") \
            .replace("/documents/sales_invoice/abc/", "/documents/{sourceType}/{sourceId}/")
        operation = paths[template][method.lower()]
        assert operation.get("summary") and "401" in operation["responses"], template
        success = next(code for code in operation["responses"] if code.startswith("2"))
        content = operation["responses"][success]["content"]
        assert content.get("application/json", content.get("text/csv"))["schema"], template
    assert "/api/health" in paths


async def test_the_books_show_only_the_tokens_vendor(http, mongo, new_vendor):
    """Every reading route answers for the token's vendor alone: another vendor's entries never show."""
    from bson.decimal128 import Decimal128

    owner, intruder = new_vendor("bko"), new_vendor("bki")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    mongo.ledger_entries.insert_one({
        "_id": f"{owner}-e1", "vendorId": owner, "date": when, "fingerprint": "f", "syncId": "s1",
        "source": {"type": "sales_invoice", "id": "inv-1", "number": "INV-1", "documentDate": when,
                   "party": {"id": "c1", "name": "Secret Customer"}},
        "lines": [{"account": "accounts_receivable", "debit": Decimal128("100.00"), "credit": Decimal128("0.00")},
                  {"account": "sales", "debit": Decimal128("0.00"), "credit": Decimal128("100.00")}]})
    paths = ["/api/ledger/accounts", "/api/ledger/accounts/accounts_receivable/ledger",
             "/api/ledger/reports/profit-and-loss", "/api/ledger/reports/balance-sheet",
             "/api/ledger/reports/aging?side=receivable&asOf=2026-03-31",
             "/api/ledger/documents/sales_invoice/inv-1/history", "/api/ledger/export?format=csv",
             "/api/ledger/export?format=beancount"]
    for path in paths:
        mine = await http.get(path, headers=bearer(owner))
        theirs = await http.get(path, headers=bearer(intruder))
        assert mine.status_code == theirs.status_code == 200, (path, mine.text, theirs.text)
        assert "100.00" in mine.text, (path, mine.text)
        assert "INV-1" not in theirs.text and "100.00" not in theirs.text and "Secret" not in theirs.text, path
    aging = (await http.get(paths[4], headers=bearer(owner))).json()
    assert aging["total"] == "100.00" and aging["parties"][0]["party"] == {"id": "c1", "name": "Secret Customer"}
    bad = await http.get("/api/ledger/accounts/bank/ledger?cursor=nonsense", headers=bearer(owner))
    assert bad.status_code == 422 and "cursor" in bad.text
    backwards = await http.get("/api/ledger/reports/profit-and-loss?from=2026-03-02&to=2026-03-01",
                               headers=bearer(owner))
    assert backwards.status_code == 422 and "to" in backwards.text
