"""Small pure helpers the strategies share: crossings, ATR stops, feature hygiene, params checks.

The leading underscore keeps the registry from mistaking this module for a strategy.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationInfo, field_validator

from desk.strategies.base import CandleWindow

# Differences smaller than this fraction of the price are rounding noise, not a
# crossing: two averages of a flat series can differ in the last bit, and without
# this a perfectly flat market would flicker between "above" and "below".
NOISE = 1e-9


def snap(diff: float, scale: float) -> float:
    """`diff`, or exactly 0.0 when it is within rounding noise of zero relative to `scale`."""
    return 0.0 if abs(diff) <= NOISE * abs(scale) else diff


def crossed_above(prev: float | None, current: float, level: float = 0.0) -> bool:
    """True on the one update where a series goes from at-or-below `level` to strictly above it."""
    return prev is not None and prev <= level < current


def crossed_below(prev: float | None, current: float, level: float = 0.0) -> bool:
    """True on the one update where a series goes from at-or-above `level` to strictly below it."""
    return prev is not None and prev >= level > current


def atr_stop(close: float, atr: float | None, mult: float | None) -> float | None:
    """close - mult * ATR, or None (use the worker's risk defaults) when that is not a usable stop.

    Not usable: the policy is off (`mult` None), ATR is not warm yet, ATR is 0 (a
    flat market would put the stop at the entry price) or the stop would be at or
    below zero.
    """
    if mult is None or atr is None or atr <= 0.0:
        return None
    stop = close - mult * atr
    return stop if 0.0 < stop < close else None


def clamp01(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return min(1.0, max(0.0, x))


def finite(x: float | None, default: float = 0.0) -> float:
    """A feature value the learner can use: `default` for None, NaN or infinity."""
    if x is None or not math.isfinite(x):
        return default
    return float(x)


def ratio(numerator: float | None, denominator: float | None, default: float = 0.0) -> float:
    """numerator / denominator as a finite float; `default` when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0.0:
        return default
    return finite(numerator / denominator, default)


def trailing_return(window: CandleWindow, lag: int) -> float:
    """close[-1] / close[-1 - lag] - 1 from the window, 0.0 when the window is shorter than lag + 1."""
    if len(window) <= lag:
        return 0.0
    closes = window.close  # a view, not a copy
    return ratio(float(closes[-1]) - float(closes[-1 - lag]), float(closes[-1 - lag]))


def common_features(window: CandleWindow, atr: float | None) -> dict[str, float]:
    """Returns over 1, 5 and 20 candles and ATR as a fraction of the close, shared by every strategy."""
    close = window.last_close if len(window) else None
    return {
        "ret_1": trailing_return(window, 1),
        "ret_5": trailing_return(window, 5),
        "ret_20": trailing_return(window, 20),
        "atr_frac": ratio(atr, close),
    }


def fmt(x: float) -> str:
    """Compact number for a reason string: six significant digits suit BTC and SHIB alike."""
    return f"{x:.6g}"


def greater_than(field: str, other: str) -> Any:
    """A `Params` validator: `field` must be greater than `other` (say slow > fast).

    Assign it in the class body, `_slow_exceeds_fast = greater_than("slow", "fast")`,
    with `other` declared before `field` (pydantic validates in declaration order).
    The check is skipped when `other` itself failed validation, so only that error shows.
    """

    def check(cls: type, value: float, info: ValidationInfo) -> float:
        bound = info.data.get(other)  # absent when `other` itself failed validation
        if bound is not None and value <= bound:
            raise ValueError(f"{field} ({value}) must be greater than {other} ({bound})")
        return value

    return field_validator(field)(classmethod(check))
