"""The embedded default database: a MongoDB-wire server (SecantusDB) in its own process.

Used when neither `MONGODB_URI` nor `MONGODB_DB` is set. It runs as a separate
process (it is GPL-licensed and only ever talked to over the wire), keeps its
data under the project-local folder, and writes its address to a state file so
every other process of the stack (and a second `ledger-sync sync`) finds it.

Acknowledged means durable here. As shipped, SecantusDB acknowledges a write before
its journal record leaves the process: `kill -9` of the server lost 157 of 7,656
acknowledged inserts over five trials (`python -m tests.durability_probe`). So the
server runs with `--sync-on-commit` (every commit is written and fsynced before it
is acknowledged, multi-document transactions included) and the published URI asks
for journaled writes (`journal=true`, i.e. `writeConcern {j: true}`, which
SecantusDB honours per write): with either, no acknowledged write was lost
(0 of 7,732 and 0 of 6,288). docs/operations.md has the numbers and the cost.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from flows.settings import read_embedded_state

# See the module docstring: what makes an acknowledged write survive `kill -9` (and power loss).
DURABLE_SERVER_FLAGS = ("--sync-on-commit",)
DURABLE_URI_OPTIONS = "?journal=true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(uri: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client: MongoClient[dict[str, Any]]
            with MongoClient(uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
                return
        except PyMongoError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the database at {uri} did not start within {timeout:.0f}s") from None
            time.sleep(0.1)


class EmbeddedDatabase:
    """Start (or reuse) the server whose data lives in `storage_path`."""

    def __init__(self, storage_path: Path | str, state_file: Path | None = None, port: int | None = None,
                 log_path: Path | None = None):
        self.storage_path = str(storage_path)
        self.state_file = state_file
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.uri: str | None = None

    def start(self) -> str:
        state = read_embedded_state(self.state_file) if self.state_file else None
        if state is not None:
            self.uri = state["uri"]  # another process of this project already runs it
            return self.uri
        try:
            import secantus  # noqa: F401
        except ImportError:
            raise RuntimeError("the embedded database needs the 'embedded' extra: pip install 'ledger-sync[embedded]' "
                               "(or set MONGODB_URI)") from None
        if self.storage_path != ":memory:":
            Path(self.storage_path).mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/{DURABLE_URI_OPTIONS}"
        self._spawn()
        try:
            wait_until_up(self.uri)
        except RuntimeError:
            self.stop()
            raise
        return self.uri

    def _spawn(self) -> None:
        output: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path:
            output = open(self.log_path, "ab")  # noqa: SIM115 - closed below
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(self.port),
                 "--storage-path", self.storage_path, "--log-level", "WARNING", *DURABLE_SERVER_FLAGS],
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if not isinstance(output, int):
                output.close()
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps({"uri": self.uri, "pid": self.process.pid}))

    def restart(self) -> None:
        """Start the server again after it died, on the same port and storage (the URI every process holds
        stays right; their clients reconnect). Returns at once: `healthy()` says when it answers."""
        if self.process is None or self.process.poll() is None:
            raise RuntimeError("restart() is for a server this object started and that has exited")
        self._spawn()

    def healthy(self) -> bool:
        client: MongoClient[dict[str, Any]]
        try:
            with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            return True
        except PyMongoError:
            return False

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def owned(self) -> bool:
        return self.process is not None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this object started it (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.state_file and self.state_file.exists():
            try:
                if json.loads(self.state_file.read_text()).get("pid") == self.process.pid:
                    self.state_file.unlink()
            except (OSError, ValueError):
                pass
        self.process = None

    def __enter__(self) -> EmbeddedDatabase:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
