"""Inserting what may be there already: unordered batches whose duplicate keys are not errors."""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def insert_new(collection: Collection, documents: list[dict[str, Any]], **options: Any) -> set[int]:
    """Insert every document that is not there yet, in one command; the indexes of those that were."""
    if not documents:
        return set()
    try:
        collection.insert_many(documents, ordered=False, **options)
    except BulkWriteError as error:
        problems = error.details.get("writeErrors", [])
        if any(problem.get("code") != DUPLICATE_KEY for problem in problems):
            raise
        return {problem["index"] for problem in problems}
    return set()
