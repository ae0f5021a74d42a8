"""Technical indicators, each in two forms that must agree.

* An incremental class: `update(...)` takes one new observation, costs O(1)
  (Donchian: amortised O(1)) and returns the current value, or `None` until the
  indicator is warm. `value` repeats the last result and `ready` says whether it
  is warm. Strategies use these, one instance per indicator, updated once per
  candle, so a worker never recomputes over its whole window.
* A batch function over a sequence or numpy array returning float64 arrays the
  length of the input, NaN during warm-up. These are plain loops or vectorised
  numpy written for clarity; tests use them as the reference for the classes.

Conventions (both forms):

* Warm-up is counted in observations. SMA, EMA, Bollinger, ATR and Donchian of
  period n are ready on the n-th observation (index n-1); RSI and ROC need n
  changes, so n+1 closes (index n); MACD(fast, slow, signal) is ready at index
  slow + signal - 2.
* EMA: seeded with the SMA of the first n values, then
  ema = ema + alpha * (x - ema) with alpha = 2 / (n + 1).
* RSI (Wilder): the first average gain and loss are the simple means of the
  first n changes; afterwards avg = (prev * (n - 1) + x) / n. RSI = 100 -
  100 / (1 + avg_gain / avg_loss); RSI = 100 when the average loss is 0 and the
  average gain is positive, and 50 when both are 0 (a perfectly flat market is
  neither overbought nor oversold).
* ATR (Wilder): true range TR = max(high - low, |high - prev close|,
  |low - prev close|), with the first TR = high - low as there is no previous
  close; the first ATR is the mean of the first n TRs, then Wilder smoothing.
* MACD: line = EMA(fast) - EMA(slow) of the close, both seeded from the start
  of the series; signal = EMA(signal) of the line, seeded with the SMA of the
  first `signal` line values; histogram = line - signal.
* Bollinger: mid = SMA(n), upper/lower = mid +/- k * population std (ddof=0)
  of the same n closes.
* Donchian: highest high and lowest low over the last n candles, the current
  one included. A strategy that wants the *prior* channel reads `value` before
  calling `update` with the current candle.
* ROC: close / close n observations ago - 1. Prices must be positive.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Generic, NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
V = TypeVar("V")


class MacdValue(NamedTuple):
    line: float
    signal: float
    histogram: float


class BollingerValue(NamedTuple):
    mid: float
    upper: float
    lower: float


class DonchianValue(NamedTuple):
    upper: float
    lower: float


def _check_period(name: str, period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"{name} must be a positive integer, got {period!r}")
    return period


def _as_array(values: ArrayLike | Sequence[float]) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("indicator input must be one-dimensional")
    return array


class _Incremental(Generic[V]):
    """What every incremental indicator shares: `value` repeats the last result, `ready` says it is warm.

    Subclasses set `_value` in `update`; it stays None until the indicator is warm.
    """

    __slots__ = ("_value",)

    _value: V | None

    @property
    def value(self) -> V | None:
        return self._value

    @property
    def ready(self) -> bool:
        return self._value is not None


# --------------------------------------------------------------------------- SMA


class SMA(_Incremental[float]):
    """Simple moving average over the last `period` values.

    Keeps a running sum. Adding and subtracting floats for days drifts, so the
    sum is recomputed exactly (math.fsum) once every `period` updates: O(period)
    work every `period` calls, O(1) amortised, and the drift stays bounded.
    """

    __slots__ = ("_since_resync", "_sum", "_values", "period")

    def __init__(self, period: int) -> None:
        self.period = _check_period("period", period)
        self._values: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._since_resync = 0
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        if len(self._values) == self.period:
            self._sum -= self._values[0]
        self._values.append(x)
        self._sum += x
        self._since_resync += 1
        if self._since_resync >= self.period:
            self._sum = math.fsum(self._values)
            self._since_resync = 0
        if len(self._values) == self.period:
            self._value = self._sum / self.period
        return self._value


def sma(values: ArrayLike | Sequence[float], period: int) -> FloatArray:
    _check_period("period", period)
    x = _as_array(values)
    out = np.full(x.shape, np.nan)
    if len(x) >= period:
        out[period - 1 :] = np.lib.stride_tricks.sliding_window_view(x, period).mean(axis=1)
    return out


# --------------------------------------------------------------------------- EMA


class EMA(_Incremental[float]):
    """Exponential moving average, alpha = 2/(period+1), seeded with the SMA of the first `period` values."""

    __slots__ = ("_count", "_seed_sum", "alpha", "period")

    def __init__(self, period: int) -> None:
        self.period = _check_period("period", period)
        self.alpha = 2.0 / (period + 1)
        self._count = 0
        self._seed_sum = 0.0
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        if self._value is not None:
            self._value += self.alpha * (x - self._value)
            return self._value
        self._count += 1
        self._seed_sum += x
        if self._count == self.period:
            self._value = self._seed_sum / self.period
        return self._value


def ema(values: ArrayLike | Sequence[float], period: int) -> FloatArray:
    _check_period("period", period)
    x = _as_array(values)
    out = np.full(x.shape, np.nan)
    if len(x) < period:
        return out
    alpha = 2.0 / (period + 1)
    current = float(np.mean(x[:period]))
    out[period - 1] = current
    for i in range(period, len(x)):
        current += alpha * (x[i] - current)
        out[i] = current
    return out


# --------------------------------------------------------------------------- RSI


def _rsi_from_averages(avg_gain: float, avg_loss: float) -> float:
    if avg_loss == 0.0:
        # No losses: maximally strong, unless there were no gains either (flat).
        return 100.0 if avg_gain > 0.0 else 50.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class RSI(_Incremental[float]):
    """Wilder's relative strength index over `period` close-to-close changes (see module conventions)."""

    __slots__ = ("_avg_gain", "_avg_loss", "_changes", "_gain_sum", "_loss_sum", "_prev", "period")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("period", period)
        self._prev: float | None = None
        self._changes = 0
        self._gain_sum = 0.0
        self._loss_sum = 0.0
        self._avg_gain = 0.0
        self._avg_loss = 0.0
        self._value: float | None = None

    def update(self, close: float) -> float | None:
        prev, self._prev = self._prev, close
        if prev is None:
            return None
        change = close - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self.period
        if self._value is None:
            self._changes += 1
            self._gain_sum += gain
            self._loss_sum += loss
            if self._changes < n:
                return None
            self._avg_gain = self._gain_sum / n
            self._avg_loss = self._loss_sum / n
        else:
            self._avg_gain = (self._avg_gain * (n - 1) + gain) / n
            self._avg_loss = (self._avg_loss * (n - 1) + loss) / n
        self._value = _rsi_from_averages(self._avg_gain, self._avg_loss)
        return self._value


