"""Without a running stack, CLI syncs share one background Prefect server per LEDGER_HOME (cli/prefect_background.py):
started by the first, reused by the next, replaced when its state file is stale, stopped by itself when unused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli import prefect_background
from cli.demo_data import load


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _answers(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _timed_sync(env: dict, cwd: Path, runs, vendor: str) -> tuple[float, dict]:
    """A CLI sync, and how long after it was started its run was running (the first progress a user sees)."""
    seen = {run["_id"] for run in runs.find({}, {"_id": 1})}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "sync", "--vendor", vendor, "--json"], env=env,
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_progress = None
    while process.poll() is None:
        if first_progress is None and runs.find_one({"_id": {"$nin": list(seen)}, "state": "running"}):
            first_progress = time.monotonic() - started
        time.sleep(0.05)
    out, err = process.communicate()
    assert process.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["state"] == "completed", summary
    return first_progress if first_progress is not None else time.monotonic() - started, summary


def test_two_cli_syncs_from_one_directory_share_one_background_prefect_server(db, tmp_path):
    home = tmp_path / ".ledger-sync"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(LEDGER_HOME=str(home))
    load(db, ["acme"], documents=120)
    try:
        cold, first = _timed_sync(env, tmp_path, db.ledger_sync_runs, "acme")
        state = json.loads((home / "prefect-cli.json").read_text())
        # The server outlives the command that started it, and answers.
        assert _alive(state["pid"]) and _alive(state["serverPid"]) and _answers(state["apiUrl"])
        assert state["apiUrl"] == f"http://127.0.0.1:{state['port']}/api"

        warm, second = _timed_sync(env, tmp_path, db.ledger_sync_runs, "acme")
        assert json.loads((home / "prefect-cli.json").read_text()) == state  # the same server: port and pids
        assert second["syncId"] != first["syncId"] and second["stats"]["total"]["synced"] == 0
        print(f"\nMEASURE CLI sync first progress: cold {cold:.1f}s, warm {warm:.1f}s")
        assert warm < cold
    finally:
        prefect_background.stop(home)
    assert not (home / "prefect-cli.json").exists() and not _alive(state["pid"]) and not _alive(state["serverPid"])


def test_a_stale_state_file_is_replaced_and_an_unused_server_stops_itself(tmp_path):
    paths = prefect_background.Paths(tmp_path / ".ledger-sync")
    paths.prefect_home.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with socket.socket() as taken:  # its port is another process's now
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        prefect_background.write_json(paths.state_file, {"pid": dead.pid, "serverPid": dead.pid, "port": port,
                                                         "apiUrl": f"http://127.0.0.1:{port}/api"})
        lease = prefect_background.acquire(paths.ledger_home, idle_stop_seconds=2)
        try:
            state = json.loads(paths.state_file.read_text())
            assert state["pid"] != dead.pid and state["port"] != port and lease.api_url == state["apiUrl"]
            assert _alive(state["pid"]) and _answers(lease.api_url)
            time.sleep(4)  # twice the idle time, but in use all along: it keeps running
            assert _answers(lease.api_url) and paths.state_file.exists()
        except BaseException:
            prefect_background.stop(paths.ledger_home)
            raise
        finally:
            lease.release()
        deadline = time.monotonic() + 30
        while (_alive(state["pid"]) or _alive(state["serverPid"])) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            assert not _alive(state["pid"]) and not _alive(state["serverPid"]), "the unused server did not stop"
            assert not paths.state_file.exists() and not _answers(lease.api_url)
            assert "unused for 2s, stopping" in (paths.ledger_home / "logs" / "prefect-cli.log").read_text()
        finally:
            prefect_background.stop(paths.ledger_home)


def test_a_background_server_that_does_not_start_fails_the_sync_without_blocking_the_vendor(db, tmp_path, monkeypatch,
                                                                                           capsys):
    from cli.main import EXIT_FAILED, main
    from flows.database import get_store

    def no_server(*_args) -> str:
        raise prefect_background.BackgroundPrefectError("the background Prefect server did not start (exit 1)")

    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / ".ledger-sync"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # What the CLI sets for the Prefect it would import, restored afterwards for the tests after this one.
    monkeypatch.setenv("PREFECT_HOME", os.environ.get("PREFECT_HOME", str(Path.home() / ".prefect")))
    monkeypatch.setattr(prefect_background, "hold", no_server)
    load(db, ["acme"], documents=20)
    assert main(["sync", "--vendor", "acme", "--json"]) == EXIT_FAILED
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["state"] == "failed" and "background Prefect server did not start" in summary["error"]
    assert "Traceback" not in captured.err
    assert get_store().runs.get(summary["syncId"]).state == "failed" and get_store().runs.active() == []
