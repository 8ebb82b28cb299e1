"""Write conflicts, tried again at once a few times.

A write that meets a transaction holding the same document is a conflict: mongod answers a
transaction's statement with WriteConflict (label TransientTransactionError), and the embedded
server answers a plain write so too, where mongod would wait. Both clear as soon as the other
transaction ends, so a short, growing pause and another try is the whole cure. A database that
went away is not a conflict: that error is raised at once, for the callers' own retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pymongo.errors import PyMongoError

T = TypeVar("T")
CONFLICT_RETRIES = 6
WRITE_CONFLICT = 112


def is_conflict(error: PyMongoError) -> bool:
    return error.has_error_label("TransientTransactionError") or getattr(error, "code", None) == WRITE_CONFLICT


def retry_conflicts(action: Callable[[], T]) -> T:
    """`action()`, again after a conflict (20 ms, 40 ms, … six tries in all)."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            return action()
        except PyMongoError as error:
            if not is_conflict(error) or attempt == CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")
