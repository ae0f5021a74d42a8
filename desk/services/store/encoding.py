"""JSON for the journal and the projection: compact, fast, and never a NaN.

orjson is several times faster than the standard library on the records the
desk writes every minute, but it writes NaN and infinity as `null` without a
word. A journal must not silently turn a bad number into "no value", so a
non-finite number is an error naming where it is.

Checking every value in Python cost more than encoding it, so the check reads
the encoded text instead: orjson writes `null` for None, NaN and infinity
alone, so text holding no more `null`s than the record has top-level Nones
cannot hold a non-finite number. Only text that fails that test (a nested None,
a string containing "null", or a real NaN) is walked value by value, to find
and name the culprit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

__all__ = ["encode_json", "encode_json_bytes"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_SORTED = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
_NULL = b"null"
# Values that hold no number to check.
_PLAIN = (str, int, bool, type(None))
# A list at least this long is checked in one numpy call rather than item by item.
_VECTOR_MIN = 16


def encode_json(value: Any, *, sort_keys: bool = False) -> str:
    """Return compact JSON text; raise ValueError naming the key of any NaN or infinity."""
    return encode_json_bytes(value, sort_keys=sort_keys).decode()


def encode_json_bytes(value: Any, *, sort_keys: bool = False) -> bytes:
    """Return compact JSON as UTF-8 bytes (what a file wants); raise ValueError naming any NaN or infinity."""
    data = orjson.dumps(value, option=_SORTED if sort_keys else _OPTIONS)
    nulls = data.count(_NULL)
    if nulls and nulls != _top_level_nones(value):
        _require_finite(value)
    return data


def _top_level_nones(value: Any) -> int:
    if type(value) is not dict:
        return -1  # unknown: walk it
    return sum(1 for item in value.values() if item is None)


def _require_finite(value: Any) -> None:
    """Raise ValueError naming the first non-finite number in `value`, depth first; iterative, not recursive."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float | np.floating):
            if not math.isfinite(item):
                raise ValueError(f"{path or 'value'} is {item}, not a finite number")
        elif isinstance(item, dict):
            children = [
                (child, f"{path}.{key}" if path else str(key))
                for key, child in item.items()
                if not isinstance(child, _PLAIN)
            ]
            stack.extend(reversed(children))  # popped in the dict's order, so the first culprit is named
        elif isinstance(item, list | tuple | np.ndarray):
            if len(item) >= _VECTOR_MIN and _check_numbers(item, path):
                continue
            children = [
                (child, f"{path}[{index}]") for index, child in enumerate(item) if not isinstance(child, _PLAIN)
            ]
            stack.extend(reversed(children))


def _check_numbers(items: Any, path: str) -> bool:
    """Check a flat column of numbers in one numpy call; False when it is not one (check item by item)."""
    try:
        numbers = np.asarray(items, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    if numbers.ndim != 1:
        return False  # nested lists: their items are checked one by one
    for index in np.flatnonzero(~np.isfinite(numbers)).tolist():
        # asarray turns None (and a string like "nan") into NaN: only a real non-finite number is an error.
        item = items[index]
        if isinstance(item, float | np.floating) and not math.isfinite(item):
            raise ValueError(f"{path}[{index}] is {item}, not a finite number")
    return True