def rsi(closes: ArrayLike | Sequence[float], period: int = 14) -> FloatArray:
    _check_period("period", period)
    x = _as_array(closes)
    out = np.full(x.shape, np.nan)
    if len(x) <= period:
        return out
    changes = np.diff(x)
    gains = np.where(changes > 0, changes, 0.0)
    losses = np.where(changes < 0, -changes, 0.0)
    avg_gain = float(np.mean(gains[:period]))
    avg_loss = float(np.mean(losses[:period]))
    out[period] = _rsi_from_averages(avg_gain, avg_loss)
    for i in range(period, len(changes)):
        avg_gain = (avg_gain * (period - 1) + gains[i]) / period
        avg_loss = (avg_loss * (period - 1) + losses[i]) / period
        out[i + 1] = _rsi_from_averages(avg_gain, avg_loss)
    return out


# --------------------------------------------------------------------------- ATR


class ATR(_Incremental[float]):
    """Wilder's average true range over `period` candles (first TR = high - low)."""

    __slots__ = ("_count", "_prev_close", "_tr_sum", "period")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("period", period)
        self._prev_close: float | None = None
        self._count = 0
        self._tr_sum = 0.0
        self._value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev_close, self._prev_close = self._prev_close, close
        tr = high - low if prev_close is None else max(high - low, abs(high - prev_close), abs(low - prev_close))
        n = self.period
        if self._value is not None:
            self._value = (self._value * (n - 1) + tr) / n
            return self._value
        self._count += 1
        self._tr_sum += tr
        if self._count == n:
            self._value = self._tr_sum / n
        return self._value


