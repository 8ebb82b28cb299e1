"""The CLI's background Prefect server: started once, reused by every `ledger-sync sync`/`watch`, stopped when idle.

Without a running stack, each CLI sync used to start an ephemeral Prefect server and tear it
down again: 93–95% of the wall time of a small sync. Instead the first CLI command starts
`prefect server start` on a free port under a small keeper process (`python -m cli.prefect_background`),
detached from the terminal, with its home and SQLite database in <LEDGER_HOME>/prefect-cli (the
server's log in its logs/, the keeper's in <LEDGER_HOME>/logs/prefect-cli.log). The keeper writes
<LEDGER_HOME>/prefect-cli.json (port, pids, API URL) once the server answers /api/health; later
commands find it there and check it before use.

Idle stop: every command using the server holds a shared lock on prefect-cli/users.lock (and touches
it when it starts and ends). The keeper polls that lock; once nobody has held it for
LEDGER_PREFECT_IDLE_STOP_SECONDS (default 900) it stops the server and removes the state file.

Crashes: locks are `flock`s (released when their holder dies); a state file whose keeper is dead, is
not this keeper (a reused pid) or whose server does not answer is stale, and the next command stops
what is left of it and starts a new one on a new free port. A start in progress holds
prefect-cli/start.lock, so two commands at once share one server.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

MODULE = "cli.prefect_background"
START_TIMEOUT_SECONDS = 120.0
UNHEALTHY_GRACE_SECONDS = 15.0  # a loaded machine can keep a healthy server from answering for a while


class BackgroundPrefectError(RuntimeError):
    pass


class Paths:
    """Where a LEDGER_HOME's background Prefect server keeps its state."""

    def __init__(self, ledger_home: Path):
        home = ledger_home.resolve()
        self.ledger_home = home
        self.state_file = home / "prefect-cli.json"
        self.prefect_home = home / "prefect-cli"
        self.start_lock = self.prefect_home / "start.lock"
        self.users_lock = self.prefect_home / "users.lock"
        self.log_file = home / "logs" / "prefect-cli.log"


# ---- the CLI's side -----------------------------------------------------------------------

class Lease:
    """This process uses the server: a shared lock on users.lock (touched when taken and released), so the
    keeper does not stop the server meanwhile, however long the command runs. A process that dies releases it."""

    def __init__(self, paths: Paths, api_url: str):
        self.paths, self.api_url = paths, api_url
        self._handle: IO[str] | None = open(paths.users_lock, "a")  # noqa: SIM115 - closed by release()
        fcntl.flock(self._handle, fcntl.LOCK_SH)
        _touch(paths.users_lock)

    def release(self) -> None:
        if self._handle is not None:
            _touch(self.paths.users_lock)
            self._handle.close()
            self._handle = None


def acquire(ledger_home: Path, idle_stop_seconds: float) -> Lease:
    """A lease on this home's background Prefect server, started first if none runs healthy."""
    paths = Paths(ledger_home)
    paths.prefect_home.mkdir(parents=True, exist_ok=True)
    with _locked(paths.start_lock, fcntl.LOCK_EX):
        state = read_state(paths) or _start(paths, idle_stop_seconds)
        return Lease(paths, str(state["apiUrl"]))


_held: list[Lease] = []


def hold(ledger_home: Path, idle_stop_seconds: float) -> str:
    """The API URL of this home's background server, held until this process exits (see `acquire`)."""
    if not _held:
        _held.append(acquire(ledger_home, idle_stop_seconds))
        atexit.register(_held[0].release)
    return _held[0].api_url


def read_state(paths: Paths) -> dict | None:
    """The running server's state if its keeper is alive and the server answers; otherwise whatever is left of
    it (a dead keeper's server, a hung one) is stopped, the state file removed, and None returned."""
    try:
        state = json.loads(paths.state_file.read_text())
        keeper, server, api_url = int(state["pid"]), int(state["serverPid"]), str(state["apiUrl"])
    except (OSError, ValueError, KeyError, TypeError):
        paths.state_file.unlink(missing_ok=True)
        return None
    if _is_keeper(keeper, paths):
        deadline = time.monotonic() + UNHEALTHY_GRACE_SECONDS
        while _is_keeper(keeper, paths):
            if _healthy(api_url):
                return state
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    _stop_group(keeper, paths)
    _stop_group(server, paths)
    paths.state_file.unlink(missing_ok=True)
    return None


def stop(ledger_home: Path) -> bool:
    """Stop this home's background server now (whether or not it is in use); whether one ran."""
    paths = Paths(ledger_home)
    try:
        state = json.loads(paths.state_file.read_text())
    except (OSError, ValueError):
        return False
    running = _is_keeper(int(state.get("pid", 0)), paths)
    _stop_group(int(state.get("pid", 0)), paths)
    _stop_group(int(state.get("serverPid", 0)), paths)
    paths.state_file.unlink(missing_ok=True)
    return running


