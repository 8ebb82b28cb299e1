"""`LEDGER_LOG_FORMAT=json`: every log line of a process (Prefect's too) is one JSON object with its ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import logging
from flows.logs import use_log_format
use_log_format()
logging.getLogger("ledger_sync.test").warning("rejected vendor=%s sync=%s field=%s", "acme", "sync_acme_1", "total",
                                              extra={"document_id": "INV-1"})
logging.getLogger("prefect.test").warning("no ids here")
import os; print(os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER"])  # what its child processes inherit
"""


def test_json_log_lines_carry_vendor_sync_and_document_ids():
    env = {**os.environ, "LEDGER_LOG_FORMAT": "json", "PREFECT_LOGGING_LEVEL": "INFO"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "ledger_sync.test"
    assert (lines[0]["vendorId"], lines[0]["syncId"], lines[0]["documentId"]) == ("acme", "sync_acme_1", "INV-1")
    assert lines[1]["message"] == "no ids here" and "vendorId" not in lines[1] and lines[1]["at"].endswith("+00:00")
    assert done.stdout.strip() == "json"
