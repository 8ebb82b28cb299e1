"""The hash chain that makes the ledger tamper-evident (SPEC §9).

Every entry has a place in its vendor's chain, `seq` 1, 2, 3, … in the order written,
and `hash` = SHA-256 hex of the previous entry's hash, a newline, and the entry's
canonical JSON: `vendorId`, `seq`, `_id`, `date`, `source`, `lines` and `reversalOf`,
keys sorted, no spaces, amounts as decimal strings, dates as ISO-8601 UTC with
milliseconds and `Z`, and source ids (`source.id`, `source.paymentId`) as their id
keys (`ledger.ids`: exact for any BSON type). The first entry's previous hash is 64
zeros. Entries written before the chain existed are chained once, in the order they
were written, in a separate collection; the chain continues from there.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from bson.decimal128 import Decimal128

from ledger.ids import id_key
from ledger.parsing import decimal_of_bid

GENESIS = "0" * 64
_ID_FIELDS = ("id", "paymentId")
_LOOKAHEAD = 50  # how far a misplaced entry is looked for before a mismatch is called a changed entry


class Problem(StrEnum):
    HASH_MISMATCH = "hash mismatch"
    MISSING = "missing"
    UNBALANCED = "unbalanced"
    OUT_OF_ORDER = "out of order"


@dataclass(frozen=True)
class Head:
    """The end of a chain: the last entry's place and hash (`seq` 0: nothing chained yet)."""

    seq: int = 0
    hash: str = GENESIS
    entry_id: str | None = None


@dataclass(frozen=True)
class Link:
    """One place in the chain as stored: the entry there (None if it is gone) and the hash recorded for it."""

    seq: int
    entry_id: str | None
    hash: str | None
    entry: Mapping[str, Any] | None


@dataclass(frozen=True)
class FirstBad:
    seq: int | None
    entry_id: str | None
    problem: Problem


@dataclass(frozen=True)
class ChainReport:
    entries: int  # links walked
    head: Head
    first_bad: FirstBad | None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def iso_millis(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _canonical_scalar(value: Any) -> Any:
    """What JSON itself has no form for: dates, amounts and any other BSON value (ids)."""
    if isinstance(value, datetime):
        return iso_millis(value)
    if isinstance(value, Decimal128):
        return _decimal128_text(value.bid)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    return id_key(value)  # any other BSON value, exactly


@lru_cache(maxsize=1 << 12)
def _decimal128_text(bid: bytes) -> str:
    """An amount's decimal string (amounts repeat: decoding each Decimal128 anew was the hash's main cost)."""
    return str(decimal_of_bid(bid))


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False,
                            default=_canonical_scalar)  # the C encoder: hashing is most of a sync's own CPU


def canonical(entry: Mapping[str, Any], seq: int) -> str:
    """The canonical JSON of a stored entry at place `seq` of its chain."""
    source = dict(entry.get("source") or {})
    for name in _ID_FIELDS:
        if source.get(name) is not None:
            source[name] = id_key(source[name])
    document = {"vendorId": entry.get("vendorId"), "seq": seq, "_id": entry.get("_id"), "date": entry.get("date"),
                "source": source, "lines": list(entry.get("lines") or []), "reversalOf": entry.get("reversalOf")}
    return _ENCODER.encode(document)


def entry_hash(previous: str, entry: Mapping[str, Any], seq: int) -> str:
    return hashlib.sha256(f"{previous}\n{canonical(entry, seq)}".encode()).hexdigest()


def chained(documents: Iterable[dict[str, Any]], head: Head) -> tuple[list[dict[str, Any]], Head]:
    """Give stored entries, in the order they will be written, their `seq` and `hash` after `head`;
    the new head."""
    seq, previous = head.seq, head.hash
    result = []
    entry_id = head.entry_id
    for document in documents:
        seq += 1
        previous = entry_hash(previous, document, seq)
        entry_id = document["_id"]
        result.append({**document, "seq": seq, "hash": previous})
    return result, Head(seq=seq, hash=previous, entry_id=entry_id)


def balanced(entry: Mapping[str, Any]) -> bool:
    """Debits equal credits, and no line is negative."""
    debit = credit = Decimal(0)
    for line in entry.get("lines") or []:
        line_debit, line_credit = _amount(line.get("debit")), _amount(line.get("credit"))
        if line_debit < 0 or line_credit < 0:
            return False
        debit += line_debit
        credit += line_credit
    return debit == credit


def _amount(value: Any) -> Decimal:
    if isinstance(value, Decimal128):
        return decimal_of_bid(value.bid)
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return Decimal("NaN")


def walk(links: Iterable[Link], start: Head = Head()) -> ChainReport:
    """Check every link after `start`, in seq order: each must be there, balanced, and hash from
    the one before. Streams; a small window of links is held to tell a misplaced entry."""
    upcoming: deque[Link] = deque()
    source: Iterator[Link] = iter(links)
    previous, expected, walked = start.hash, start.seq + 1, 0
    last = start

    def fill() -> None:
        while len(upcoming) < _LOOKAHEAD:
            try:
                upcoming.append(next(source))
            except StopIteration:
                return

    fill()
    while upcoming:
        link = upcoming.popleft()
        fill()
        if link.seq != expected or link.entry is None:
            problem = Problem.OUT_OF_ORDER if link.seq < expected else Problem.MISSING
            entry_id = link.entry_id if link.seq == expected else None
            return ChainReport(walked, last, FirstBad(expected, entry_id, problem))
        entry = link.entry
        if not balanced(entry):
            return ChainReport(walked, last, FirstBad(link.seq, link.entry_id, Problem.UNBALANCED))
        if entry_hash(previous, entry, link.seq) != link.hash:
            misplaced = any(other.entry is not None and other.hash == entry_hash(previous, other.entry, link.seq)
                            for other in upcoming)
            return ChainReport(walked, last, FirstBad(link.seq, link.entry_id,
                                                      Problem.OUT_OF_ORDER if misplaced else Problem.HASH_MISMATCH))
        previous, expected, walked = link.hash, expected + 1, walked + 1
        last = Head(seq=link.seq, hash=link.hash, entry_id=link.entry_id)
    return ChainReport(walked, last, None)
