"""Injective text keys for BSON values, and the deterministic ids built from them.

A source document's `_id` (and a payment's) may be any BSON value: ObjectId,
string, int, long, double, Decimal128, date, binary/UUID, even an embedded
document. Entry ids, posting units and rejection records are keyed by text, so
two different values must never share a key: every key carries a type tag
(`s~INV-1`, `o~65f1…`, `i~7`, `l~7`), strings are escaped so the separators of
the ids built from them (`|`, `/`, `#`) never occur inside a key, and anything
without a readable form is its BSON encoding (`e~…`). `value_of_key` reads a
key back, so an id shown by the API can be handed back to it exactly.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import bson
from bson import Decimal128, Int64, ObjectId
from bson.binary import Binary

_SAFE = "-_.:@!$&'()*+,;=~ "  # kept as is; `%`, `|`, `/`, `#` (and non-ASCII) are percent-encoded
_KEY = re.compile(r"([a-z])~(.*)\Z", re.DOTALL)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def id_key(value: Any) -> str:
    """The key of one BSON value: equal keys if and only if equal values of the same BSON type."""
    if isinstance(value, str):
        return "s~" + quote(value, safe=_SAFE)
    if isinstance(value, ObjectId):
        return "o~" + str(value)
    if isinstance(value, bool):  # before int: bool is an int in Python, not in BSON
        return "b~" + ("true" if value else "false")
    if isinstance(value, Int64):
        return f"l~{int(value)}"
    if isinstance(value, int) and -(2**31) <= value < 2**31:
        return f"i~{value}"
    if isinstance(value, int):  # stored as a long whatever Python calls it
        return f"l~{value}"
    if isinstance(value, float):
        return "f~" + repr(value)
    if isinstance(value, Decimal128):
        return "m~" + str(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return f"d~{(moment - _EPOCH) // _MILLISECOND}"
    if value is None:
        return "n~"
    return "e~" + base64.urlsafe_b64encode(bson.encode({"": value})).decode().rstrip("=")


def value_of_key(key: str) -> Any:
    """The BSON value a key stands for; `ValueError` if `key` is not one.

    Embedded documents whose field names start with `$` are refused: such a value
    could only ever reach a query as an operator.
    """
    match = _KEY.match(key)
    if match is None:
        raise ValueError(f"not an id key: {key!r}")
    tag, payload = match.groups()
    try:
        value = _READERS[tag](payload)
    except (KeyError, ValueError, TypeError, bson.errors.BSONError) as error:
        raise ValueError(f"not an id key: {key!r} ({error})") from None
    if id_key(value) != key:
        raise ValueError(f"not an id key in canonical form: {key!r}")
    if _has_operator(value):
        raise ValueError("an id may not contain fields starting with '$'")
    return value


def _embedded(payload: str) -> Any:
    return bson.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[""]


def _boolean(payload: str) -> bool:
    if payload not in ("true", "false"):
        raise ValueError("a boolean is true or false")
    return payload == "true"


def _null(payload: str) -> None:
    if payload:
        raise ValueError("null carries nothing")
    return None


_MILLISECOND = _EPOCH.resolution * 1000
_READERS: dict[str, Callable[[str], Any]] = {
    "s": unquote,
    "o": ObjectId,
    "b": _boolean,
    "i": int,
    "l": lambda payload: Int64(int(payload)),
    "f": float,
    "m": Decimal128,
    "d": lambda payload: _EPOCH + int(payload) * _MILLISECOND,
    "n": _null,
    "e": _embedded,
}


def _has_operator(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(name).startswith("$") or _has_operator(item) for name, item in value.items())
    if isinstance(value, list):
        return any(_has_operator(item) for item in value)
    return False


def display_id(value: Any) -> str:
    """A source id as a person reads it (not unique across types: use `id_key` for identity)."""
    if isinstance(value, Binary) and value.subtype == 4:
        return str(value.as_uuid())
    return str(value)


def candidate_ids(text: str) -> list[Any]:
    """What an id typed by a person may stand for, most specific first: a key is exactly its
    value; 24 hex digits are an ObjectId, or else that string; anything else is a string."""
    try:
        return [value_of_key(text)]
    except ValueError:
        pass
    if ObjectId.is_valid(text) and len(text) == 24:
        return [ObjectId(text), text]
    return [text]


def _escape(text: str) -> str:
    return quote(text, safe=_SAFE)


def unit_key(vendor_id: str, source_type: str, source_id: Any, payment_id: Any = None) -> str:
    """The posting unit: one document, or one payment on it. `<vendor>|<type>:<id key>|<payment key or ->`.

    Ids written before keys existed read `<vendor>|<type>|…`: the `:` after the type keeps
    the two forms apart, so a new id never meets an old one."""
    payment = "-" if payment_id is None else id_key(payment_id)
    return f"{_escape(vendor_id)}|{source_type}:{id_key(source_id)}|{payment}"


def posting_id(unit: str, sequence: int) -> str:
    """The n-th posting of a unit (a changed document is posted again under the next number)."""
    return f"{unit}#{sequence}"


def reversal_id(original_id: str) -> str:
    return f"{original_id}/reversal"


def rejection_id(sync_id: str, source_type: str, source_id: Any) -> str:
    return f"{_escape(sync_id)}|{source_type}:{id_key(source_id)}"
