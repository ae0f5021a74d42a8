"""JSON for the journal and the projection: compact, fast, and never a NaN.

orjson is several times faster than the standard library on the records the
desk writes every minute, but it writes NaN and infinity as `null` without a
word. A journal must not silently turn a bad number into "no value", so every
float is checked first and a non-finite one is an error naming where it is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_SORTED = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS


def encode_json(value: Any, *, sort_keys: bool = False) -> str:
    """Return compact JSON text; raise ValueError naming the key of any NaN or infinity."""
    _require_finite(value, "")
    return orjson.dumps(value, option=_SORTED if sort_keys else _OPTIONS).decode()


def _require_finite(value: Any, path: str) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path or 'value'} is {value}, not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(item, str | int | bool | None):
                _require_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        if len(value) > 16 and type(value[0]) in (float, int):
            # Columns of numbers (an EquitySeries chunk): one vectorised check instead of a call per item.
            try:
                numbers = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                numbers = None  # not all numbers after all: check item by item below
            if numbers is not None:
                bad = np.flatnonzero(~np.isfinite(numbers))
                # np.asarray turns None into NaN; only a real non-finite float is an error.
                for index in bad.tolist():
                    if isinstance(value[index], float):
                        raise ValueError(f"{path}[{index}] is {value[index]}, not a finite number")
                return
        for index, item in enumerate(value):
            if not isinstance(item, str | int | bool | None):
                _require_finite(item, f"{path}[{index}]")
