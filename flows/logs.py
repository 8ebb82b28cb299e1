"""`LEDGER_LOG_FORMAT=json`: one JSON object per log line, in every process of the stack.

Prefect configures logging in each process it runs in (the CLI, the API, the deployment
server and every flow-run process), from its `logging.yml` with overrides from the
environment; the overrides are set here, so the processes started from this one inherit them.
A line carries `vendorId`, `syncId` and `documentId` where they apply: from the record's extras
(`extra={"vendor_id": …}`), else from the `vendor=… sync=… document=…` of the message.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

FIELDS = {"vendor": "vendorId", "sync": "syncId", "document": "documentId"}
RUN_FIELDS = {"flow_run_id": "flowRunId", "flow_run_name": "flowRunName", "task_run_name": "taskRunName"}
_IN_MESSAGE = re.compile(r"\b(vendor|sync|document)=([^\s,:;]+)")


class JsonLines(logging.Formatter):
    """What Prefect's `formatters.json` becomes: the time, level, logger, message, ids and the flow run."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: Any = "%"):
        super().__init__(datefmt=datefmt)  # Prefect passes its json formatter's `format: default`

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {"at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                                "level": record.levelname, "logger": record.name, "message": message}
        found = dict(_IN_MESSAGE.findall(message))
        for token, key in FIELDS.items():
            value = getattr(record, f"{token}_id", None) or found.get(token)
            if value is not None:
                line[key] = str(value)
        for name, key in RUN_FIELDS.items():
            if getattr(record, name, None) is not None:
                line[key] = str(getattr(record, name))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def use_log_format() -> None:
    """Apply `LEDGER_LOG_FORMAT` (`text`, the default, or `json`) to this process and those it starts."""
    if os.environ.get("LEDGER_LOG_FORMAT", "text").lower() != "json":
        return
    os.environ["PREFECT_LOGGING_FORMATTERS_JSON_CLASS"] = f"{__name__}.JsonLines"
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER"] = "json"
    from prefect.logging.configuration import setup_logging

    setup_logging()  # again, if this process had configured it already
