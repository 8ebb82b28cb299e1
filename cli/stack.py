"""`ledger-sync up`: the whole stack on one machine, started in order, stopped in reverse.

1. the database: the embedded MongoDB-wire server (unless MONGODB_URI is set);
2. a Prefect server (`prefect server start`, SQLite under <LEDGER_HOME>/prefect)
   unless PREFECT_API_URL points at one already;
3. the deployment server (`python -m flows.serve`): runs of `sync-vendor-ledger/on-demand` and the
   scheduled `sync-all-vendors/nightly` and `sync-all-vendors/weekly-full`;
4. the API (uvicorn, Socket.IO + REST + the web UI) on the given port.

Each is waited healthy before the next starts. Ctrl-C or SIGTERM stops them in
reverse order and leaves nothing running. Every child runs in its own session
(so Ctrl-C in the terminal reaches only this process, which then stops them in
order); their logs go to <LEDGER_HOME>/logs/.
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from cli.embedded_db import EmbeddedDatabase

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
    """A child process we started (in its own session) and will stop."""

    name: str
    process: subprocess.Popen
    log_path: Path | None = None
    stop_timeout: float = 15.0

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if not self.alive:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # the child and whatever it started (flow runs)
        except ProcessLookupError:
            return
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies without stopping us (Linux), so nothing is left running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - other platforms: the parent's stop() still does it
        pass


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path | None, cwd: Path = PROJECT_DIR,
          stop_timeout: float = 15.0) -> ManagedProcess:
    log_path = None
    output: IO[bytes] | int = subprocess.DEVNULL
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        output = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    if not isinstance(output, int):
        output.close()
    return ManagedProcess(name, process, log_path, stop_timeout)


def wait_http(url: str, timeout: float, process: ManagedProcess | None = None,
              ok: Callable[[bytes], bool] | None = None) -> None:
    """Wait until GET url answers 200 (and `ok(body)`), or fail with the child's last log lines."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and not process.alive:
            raise StackError(f"{process.name} exited with code {process.process.returncode}:\n{process.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = response.read()
                if response.status == 200 and (ok is None or ok(body)):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
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
        raise StackError(f"port {port} is in use: another Prefect server? Stop it, or set PREFECT_API_URL to use it")
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
    try:
        wait_deployment_ready(api_url, deployment, timeout, process)
    except BaseException:
        process.stop()
        raise
    return process


def wait_deployment_ready(api_url: str, deployment: str, timeout: float, process: ManagedProcess | None = None) -> None:
    import json

    flow_name, deployment_name = deployment.split("/", 1)
    url = f"{api_url}/deployments/name/{flow_name}/{deployment_name}"

    def ready(body: bytes) -> bool:
        try:
            document = json.loads(body)
        except ValueError:
            return False
        return document.get("status") == "READY" and not document.get("paused")

    wait_http(url, timeout, process, ok=ready)


def start_api(env: dict[str, str], log_dir: Path | None, port: int, host: str = "127.0.0.1",
              timeout: float = 60.0) -> ManagedProcess:
    if not port_is_free(port, host):
        raise StackError(f"port {port} is in use: choose another with `ledger-sync up --port N`")
    argv = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", host, "--port", str(port),
            "--ws", "websockets-sansio", "--timeout-graceful-shutdown", "3", "--timeout-keep-alive", "30",
            "--no-access-log", "--log-level", "warning"]
    process = spawn("api", argv, env, log_dir, stop_timeout=10)
    try:
        wait_http(f"http://{host}:{port}/api/health", timeout, process)
    except BaseException:
        process.stop()
        raise
    return process


# ---- the whole stack ------------------------------------------------------------------

@dataclass
class Stack:
    """What `run_stack` started; `stop()` ends it all in reverse order."""

    app_url: str = ""
    prefect_api_url: str = ""
    mongodb_uri: str = ""
    token: str = ""
    token_vendor: str = ""
    env: dict[str, str] = field(default_factory=dict)
    processes: list[ManagedProcess] = field(default_factory=list)
    database: EmbeddedDatabase | None = None

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.database is not None:
            self.database.stop()
            self.database = None