def true_range(
    highs: ArrayLike | Sequence[float], lows: ArrayLike | Sequence[float], closes: ArrayLike | Sequence[float]
) -> FloatArray:
    h, lo, c = _as_array(highs), _as_array(lows), _as_array(closes)
    tr = h - lo
    if len(tr) > 1:
        prev = c[:-1]
        # max(h - l, |h - prev|, |l - prev|) in place, one temporary: maximum.reduce over a list would
        # first copy all three into one array, and signal tapes run this over millions of candles.
        gap = h[1:] - prev
        np.maximum(tr[1:], np.abs(gap, out=gap), out=tr[1:])
        np.subtract(lo[1:], prev, out=gap)
        np.maximum(tr[1:], np.abs(gap, out=gap), out=tr[1:])
    return tr


def atr(
    highs: ArrayLike | Sequence[float],
    lows: ArrayLike | Sequence[float],
    closes: ArrayLike | Sequence[float],
    period: int = 14,
) -> FloatArray:
    _check_period("period", period)
    tr = true_range(highs, lows, closes)
    out = np.full(tr.shape, np.nan)
    if len(tr) < period:
        return out
    current = float(np.mean(tr[:period]))
    out[period - 1] = current
    for i in range(period, len(tr)):
        current = (current * (period - 1) + tr[i]) / period
        out[i] = current
    return out


# --------------------------------------------------------------------------- MACD


class MACD(_Incremental[MacdValue]):
    """MACD line, signal line and histogram; `line` is available from index slow-1, `value` from slow+signal-2."""

    __slots__ = ("_fast", "_line", "_signal", "_slow", "fast", "signal", "slow")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        _check_period("signal", signal)
        if _check_period("fast", fast) >= _check_period("slow", slow):
            raise ValueError(f"fast ({fast}) must be less than slow ({slow})")
        self.fast, self.slow, self.signal = fast, slow, signal
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)
        self._line: float | None = None
        self._value: MacdValue | None = None

    def update(self, close: float) -> MacdValue | None:
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        if slow is None or fast is None:
            return None
        self._line = fast - slow
        signal = self._signal.update(self._line)
        if signal is not None:
            self._value = MacdValue(self._line, signal, self._line - signal)
        return self._value

    @property
    def line(self) -> float | None:
        return self._line