def _start(paths: Paths, idle_stop_seconds: float) -> dict:
    import subprocess

    paths.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(paths.log_file, "ab") as log:
        keeper = subprocess.Popen([sys.executable, "-m", MODULE, str(paths.ledger_home), str(idle_stop_seconds)],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, cwd=paths.ledger_home)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if keeper.poll() is not None:
            raise BackgroundPrefectError(f"the background Prefect server did not start (exit {keeper.returncode}); "
                                         f"its log: {paths.log_file}\n{_tail(paths.log_file)}")
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(paths.state_file.read_text())
            if state.get("pid") == keeper.pid:
                return state
        time.sleep(0.2)
    _stop_group(keeper.pid, paths)
    raise BackgroundPrefectError(f"the background Prefect server did not answer within {START_TIMEOUT_SECONDS:.0f}s; "
                                 f"its log: {paths.log_file}\n{_tail(paths.log_file)}")


# ---- the keeper ---------------------------------------------------------------------------

def keep(ledger_home: Path, idle_stop_seconds: float, poll_seconds: float = 1.0) -> int:
    """Run the server until it has been unused for `idle_stop_seconds` (or SIGTERM, or the server died)."""
    from cli.embedded_db import free_port
    from cli.stack import StackError, start_prefect_server

    paths = Paths(ledger_home)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        try:
            server, api_url = start_prefect_server(paths.prefect_home, free_port(), dict(os.environ),
                                                   log_dir=paths.prefect_home / "logs")
            break
        except StackError as error:
            print(f"background Prefect server: {error}", file=sys.stderr, flush=True)
    else:
        return 1
    write_json(paths.state_file, {"pid": os.getpid(), "serverPid": server.pid, "apiUrl": api_url,
                                  "port": int(api_url.rsplit(":", 1)[1].split("/")[0]),
                                  "idleStopSeconds": idle_stop_seconds, "startedAt": time.time()})
    print(f"background Prefect server {api_url} (pid {server.pid}); stops after {idle_stop_seconds:g}s unused",
          file=sys.stderr, flush=True)
    last_used = time.time()
    try:
        while not stopping and server.alive:
            time.sleep(poll_seconds)
            last_used = max(last_used, _last_used(paths))
            if time.time() - last_used < idle_stop_seconds:
                continue
            with _locked(paths.start_lock, fcntl.LOCK_EX):  # no command can pick the server up while it stops
                if time.time() - _last_used(paths) >= idle_stop_seconds:
                    print(f"background Prefect server: unused for {idle_stop_seconds:g}s, stopping", file=sys.stderr,
                          flush=True)
                    _remove_own_state(paths)
                    server.stop()
                    return 0
        return 0 if stopping else 1
    finally:
        _remove_own_state(paths)
        server.stop()


def _last_used(paths: Paths) -> float:
    """Now if a command holds the server; else when one last touched it."""
    with open(paths.users_lock, "a") as users:
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return time.time()
        fcntl.flock(users, fcntl.LOCK_UN)
    return paths.users_lock.stat().st_mtime


def _remove_own_state(paths: Paths) -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(paths.state_file.read_text()).get("pid") == os.getpid():
            paths.state_file.unlink()


# ---- helpers ------------------------------------------------------------------------------

@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[IO[str]]:
    with open(path, "a") as handle:
        fcntl.flock(handle, operation)
        yield handle


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def write_json(path: Path, value: dict) -> None:
    """Written whole or not at all: a reader never sees half a state file."""
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(value))
    partial.replace(path)


def _healthy(api_url: str) -> bool:
    from cli.stack import http_ok

    return http_ok(f"{api_url}/health", timeout=2)


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_keeper(pid: int, paths: Paths) -> bool:
    """Whether `pid` is alive and is this home's keeper (not another process that got a dead keeper's pid)."""
    line = _command_line(pid)
    return pid > 0 and MODULE in line and str(paths.ledger_home) in line and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _stop_group(pid: int, paths: Paths, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by `pid` (then SIGKILL) if `pid` is this home's keeper or its Prefect
    server; leaves any other process alone."""
    line = _command_line(pid)
    if pid <= 0 or not (_is_keeper(pid, paths) or ("prefect" in line and "server" in line and
                                                     str(paths.prefect_home) in _environ(pid))):
        return
    from cli.stack import _stop_group as stop_group

    stop_group(pid, timeout)


def _environ(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(keep(Path(sys.argv[1]), float(sys.argv[2])))
