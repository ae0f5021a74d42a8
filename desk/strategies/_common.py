"""Small pure helpers the strategies share: crossings, ATR stops, feature hygiene, params checks.

Each helper a signal tape needs over whole columns has an element-wise twin here
(`snap_array`, `ratio_array`, ...), next to the scalar form it must agree with.
The leading underscore keeps the registry from mistaking this module for a strategy.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable
from itertools import repeat
from typing import Any

import numpy as np
from pydantic import ValidationInfo, field_validator

from desk.core.types import Signal
from desk.strategies.base import CandleWindow, SignalTape
from desk.strategies.indicators import FloatArray

# The trailing returns common_features reports, by name and lag in candles.
RETURN_LAGS = {"ret_1": 1, "ret_5": 5, "ret_20": 20}

# Differences smaller than this fraction of the price are rounding noise, not a
# crossing: two averages of a flat series can differ in the last bit, and without
# this a perfectly flat market would flicker between "above" and "below".
NOISE = 1e-9


def snap(diff: float, scale: float) -> float:
    """`diff`, or exactly 0.0 when it is within rounding noise of zero relative to `scale`."""
    return 0.0 if abs(diff) <= NOISE * abs(scale) else diff


def snap_array(diff: FloatArray, scale: FloatArray) -> FloatArray:
    """`snap` element-wise (NaN stays NaN, as snap leaves it)."""
    return np.where(np.abs(diff) <= NOISE * np.abs(scale), 0.0, diff)


def zero_crossings(diff: FloatArray, scale: FloatArray) -> tuple[np.ndarray, np.ndarray]:
    """Where snap(diff, scale) crosses zero from each element to the next: (crossed_above, crossed_below).

    Entry i is the step from element i to i + 1; a NaN (a value not known yet) crosses
    nothing, as crossed_above(None, ...) is False. Same decisions as snapping then
    comparing, in fewer passes: snap(d, s) > 0 exactly when d > NOISE * |s|, and < 0
    exactly when d < -NOISE * |s|.
    """
    noise = np.abs(scale)
    noise *= NOISE
    positive = diff > noise
    np.negative(noise, out=noise)
    negative = diff < noise
    known = ~np.isnan(diff[:-1])
    above = positive[1:] & ~positive[:-1] & known  # prev <= 0 < current
    below = negative[1:] & ~negative[:-1] & known  # prev >= 0 > current
    return above, below


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


def none_if_nan(value: float) -> float | None:
    """A column value as an incremental indicator gives it: None where the column holds NaN (not warm)."""
    return None if math.isnan(value) else value


def finite_array(x: FloatArray, default: float = 0.0) -> FloatArray:
    """`finite` element-wise, NaN standing for None."""
    return np.where(np.isfinite(x), x, default)


def ratio_array(numerator: FloatArray, denominator: FloatArray, default: float = 0.0) -> FloatArray:
    """`ratio` element-wise, NaN standing for None (a NaN operand gives `default`, as None does)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quotient = numerator / denominator
    return np.where((denominator != 0.0) & np.isfinite(quotient), quotient, default)


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
        **{name: trailing_return(window, lag) for name, lag in RETURN_LAGS.items()},
        "atr_frac": ratio(atr, close),
    }


def run_minima(values: FloatArray, inside: np.ndarray, ends: np.ndarray) -> FloatArray:
    """For each index e in `ends`, the minimum of `values` over the run of True in `inside` that ends at e - 1.

    For a state that tracks a running minimum while a condition holds and is read
    (and reset) on the candle after the condition stops; inside[e - 1] must be True.
    """
    if not ends.size:
        return np.empty(0)
    starts = np.flatnonzero(inside & ~np.concatenate(([False], inside[:-1])))
    first = starts[np.searchsorted(starts, ends - 1, side="right") - 1]
    # reduceat over the pairs (first, end): each even slot is min(values[first:end]); odd slots are discarded.
    return np.minimum.reduceat(values, np.column_stack((first, ends)).ravel())[::2]


def common_feature_columns(
    close: FloatArray, atr: FloatArray, bars: np.ndarray, window_capacity: int
) -> dict[str, FloatArray]:
    """`common_features` right after each candle in `bars`, from whole columns (`atr` NaN while not warm).

    The window holds min(bar + 1, window_capacity) candles, so a trailing return
    longer than that is 0.0 there, as `trailing_return` makes it.
    """
    if window_capacity < 1:
        raise ValueError("capacity must be at least 1")
    last = close[bars]
    held = np.minimum(bars + 1, window_capacity)
    columns = {}
    for name, lag in RETURN_LAGS.items():
        known = held > lag
        base = close[np.where(known, bars - lag, bars)]
        columns[name] = np.where(known, ratio_array(last - base, base), 0.0)
    columns["atr_frac"] = ratio_array(atr[bars], last)
    return columns


def make_tape(bars: np.ndarray, signals: Iterable[Signal], features: dict[str, FloatArray]) -> SignalTape:
    """A SignalTape from the signal bars, their signals, and each feature as a column over those bars.

    `signals` may be lazy (a map): it is built here, with the feature dicts, while the
    cyclic garbage collector is paused. Tens of thousands of new objects that all stay
    alive would otherwise set off collections that walk them again and again for
    nothing (about a tenth of a long tape's time); the collector is restored after.
    """
    names = tuple(features)
    rows = zip(*(column.tolist() for column in features.values()), strict=True)
    collecting = gc.isenabled()
    gc.disable()
    try:
        # map/zip rather than a comprehension: this runs once per signal.
        dicts = tuple(map(dict, map(zip, repeat(names), rows)))
        built = tuple(signals)
    finally:
        if collecting:
            gc.enable()
    return SignalTape(np.asarray(bars, dtype=np.int64), built, dicts)


def empty_tape() -> SignalTape:
    return SignalTape(np.empty(0, dtype=np.int64), (), ())


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