def macd(
    closes: ArrayLike | Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (line, signal, histogram) arrays."""
    _check_period("signal", signal)
    if _check_period("fast", fast) >= _check_period("slow", slow):
        raise ValueError(f"fast ({fast}) must be less than slow ({slow})")
    x = _as_array(closes)
    line = ema(x, fast) - ema(x, slow)  # NaN wherever the slow EMA is still warming up
    signal_line = np.full(x.shape, np.nan)
    if len(x) >= slow:
        signal_line[slow - 1 :] = ema(line[slow - 1 :], signal)
    return line, signal_line, line - signal_line


# --------------------------------------------------------------------------- Bollinger


class Bollinger(_Incremental[BollingerValue]):
    """Bollinger bands: SMA(period) +/- num_std * population standard deviation.

    Keeps the sum and sum of squares of (x - shift), where `shift` is re-centred
    on the current mean every `period` updates (when both sums are recomputed
    exactly). Subtracting a shift close to the mean avoids the catastrophic
    cancellation of E[x^2] - E[x]^2 at prices like 60000 with cents of spread;
    the variance is still clamped at 0 against rounding.
    """

    __slots__ = ("_s1", "_s2", "_shift", "_since_resync", "_std", "_values", "num_std", "period")

    def __init__(self, period: int = 20, num_std: float = 2.0) -> None:
        self.period = _check_period("period", period)
        if not (num_std > 0 and math.isfinite(num_std)):
            raise ValueError(f"num_std must be positive, got {num_std!r}")
        self.num_std = num_std
        self._values: deque[float] = deque(maxlen=period)
        self._shift: float | None = None
        self._s1 = 0.0
        self._s2 = 0.0
        self._since_resync = 0
        self._value: BollingerValue | None = None
        self._std: float | None = None

    def update(self, close: float) -> BollingerValue | None:
        if self._shift is None:
            self._shift = close
        if len(self._values) == self.period:
            old = self._values[0] - self._shift
            self._s1 -= old
            self._s2 -= old * old
        self._values.append(close)
        d = close - self._shift
        self._s1 += d
        self._s2 += d * d
        n = len(self._values)
        self._since_resync += 1
        if self._since_resync >= self.period:
            self._resync()
        if n < self.period:
            return None
        mean_d = self._s1 / n
        variance = max(self._s2 / n - mean_d * mean_d, 0.0)
        std = math.sqrt(variance)
        mid = self._shift + mean_d
        self._std = std
        self._value = BollingerValue(mid, mid + self.num_std * std, mid - self.num_std * std)
        return self._value

    def _resync(self) -> None:
        self._shift = math.fsum(self._values) / len(self._values)
        deviations = [v - self._shift for v in self._values]
        self._s1 = math.fsum(deviations)
        self._s2 = math.fsum(d * d for d in deviations)
        self._since_resync = 0

    @property
    def std(self) -> float | None:
        return self._std


def bollinger(
    closes: ArrayLike | Sequence[float], period: int = 20, num_std: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (mid, upper, lower) arrays."""
    _check_period("period", period)
    x = _as_array(closes)
    mid = np.full(x.shape, np.nan)
    std = np.full(x.shape, np.nan)
    if len(x) >= period:
        windows = np.lib.stride_tricks.sliding_window_view(x, period)
        mid[period - 1 :] = windows.mean(axis=1)
        std[period - 1 :] = windows.std(axis=1, ddof=0)
    return mid, mid + num_std * std, mid - num_std * std


# --------------------------------------------------------------------------- Donchian


class Donchian(_Incremental[DonchianValue]):
    """Highest high and lowest low over the last `period` candles, current included.

    Two monotonic deques of (index, value): each candle is pushed and popped at
    most once, so updates are amortised O(1) whatever the period.
    """

    __slots__ = ("_highs", "_index", "_lows", "period")

    def __init__(self, period: int = 20) -> None:
        self.period = _check_period("period", period)
        self._index = -1
        self._highs: deque[tuple[int, float]] = deque()  # values strictly decreasing front to back
        self._lows: deque[tuple[int, float]] = deque()  # values strictly increasing front to back
        self._value: DonchianValue | None = None

    def update(self, high: float, low: float) -> DonchianValue | None:
        self._index += 1
        i = self._index
        while self._highs and self._highs[-1][1] <= high:
            self._highs.pop()
        self._highs.append((i, high))
        while self._lows and self._lows[-1][1] >= low:
            self._lows.pop()
        self._lows.append((i, low))
        oldest = i - self.period + 1
        while self._highs[0][0] < oldest:
            self._highs.popleft()
        while self._lows[0][0] < oldest:
            self._lows.popleft()
        if i + 1 >= self.period:
            self._value = DonchianValue(self._highs[0][1], self._lows[0][1])
        return self._value


def donchian(
    highs: ArrayLike | Sequence[float], lows: ArrayLike | Sequence[float], period: int = 20
) -> tuple[FloatArray, FloatArray]:
    """Return (upper, lower) arrays: rolling max of highs and min of lows, current candle included."""
    _check_period("period", period)
    h, lo = _as_array(highs), _as_array(lows)
    upper = np.full(h.shape, np.nan)
    lower = np.full(lo.shape, np.nan)
    if len(h) >= period:
        upper[period - 1 :] = np.lib.stride_tricks.sliding_window_view(h, period).max(axis=1)
        lower[period - 1 :] = np.lib.stride_tricks.sliding_window_view(lo, period).min(axis=1)
    return upper, lower


# --------------------------------------------------------------------------- ROC


class ROC(_Incremental[float]):
    """Rate of change: close / close `period` observations ago - 1; ready after period + 1 closes."""

    __slots__ = ("_values", "period")

    def __init__(self, period: int) -> None:
        self.period = _check_period("period", period)
        self._values: deque[float] = deque(maxlen=period + 1)
        self._value: float | None = None

    def update(self, close: float) -> float | None:
        self._values.append(close)
        if len(self._values) == self.period + 1:
            base = self._values[0]
            # A non-positive base price is bad data; stay "not ready" rather than divide by it.
            self._value = close / base - 1.0 if base > 0 else None
        return self._value


def roc(closes: ArrayLike | Sequence[float], period: int) -> FloatArray:
    _check_period("period", period)
    x = _as_array(closes)
    out = np.full(x.shape, np.nan)
    if len(x) > period:
        base = x[:-period]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[period:] = np.where(base > 0, x[period:] / base - 1.0, np.nan)
    return out