def start_stack(port: int = 4000, prefect_port: int = 4200, echo: Callable[[str], None] = print,
                token_vendor: str | None = None) -> Stack:
    """Start every part in order (each healthy before the next); on any failure stop what started and raise."""
    from api.auth import issue_token
    from api.settings import ApiSettings
    from cli.embedded_db import EmbeddedDatabase

    os.environ.setdefault("LEDGER_ENV", "development")
    settings = ApiSettings()
    home = settings.ledger_home.resolve()
    log_dir = home / "logs"
    stack = Stack()
    try:
        if settings.mongodb_uri:
            stack.mongodb_uri = settings.mongodb_uri
            echo(f"database      {settings.mongodb_uri} (MONGODB_URI)")
        else:
            database = EmbeddedDatabase(home / "db", home / "mongo.json")
            stack.mongodb_uri = database.start()
            stack.database = database if database.owned else None
            echo(f"database      {stack.mongodb_uri} (embedded, data in {home / 'db'})")
        secret = ApiSettings(ledger_home=home).resolve_jwt_secret()
        env = {**os.environ, "LEDGER_HOME": str(home), "MONGODB_URI": stack.mongodb_uri,
               "MONGODB_DB": settings.mongodb_db, "LEDGER_ENV": os.environ["LEDGER_ENV"],
               "PYTHONUNBUFFERED": "1"}
        if not os.environ.get("LEDGER_JWT_SECRET"):
            env["LEDGER_JWT_SECRET"] = secret
        external_prefect = os.environ.get("PREFECT_API_URL")
        if external_prefect:
            stack.prefect_api_url = external_prefect.rstrip("/")
            wait_http(f"{stack.prefect_api_url}/health", 30)
            echo(f"prefect       {stack.prefect_api_url} (PREFECT_API_URL)")
        else:
            echo("prefect       starting (10–20 s the first time)…")
            process, stack.prefect_api_url = start_prefect_server(home / "prefect", prefect_port, env, log_dir)
            stack.processes.append(process)
        env["PREFECT_API_URL"] = stack.prefect_api_url
        env.update({k: v for k, v in QUIET_PREFECT.items() if k not in os.environ})
        stack.env = env
        echo("deployments   starting sync-vendor-ledger/on-demand, sync-all-vendors/nightly and weekly-full…")
        stack.processes.append(start_deployment_server(env, log_dir, stack.prefect_api_url,
                                                       settings.prefect_deployment))
        echo(f"api           starting on port {port}…")
        stack.processes.append(start_api(env, log_dir, port))
        stack.app_url = f"http://127.0.0.1:{port}"
        stack.token_vendor = token_vendor or _first_vendor(stack) or "demo"
        stack.token = issue_token(stack.token_vendor, secret, settings.ledger_token_ttl_seconds)
        return stack
    except BaseException:
        stack.stop()
        raise


def _first_vendor(stack: Stack) -> str | None:
    try:
        with urllib.request.urlopen(f"{stack.app_url}/api/dev/vendors", timeout=5) as response:
            import json
            vendors = json.loads(response.read()).get("vendors") or []
            return vendors[0] if vendors else None
    except Exception:  # noqa: BLE001 - only used to pick a vendor for the printed token
        return None


def run_stack(port: int = 4000, on_ready: Callable[[Stack], None] | None = None, prefect_port: int = 4200,
              echo: Callable[[str], None] = print, token_vendor: str | None = None) -> int:
    """Start the stack, print where everything is, wait for Ctrl-C/SIGTERM, stop it all. Returns an exit code.

    `on_ready(stack)` runs once everything is healthy (e.g. trigger a first sync): `stack.app_url`,
    `stack.token` (for `stack.token_vendor`), `stack.mongodb_uri`, `stack.prefect_api_url`, `stack.env`.
    The embedded database is reused when it already runs (start it first to load demo data before `up`);
    then it is left running for whoever started it.
    """
    from api.settings import ConfigurationError
    from flows.settings import NoDatabase

    stopping = threading.Event()

    started = threading.Event()

    def request_stop(signum, _frame) -> None:
        if not started.is_set():
            raise KeyboardInterrupt  # still starting: unwind, stopping what already runs
        stopping.set()

    # Where other `ledger-sync` commands find this stack (its Prefect server, so CLI syncs show in its UI).
    from flows.settings import get_settings

    state_file = get_settings().ledger_home / "stack.json"
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack: Stack | None = None
    try:
        try:
            stack = start_stack(port, prefect_port, echo, token_vendor)
        except (StackError, ConfigurationError, NoDatabase, RuntimeError) as error:
            echo(f"ledger-sync up failed: {error}")
            return 1
        except KeyboardInterrupt:
            echo("Interrupted while starting; stopped what had started.")
            return 130
        started.set()
        prefect_ui = stack.prefect_api_url[:-4] if stack.prefect_api_url.endswith("/api") else stack.prefect_api_url
        echo("")
        echo(f"  App          {stack.app_url}/")
        echo(f"  API docs     {stack.app_url}/docs")
        echo(f"  Prefect UI   {prefect_ui}")
        echo(f"  Dev token    {stack.token}  (vendor {stack.token_vendor})")
        echo("")
        echo("Press Ctrl-C to stop.")
        state_file.write_text(json.dumps({"pid": os.getpid(), "appUrl": stack.app_url,
                                          "prefectApiUrl": stack.prefect_api_url}))
        if on_ready is not None:
            try:
                on_ready(stack)
            except Exception as error:  # noqa: BLE001 - the stack stays up
                echo(f"(on_ready failed: {error})")
        while not stopping.wait(1.0):
            for process in stack.processes:
                if not process.alive:
                    echo(f"{process.name} stopped unexpectedly (exit {process.process.returncode}); "
                         f"see {process.log_path}. Shutting down.")
                    return 1
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
