"""`ledger-sync up`: the whole stack on one machine, started in order, stopped in reverse.

1. the database: the embedded MongoDB-wire server (unless MONGODB_URI is set);
2. a Prefect server (`prefect server start`, SQLite under <LEDGER_HOME>/prefect)
   unless PREFECT_API_URL points at one already;
3. the deployment server (`python -m flows.serve`): runs of `sync-vendor-ledger/on-demand` and the
   scheduled `sync-all-vendors/nightly` and `sync-all-vendors/weekly-full`;
4. the API (uvicorn, Socket.IO + REST + the web UI) on the given port.

Each is waited healthy before the next starts. Then `up` supervises them: a child
that dies is started again (backoff 1 s doubling to 30 s, back to 1 s once it has
stayed up a minute; each restart logged with its name, exit code and log), the
others keep running, and so do the syncs in flight (flow runs of a deployment
server that died run on and are stopped with the stack). The embedded database
comes back on the same port and storage. Ctrl-C or SIGTERM stops them in
reverse order and leaves nothing running. Every child runs in its own session
(so Ctrl-C in the terminal reaches only this process, which then stops them in
order); their logs go to <LEDGER_HOME>/logs/.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from cli.embedded_db import EmbeddedDatabase
    from ledger.store import Store

PROJECT_DIR = Path(__file__).resolve().parent.parent
QUIET_PREFECT = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}


class StackError(RuntimeError):
    pass


@dataclass
class ManagedProcess:
    """A child process we started (in its own session) and will stop; `restart()` runs the same command again."""

    name: str
    process: subprocess.Popen
    log_path: Path | None = None
    stop_timeout: float = 15.0
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = PROJECT_DIR
    # Answers whether it serves (for the "is back" line after a restart); None: being alive is enough.
    health: Callable[[], bool] | None = None
    # What the dead process left in its process group keeps running (the deployment server's in-flight
    # flow runs: they finish their syncs); those groups are stopped with the stack. Otherwise killed at once.
    keep_group_on_crash: bool = False
    leftover_groups: list[int] = field(default_factory=list)
    started_wall: float = field(default_factory=time.time)  # when this process (or its latest restart) started

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def pid(self) -> int:
        return self.process.pid

    def healthy(self) -> bool:
        return self.alive and (self.health is None or self.health())

    def restart(self) -> None:
        """Start the command again after the process died (what it left behind: see `keep_group_on_crash`)."""
        if self.alive:
            raise RuntimeError(f"{self.name} is still running")
        if self.keep_group_on_crash:
            self.leftover_groups.append(self.process.pid)
        else:
            _signal_group(self.process.pid, signal.SIGKILL)
        self.started_wall = time.time()
        self.process = _popen(self.argv, self.env, self.log_path, self.cwd)

    def stop(self) -> None:
        for group in self.leftover_groups:  # flow runs a crashed deployment server left running
            _stop_group(group, self.stop_timeout)
        self.leftover_groups.clear()
        if not self.alive:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # the child and whatever it started (flow runs)
        except ProcessLookupError:
            return
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _signal_group(group: int, sig: int) -> bool:
    try:
        os.killpg(group, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _stop_group(group: int, timeout: float) -> None:
    """SIGTERM a process group we no longer have a parent handle on; SIGKILL what is left after `timeout`."""
    if not _signal_group(group, signal.SIGTERM):
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _signal_group(group, 0):
            return
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies without stopping us (Linux), so nothing is left running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - other platforms: the parent's stop() still does it
        pass


def _popen(argv: list[str], env: dict[str, str], log_path: Path | None, cwd: Path) -> subprocess.Popen:
    output: IO[bytes] | int = subprocess.DEVNULL
    if log_path is not None:
        output = open(log_path, "ab")  # noqa: SIM115 - closed below
    try:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        if not isinstance(output, int):
            output.close()  # the child has its own copy


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None, cwd: Path = PROJECT_DIR,
          stop_timeout: float = 15.0) -> ManagedProcess:
    log_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
    return ManagedProcess(name, _popen(argv, env, log_path, cwd), log_path, stop_timeout, argv=list(argv),
                          env=dict(env), cwd=cwd)


def http_ok(url: str, ok: Callable[[bytes], bool] | None = None, timeout: float = 2.0) -> bool:
    """Whether GET url answers 200 (and `ok(body)`)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200 and (ok is None or ok(response.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_http(url: str, timeout: float, process: ManagedProcess | None = None,
              ok: Callable[[bytes], bool] | None = None) -> None:
    """Wait until GET url answers 200 (and `ok(body)`), or fail with the child's last log lines."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.alive:
            raise StackError(f"{process.name} exited with code {process.process.returncode}:\n{process.tail()}")
        if http_ok(url, ok):
            return
        if time.monotonic() > deadline:
            tail = process.tail() if process is not None else ""
            raise StackError(f"{url} did not become healthy within {timeout:.0f}s\n{tail}")
        time.sleep(0.25)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


# ---- the parts ---------------------------------------------------------------------

def start_prefect_server(prefect_home: Path, port: int, base_env: dict[str, str], log_dir: Path | None,
                         database_url: str | None = None, timeout: float = 90.0) -> tuple[ManagedProcess, str]:
    """`prefect server start` on 127.0.0.1:port; returns the process and its API URL once /api/health answers."""
    if not port_is_free(port):
        raise StackError(f"port {port} is in use: another Prefect server? Stop it, choose another port with "
                         "`--prefect-port N`, or set PREFECT_API_URL to use that server")
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = {**base_env, **QUIET_PREFECT, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    else:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}"
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
            "--analytics-off"]
    process = spawn("prefect-server", argv, env, log_dir, stop_timeout=20)
    api_url = f"http://127.0.0.1:{port}/api"
    process.health = lambda: http_ok(f"{api_url}/health", timeout=1)
    try:
        wait_http(f"{api_url}/health", timeout, process)
    except BaseException:
        process.stop()
        raise
    return process, api_url


def start_deployment_server(env: dict[str, str], log_dir: Path | None, api_url: str,
                            deployment: str = "sync-vendor-ledger/on-demand", timeout: float = 90.0) -> ManagedProcess:
    """`python -m flows.serve`, waited until the deployment exists and its runner polls for work."""
    child_env = {**env, **QUIET_PREFECT, "PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    process = spawn("deployment-server", [sys.executable, "-m", "flows.serve"], child_env, log_dir, stop_timeout=20)
    process.keep_group_on_crash = True  # its in-flight flow runs: see `InFlightSyncs`
    url, ready = _deployment_check(api_url, deployment)
    # Back once the deployment is READY *and* this process has polled for runs (Prefect keeps a deployment
    # READY for a while after its runner died).
    process.health = lambda: http_ok(url, lambda body: ready(body, process.started_wall), timeout=1)
    try:
        wait_deployment_ready(api_url, deployment, timeout, process)
    except BaseException:
        process.stop()
        raise
    return process


def _deployment_check(api_url: str, deployment: str) -> tuple[str, Callable[..., bool]]:
    """The URL of a deployment and the test of its body that says a runner polls for its runs
    (`since`: a runner polled at that time or later)."""
    flow_name, deployment_name = deployment.split("/", 1)

    def ready(body: bytes, since: float | None = None) -> bool:
        try:
            document = json.loads(body)
        except ValueError:
            return False
        if document.get("status") != "READY" or document.get("paused"):
            return False
        if since is None:
            return True
        try:
            polled = datetime.fromisoformat(document.get("last_polled") or "").timestamp()
        except ValueError:
            return False
        return polled >= since

    return f"{api_url}/deployments/name/{flow_name}/{deployment_name}", ready


def wait_deployment_ready(api_url: str, deployment: str, timeout: float, process: ManagedProcess | None = None) -> None:
    url, ready = _deployment_check(api_url, deployment)
    wait_http(url, timeout, process, ok=ready)


def start_api(env: dict[str, str], log_dir: Path | None, port: int, host: str = "127.0.0.1",
              timeout: float = 60.0) -> ManagedProcess:
    if not port_is_free(port, host):
        raise StackError(f"port {port} is in use: choose another with `ledger-sync up --port N`")
    argv = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", host, "--port", str(port),
            "--ws", "websockets-sansio", "--timeout-graceful-shutdown", "3", "--timeout-keep-alive", "30",
            "--no-access-log", "--log-level", "warning"]
    process = spawn("api", argv, env, log_dir, stop_timeout=10)
    process.health = lambda: http_ok(f"http://{host}:{port}/api/health", timeout=1)
    try:
        wait_http(f"http://{host}:{port}/api/health", timeout, process)
    except BaseException:
        process.stop()
        raise
    return process


# ---- supervision -----------------------------------------------------------------------

class DatabaseChild:
    """The embedded database as a supervised child: restarted on the same port and storage path."""

    name = "database"
    keep_group_on_crash = False

    def __init__(self, database):
        self.database = database

    @property
    def alive(self) -> bool:
        return self.database.returncode is None

    @property
    def returncode(self) -> int | None:
        return self.database.returncode

    @property
    def pid(self) -> int:
        return self.database.process.pid

    @property
    def log_path(self) -> Path | None:
        return self.database.log_path

    def healthy(self) -> bool:
        return self.alive and self.database.healthy()

    def restart(self) -> None:
        self.database.restart()


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


@dataclass
class _Watch:
    child: ManagedProcess | DatabaseChild
    started_at: float
    failures: int = 0  # consecutive quick deaths: the next delay is initial × 2^failures
    restarts: int = 0
    restart_at: float | None = None
    back_pending: bool = False


class Supervisor:
    """Keeps the stack's children running: one that dies is started again, the others are left alone.

    The delay before a restart starts at `initial` seconds and doubles with each death up to `maximum`;
    a child that stayed up `stable_seconds` starts again from `initial`. Each death, restart and return
    to health is echoed with the child's name, exit code and log. Call `tick()` regularly (it does not block
    beyond short health checks); it returns True when a child was restarted (its pid changed).
    """

    def __init__(self, children, echo: Callable[[str], None] = print, initial: float = 1.0, maximum: float = 30.0,
                 stable_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 on_death: Callable[[object], None] | None = None, on_back: Callable[[object], None] | None = None):
        self.echo, self.initial, self.maximum, self.stable_seconds, self.clock = (echo, initial, maximum,
                                                                                  stable_seconds, clock)
        self.on_death, self.on_back = on_death, on_back
        self.watches = [_Watch(child, clock()) for child in children]

    def tick(self) -> bool:
        restarted = False
        for watch in self.watches:
            child, now = watch.child, self.clock()
            if watch.restart_at is None:
                if child.alive:
                    if watch.back_pending and child.healthy():
                        watch.back_pending = False
                        self.echo(f"{child.name} is back: healthy {now - watch.started_at:.1f}s after restart "
                                  f"{watch.restarts}")
                        if self.on_back is not None:
                            self.on_back(child)
                    continue
                if now - watch.started_at >= self.stable_seconds:
                    watch.failures = 0
                delay = min(self.maximum, self.initial * 2 ** watch.failures)
                watch.failures += 1
                watch.restart_at = now + delay
                watch.back_pending = False
                self.echo(f"{child.name} exited with code {describe_exit(child.returncode)}; log: "
                          f"{child.log_path or '-'}. Restarting it in {delay:g}s; the rest of the stack keeps running.")
                if self.on_death is not None:
                    self.on_death(child)
            elif now >= watch.restart_at:
                watch.restarts += 1
                watch.started_at, watch.restart_at = now, None
                try:
                    child.restart()
                except Exception as error:  # noqa: BLE001 - e.g. the port is taken: it counts as a death
                    self.echo(f"{child.name} could not be restarted: {error}")
                    watch.restart_at = now + min(self.maximum, self.initial * 2 ** watch.failures)
                    watch.failures += 1
                    continue
                watch.back_pending = True
                restarted = True
                self.echo(f"{child.name} restarted (restart {watch.restarts}, pid {child.pid})")
        return restarted


class InFlightSyncs:
    """Syncs a dead deployment server was running are resumed once it is back.

    A flow run outlives the death of its deployment server only until it next writes a log line: its output
    is a pipe to the dead runner, so that write ends the run (Prefect reports it Crashed, the API marks the
    record `crashed`). The runs active when the server died are noted; once it is back, each that ended
    `crashed` is resumed through the API from its last checkpoint (same syncId; the room hears it go on),
    one that finished on its own is left alone, and one still running is watched until `give_up_seconds`.
    """

    def __init__(self, stack: Stack, store_factory: Callable[[], Store], echo: Callable[[str], None] = print,
                 give_up_seconds: float = 180.0, clock: Callable[[], float] = time.monotonic):
        self.stack, self.store_factory, self.echo = stack, store_factory, echo
        self.give_up_seconds, self.clock = give_up_seconds, clock
        self.noted: dict[str, tuple[str, float]] = {}  # syncId -> (vendorId, noted at)
        self.serving = True

    def died(self, child) -> None:
        if child.name != "deployment-server":
            return
        self.serving = False
        try:
            active = self.store_factory().runs.active()
        except Exception as error:  # noqa: BLE001 - the database may be what is down
            self.echo(f"could not list the syncs in flight ({error}); resume crashed ones by hand")
            return
        for run in active:
            self.noted.setdefault(run.sync_id, (run.vendor_id, self.clock()))
        if active:
            self.echo(f"{len(active)} sync(s) in flight: {', '.join(r.sync_id for r in active)}; those that crash "
                      "with it are resumed once the deployment server is back")

    def back(self, child) -> None:
        if child.name == "deployment-server":
            self.serving = True

    def tick(self) -> None:
        if not self.noted or not self.serving:
            return
        try:
            store = self.store_factory()
        except Exception:  # noqa: BLE001 - try again next tick
            return
        for sync_id, (vendor_id, noted_at) in list(self.noted.items()):
            try:
                run = store.runs.get(sync_id, vendor_id)
            except Exception:  # noqa: BLE001 - the database is restarting: next tick
                continue
            if run is not None and run.state == "crashed":
                outcome = self._resume(sync_id, vendor_id)
                if outcome is None:
                    continue  # the API did not answer: next tick
                self.echo(f"sync {sync_id}: {outcome}")
            elif run is not None and run.active and self.clock() - noted_at < self.give_up_seconds:
                continue  # still running (or queued): it may well finish on its own
            del self.noted[sync_id]

    def _resume(self, sync_id: str, vendor_id: str) -> str | None:
        request = urllib.request.Request(f"{self.stack.app_url}/api/ledger/sync-runs/{sync_id}/resume", data=b"",
                                         method="POST",
                                         headers={"Authorization": f"Bearer {self.stack.token_for(vendor_id)}"})
        try:
            with urllib.request.urlopen(request, timeout=30):
                return "crashed with the deployment server; resumed from its last checkpoint"
        except urllib.error.HTTPError as error:
            return f"crashed with the deployment server; could not resume it ({error.code}): {error.read()[:200]!r}"
        except (urllib.error.URLError, OSError):
            return None


# ---- the whole stack ------------------------------------------------------------------

@dataclass
class Stack:
    """What `run_stack` started; `stop()` ends it all in reverse order."""

    app_url: str = ""
    prefect_api_url: str = ""
    mongodb_uri: str = ""
    token: str = ""
    token_vendor: str = ""
    dev: bool = False
    jwt_secret: str = field(default="", repr=False)
    token_ttl_seconds: int = 8 * 3600
    env: dict[str, str] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    database: EmbeddedDatabase | None = None

    def token_for(self, vendor_id: str) -> str:
        """A token for any vendor, signed with the stack's secret (what `ledger-sync token` prints)."""
        from api.auth import issue_token

        return issue_token(vendor_id, self.jwt_secret, self.token_ttl_seconds)

    def children(self) -> list[ManagedProcess | DatabaseChild]:
        """What `up` supervises: the database it started (if any), then the processes in start order."""
        database = [DatabaseChild(self.database)] if self.database is not None else []
        return [*database, *self.processes]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.database is not None:
            self.database.stop()
            self.database = None


def choose_port(port: int, explicit: bool, what: str, echo: Callable[[str], None]) -> int:
    """`port`, or, when it is only the default and taken, a free one (said so); an explicit one is kept."""
    if explicit or port_is_free(port):
        return port
    from cli.embedded_db import free_port

    replacement = free_port()
    echo(f"{what:<13} port {port} is in use: using {replacement} instead")
    return replacement


def start_stack(port: int = 4000, prefect_port: int = 4200, echo: Callable[[str], None] = print,
                token_vendor: str | None = None, dev: bool = False, prefect_port_explicit: bool = True,
                watch: bool = False, port_explicit: bool = True) -> Stack:
    """Start every part in order (each healthy before the next); on any failure stop what started and raise.

    `dev` serves the unauthenticated development routes (`/api/dev/token` mints a token for any vendor).
    Without it the API still runs on a generated local secret (LEDGER_ENV=development) and the printed token,
    or `ledger-sync token --vendor V`, signs in. `prefect_port_explicit=False` (`port_explicit=False`): a taken
    `prefect_port` (`port`) is replaced by a free one. `watch`: also the change-stream watcher
    (`ledger-sync watch`), supervised like the rest.
    """
    from api.settings import ApiSettings
    from cli.embedded_db import EmbeddedDatabase

    os.environ.setdefault("LEDGER_ENV", "development")
    settings = ApiSettings()
    home = settings.ledger_home.resolve()
    log_dir = home / "logs"
    stack = Stack(dev=dev, token_ttl_seconds=settings.ledger_token_ttl_seconds)
    try:
        if settings.mongodb_uri:
            stack.mongodb_uri = settings.mongodb_uri
            echo(f"database      {settings.mongodb_uri} (MONGODB_URI)")
        else:
            log_dir.mkdir(parents=True, exist_ok=True)
            database = EmbeddedDatabase(home / "db", home / "mongo.json", log_path=log_dir / "database.log")
            stack.mongodb_uri = database.start()
            stack.database = database if database.owned else None
            echo(f"database      {stack.mongodb_uri} (embedded, data in {home / 'db'})")
        stack.jwt_secret = ApiSettings(ledger_home=home).resolve_jwt_secret()
        env = {**os.environ, "LEDGER_HOME": str(home), "MONGODB_URI": stack.mongodb_uri,
               "MONGODB_DB": settings.mongodb_db, "LEDGER_ENV": os.environ["LEDGER_ENV"],
               "LEDGER_DEV_ROUTES": "true" if dev else "false", "PYTHONUNBUFFERED": "1"}
        if not os.environ.get("LEDGER_JWT_SECRET"):
            env["LEDGER_JWT_SECRET"] = stack.jwt_secret
        env.setdefault("LEDGER_PUBLIC_URL", f"http://127.0.0.1:{port}")  # the syncs' artifacts link to the web UI
        external_prefect = os.environ.get("PREFECT_API_URL")
        if external_prefect:
            stack.prefect_api_url = external_prefect.rstrip("/")
            wait_http(f"{stack.prefect_api_url}/health", 30)
            echo(f"prefect       {stack.prefect_api_url} (PREFECT_API_URL)")
        else:
            prefect_port = choose_port(prefect_port, prefect_port_explicit, "prefect", echo)
            echo(f"prefect       starting on port {prefect_port} (10–20 s the first time)…")
            process, stack.prefect_api_url = start_prefect_server(home / "prefect", prefect_port, env, log_dir)
            stack.processes.append(process)
        env["PREFECT_API_URL"] = stack.prefect_api_url
        env.update({k: v for k, v in QUIET_PREFECT.items() if k not in os.environ})
        stack.env = env
        echo("deployments   starting sync-vendor-ledger/on-demand, sync-all-vendors/nightly and weekly-full…")
        stack.processes.append(start_deployment_server(env, log_dir, stack.prefect_api_url,
                                                       settings.prefect_deployment))
        if watch:
            echo("watcher       following the source collections' changes (ledger-sync watch)")
            stack.processes.append(spawn("watcher", [sys.executable, "-m", "cli.main", "watch"], env, log_dir,
                                         stop_timeout=30))  # SIGTERM: it finishes the micro-batch it is posting
        port = choose_port(port, port_explicit, "api", echo)
        echo(f"api           starting on port {port}…")
        stack.processes.append(start_api(env, log_dir, port))
        stack.app_url = f"http://127.0.0.1:{port}"
        stack.token_vendor = token_vendor or _first_vendor(stack) or "demo"
        stack.token = stack.token_for(stack.token_vendor)
        return stack
    except BaseException:
        stack.stop()
        raise


def _store(stack: Stack):
    """The ledger store of the stack's database (one pooled client per process)."""
    from flows.database import get_store
    from flows.settings import Settings

    return get_store(Settings(mongodb_uri=stack.mongodb_uri, mongodb_db=stack.env.get("MONGODB_DB", "ledger_sync")))


def _first_vendor(stack: Stack) -> str | None:
    """A vendor with source data, to print a token for (read from the database: the dev routes may be off)."""
    try:
        vendors = _store(stack).sources.vendor_ids()
        return vendors[0] if vendors else None
    except Exception:  # noqa: BLE001 - only used to pick a vendor for the printed token
        return None


def _write_state(state_file: Path, stack: Stack) -> None:
    """Where other `ledger-sync` commands (and operators) find this stack and its children's pids."""
    state_file.write_text(json.dumps({"pid": os.getpid(), "appUrl": stack.app_url,
                                      "prefectApiUrl": stack.prefect_api_url,
                                      "children": {child.name: child.pid for child in stack.children()}}))


def _running_stack(state_file: Path) -> dict | None:
    try:
        state = json.loads(state_file.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if int(state["pid"]) != os.getpid() else None


def run_stack(port: int = 4000, on_ready: Callable[[Stack], None] | None = None, prefect_port: int = 4200,
              echo: Callable[[str], None] = print, token_vendor: str | None = None, dev: bool = False,
              prefect_port_explicit: bool = True, restart_initial: float = 1.0, restart_maximum: float = 30.0,
              stable_seconds: float = 60.0, watch: bool = False, port_explicit: bool = True) -> int:
    """Start the stack, print where everything is, supervise it until Ctrl-C/SIGTERM, stop it all.
    Returns an exit code.

    `on_ready(stack)` runs once everything is healthy (e.g. trigger a first sync): `stack.app_url`,
    `stack.token` (for `stack.token_vendor`), `stack.token_for(vendor)`, `stack.mongodb_uri`,
    `stack.prefect_api_url`, `stack.env`. The embedded database is reused when it already runs (start it
    first to load demo data before `up`); then it is left running, and unsupervised, for whoever started it.
    """
    from api.settings import ConfigurationError
    from flows.settings import NoDatabase

    stopping = threading.Event()

    started = threading.Event()

    def request_stop(signum, _frame) -> None:
        if not started.is_set():
            raise KeyboardInterrupt  # still starting: unwind, stopping what already runs
        stopping.set()

    from flows.settings import get_settings

    state_file = get_settings().ledger_home / "stack.json"
    running = _running_stack(state_file)
    if running is not None:
        echo(f"ledger-sync up failed: it already runs for {get_settings().ledger_home.resolve()} (pid "
             f"{running['pid']}, {running.get('appUrl')}). Stop it first, or set another LEDGER_HOME.")
        return 1
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack: Stack | None = None
    try:
        try:
            stack = start_stack(port, prefect_port, echo, token_vendor, dev=dev, watch=watch,
                                prefect_port_explicit=prefect_port_explicit, port_explicit=port_explicit)
        except (StackError, ConfigurationError, NoDatabase, RuntimeError) as error:
            echo(f"ledger-sync up failed: {error}")
            return 1
        except KeyboardInterrupt:
            echo("Interrupted while starting; stopped what had started.")
            return 130
        started.set()
        echo("")
        echo(f"  App          {stack.app_url}/")
        echo(f"  API docs     {stack.app_url}/docs")
        echo(f"  Prefect UI   {stack.prefect_api_url.removesuffix('/api')}")
        echo(f"  Token        {stack.token}  (vendor {stack.token_vendor}; another: "
             "`ledger-sync token --vendor ID`)")
        echo(f"  Sign in      {stack.app_url}/?token={stack.token}")
        if stack.dev:
            echo("")
            echo(f"  WARNING      --dev: {stack.app_url}/api/dev/token hands a token for ANY vendor to anyone who "
                 "can reach this port, without authentication. Demo use only.")
        echo("")
        echo("Press Ctrl-C to stop.")
        _write_state(state_file, stack)
        if on_ready is not None:
            try:
                on_ready(stack)
            except Exception as error:  # noqa: BLE001 - the stack stays up
                echo(f"(on_ready failed: {error})")
        in_flight = InFlightSyncs(stack, lambda: _store(stack), echo)
        supervisor = Supervisor(stack.children(), echo, restart_initial, restart_maximum, stable_seconds,
                                on_death=in_flight.died, on_back=in_flight.back)
        while not stopping.wait(0.5):
            if supervisor.tick():
                _write_state(state_file, stack)
            in_flight.tick()
        return 0
    finally:
        state_file.unlink(missing_ok=True)
        if stack is not None:
            try:
                echo("Stopping…")  # may fail when the terminal or a pipe is already gone...
            finally:
                stack.stop()  # ...but everything started is stopped regardless
            echo("Stopped.")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
