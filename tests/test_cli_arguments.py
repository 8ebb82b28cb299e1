"""The CLI refuses what the API would refuse, with a message and exit code 2, never a traceback."""

from __future__ import annotations

import socket

import jwt

from cli.main import EXIT_USAGE, main
from cli.stack import choose_port


def test_token_for_a_vendor_id_with_a_newline_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path))
    monkeypatch.delenv("LEDGER_JWT_SECRET", raising=False)
    from flows.settings import get_settings

    get_settings.cache_clear()
    from api.settings import get_api_settings

    get_api_settings.cache_clear()
    try:
        assert main(["token", "--vendor", "a\n"]) == EXIT_USAGE
        captured = capsys.readouterr()
        assert captured.out == "" and "not a valid vendor id" in captured.err
        assert main(["token", "--vendor", "a"]) == 0
        token = capsys.readouterr().out.strip()
        secret = (tmp_path / "jwt-secret").read_text().strip()  # the generated local secret `up` uses too
        assert jwt.decode(token, secret, algorithms=["HS256"])["vendorId"] == "a"
    finally:
        get_settings.cache_clear()
        get_api_settings.cache_clear()


def test_a_taken_default_port_is_replaced_and_an_explicit_one_is_kept():
    lines: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        replacement = choose_port(port, explicit=False, what="prefect", echo=lines.append)
        assert replacement != port and lines == [f"prefect       port {port} is in use: using {replacement} instead"]
        assert choose_port(port, explicit=True, what="prefect", echo=lines.append) == port  # start fails, clearly


def test_a_second_sync_of_a_running_vendor_exits_3_at_once(db, monkeypatch, tmp_path, capsys):
    """The vendor's run is claimed before the flow starts: refused without a flow run or a traceback."""
    import time

    from cli.main import EXIT_ALREADY_RUNNING
    from flows.database import get_store
    from ledger.clock import utc_now
    from ledger.sync_run import SyncParameters, SyncRun

    monkeypatch.setenv("LEDGER_HOME", str(tmp_path))
    get_store().runs.create(SyncRun.new("sync_v1_running", "v1", SyncParameters(), {}, {}, 1, utc_now()))
    began = time.monotonic()
    assert main(["sync", "--vendor", "v1", "--json"]) == EXIT_ALREADY_RUNNING
    assert time.monotonic() - began < 5
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "already running for v1: sync_v1_running" in captured.err
    assert '"state": "running"' in captured.out
