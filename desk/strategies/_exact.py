"""Batch forms of the incremental indicators that repeat their floating-point arithmetic bit for bit.

A signal tape must give exactly the signals a strategy gives candle by candle,
and a crossing can hang on the last bit of an average: the clear batch forms in
`indicators` (a mean over each window, an EMA in closed form) round differently
from the running arithmetic of the classes. So each function here returns, for
every candle, the very float the incremental class returns after that update
(NaN while it returns None), with the per-candle work done in numpy:

* Running sums (SMA, Bollinger): the class resyncs its sum with `math.fsum`
  every `period` updates and subtracts-then-adds in between. Here every such
  block runs side by side: each starts from a vectorised, correctly rounded
  window sum (`window_sums`) and repeats the same two roundings per update.
* Recurrences (EMA, Wilder's averages, ATR) run their exact update across a
  few thousand chunks of the series at once, each chunk started from a
  close estimate; then each chunk border is repaired until every value is
  exactly the update of the one before (`_settle`), which makes the result
  exact by induction from the seed whatever the estimates were.
* Donchian and ROC involve no accumulated rounding; they are here so a tape
  needs a single import.

Tests hold every function equal to its class with `array_equal`, not a tolerance.
Inputs are finite prices; the module makes no promise for NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from desk.strategies.indicators import FloatArray, true_range

# One update of a recurrence: the new value from the previous one and this candle's input,
# element-wise on arrays or on numpy scalars, with exactly the class's operations in its order.
Step = Callable[[FloatArray, FloatArray], FloatArray]

# Recurrences run in at most this many chunks side by side, each at least _MIN_CHUNK long: numpy's
# overhead is paid once per step down the chunks, and a short chunk would be mostly border repair.
_MAX_CHUNKS = 4096
_MIN_CHUNK = 64
# Blocks per slice when laying a series out by block (see _blocks).
_TRANSPOSE_BAND = 512
# Below this many open repairs, following each one in plain Python beats another numpy sweep.
_SCALAR_REPAIRS = 32


class BollingerColumns(NamedTuple):
    mid: FloatArray
    upper: FloatArray
    lower: FloatArray
    std: FloatArray


def _two_sum(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """a + b rounded, and its rounding error exactly (Knuth's TwoSum)."""
    total = a + b
    b_part = total - a
    return total, (a - (total - b_part)) + (b - b_part)


def window_sums(windows: FloatArray) -> FloatArray:
    """`math.fsum` of each column of a (width, count) array: correctly rounded sums, vectorised.

    Fast path, for values of similar size such as prices: let |x| < 2**E for all x.
    Rounding each x to the grid 2**(E-26) (by adding and removing 1.5 * 2**(E+26),
    whose ulp that is) splits it exactly into a multiple of the grid and a small
    remainder. Sums of grid multiples are exact in any order; so are sums of the
    remainders, provided no nonzero |x| is below 2**(E - 27 + log2(width)), which
    the exponent check below ensures. One rounding of the two exact sums is then the
    correctly rounded total. Otherwise every column adds up with TwoSum, exact
    unless summing the rounding errors itself rounds; those columns, and any
    non-finite ones, go to `math.fsum`.
    """
    width, count = windows.shape
    if count == 0:
        return np.empty(0)
    smallest = float(windows.min())
    if smallest > 0.0:  # prices: no sign or zero to look past
        largest = float(windows.max())
    else:
        magnitude = np.abs(windows)
        largest, smallest = float(magnitude.max()), float(magnitude[magnitude > 0.0].min(initial=np.inf))
    if math.isfinite(largest) and (
        smallest == math.inf or math.frexp(largest)[1] - math.frexp(smallest)[1] <= 26 - math.ceil(math.log2(width))
    ):
        offset = math.ldexp(1.5, math.frexp(largest)[1] + 26)  # its ulp is the grid g
        part = windows + offset
        part -= offset  # the multiples of g
        high = part.sum(axis=0)
        np.subtract(windows, part, out=part)  # the remainders
        return high + part.sum(axis=0)
    total = windows[0].copy()
    errors = np.zeros(count)
    unsure = np.zeros(count, dtype=bool)
    for row in windows[1:]:
        total, error = _two_sum(total, row)
        errors, error_of_errors = _two_sum(errors, error)
        unsure |= error_of_errors != 0.0
    result = total + errors
    unsure |= ~np.isfinite(total)
    for column in np.flatnonzero(unsure).tolist():
        result[column] = math.fsum(windows[:, column].tolist())
    return result


def _blocks(x: FloatArray, period: int) -> FloatArray:
    """x laid out for a running sum resynced every `period` updates: grid[i, k] = x[k*period + i].

    The classes resync on updates period-1, 2*period-1, ...: block k starts at update
    (k+1)*period - 1 from the exact sum of column k, and its update i (1 <= i < period)
    drops grid[i-1, k] and adds grid[i-1, k+1]. Rows are contiguous, so each numpy
    operation below runs across all blocks at once.
    """
    blocks = len(x) // period
    grid = np.zeros((period, blocks + 1))
    by_block = x[: blocks * period].reshape(blocks, period)
    # A band of blocks at a time: one transposed copy of millions of values thrashes the cache (3-4x slower).
    for start in range(0, blocks, _TRANSPOSE_BAND):
        end = min(start + _TRANSPOSE_BAND, blocks)
        grid[:, start:end] = by_block[start:end].T
    tail = x[blocks * period :]
    grid[: len(tail), blocks] = tail  # the last block's later updates run past the data: their results are dropped
    return grid


def _running_sums(start: FloatArray, leaving: FloatArray, entering: FloatArray) -> FloatArray:
    """Each block's running sum update by update, as the class computes it: sum -= leaving; sum += entering.

    Returns (period, blocks): row i holds every block's sum after its update i, so each
    step is one contiguous operation across all blocks (`.T` puts them in update order).
    """
    period = leaving.shape[0] + 1
    sums = np.empty((period, start.shape[0]))
    total = start.copy()
    sums[0] = total
    for i in range(period - 1):
        total -= leaving[i]
        total += entering[i]
        sums[i + 1] = total
    return sums


def _in_update_order(by_block: FloatArray, n: int, divisor: int) -> FloatArray:
    """(period, blocks) running sums / divisor as a length-n array from update period-1 on, NaN before.

    Written straight into the result, one pass and no temporary: these are the largest arrays here.
    """
    period, blocks = by_block.shape
    out = np.empty(period - 1 + period * blocks)
    out[: period - 1] = np.nan
    np.divide(by_block.T, divisor, out=out[period - 1 :].reshape(blocks, period))
    return out[:n]


def running_sma(values: FloatArray, period: int) -> FloatArray:
    """What `SMA(period).update` returns for each value, NaN before it is warm."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < period:
        return np.full(n, np.nan)
    grid = _blocks(x, period)
    sums = _running_sums(window_sums(grid[:, :-1]), grid[:-1, :-1], grid[:-1, 1:])
    return _in_update_order(sums, n, period)


def running_bollinger(values: FloatArray, period: int, num_std: float) -> BollingerColumns:
    """What `Bollinger(period, num_std).update` returns for each value (and its `std`), NaN before warm.

    The class sums deviations from a shift that each resync moves to the window's
    mean; its first resync lands on the first warm update, so only the blocks after
    it matter.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < period:
        return BollingerColumns(*(np.full(n, np.nan) for _ in range(4)))
    grid = _blocks(x, period)
    windows = grid[:, :-1]
    shift = window_sums(windows) / period
    deviations = windows - shift
    gone, new = grid[:-1, :-1] - shift, grid[:-1, 1:] - shift
    s1 = _running_sums(window_sums(deviations), gone, new)
    s2 = _running_sums(window_sums(deviations * deviations), gone * gone, new * new)
    mean_d = _in_update_order(s1, n, period)  # s1 / n with n == period once warm
    variance = _in_update_order(s2, n, period) - mean_d * mean_d
    variance = np.where(variance < 0.0, 0.0, variance)  # max(variance, 0.0), keeping its sign of zero
    std = np.sqrt(variance)
    mid = np.concatenate((np.full(period - 1, np.nan), np.repeat(shift, period)))[:n] + mean_d
    return BollingerColumns(mid, mid + num_std * std, mid - num_std * std, std)


def _same(a: float, b: float) -> bool:
    """Bit-identical floats (NaN equals NaN, 0.0 differs from -0.0): the same future under the same step."""
    return bool(np.float64(a).view(np.int64) == np.float64(b).view(np.int64))


def _settle(y: FloatArray, inputs: FloatArray, suspects: np.ndarray, step: Step) -> None:
    """Repair `y` in place until y[t] == step(y[t-1], inputs[t]) wherever it may not hold.

    `suspects`, ascending, must list every t where it may fail (elsewhere it holds).
    Repairing t may break t+1, which becomes a suspect. Each sweep fixes at least the
    first suspect for good (everything before it is exact, by induction from the
    seed), so this ends; in practice an estimate a few ulps off rejoins the exact
    sequence within a few dozen updates.
    """
    n = len(y)
    bits = y.view(np.int64)
    while suspects.size > _SCALAR_REPAIRS:
        new = step(y[suspects - 1], inputs[suspects])
        moved = new.view(np.int64) != bits[suspects]
        suspects = suspects[moved]
        y[suspects] = new[moved]
        suspects = suspects + 1
        suspects = suspects[suspects < n]
    done = -1
    for t in suspects.tolist():
        if t <= done:
            continue  # already recomputed by the previous chain
        while t < n:
            value = step(y[t - 1], inputs[t])
            if _same(value, y[t]):
                break
            y[t] = value
            t += 1
        done = t


def recurrence(step: Step, inputs: FloatArray, first: int, seed: float, decay: float, gain: float) -> FloatArray:
    """y[first] = seed and y[t] = step(y[t-1], inputs[t]) after it, bit for bit; NaN before `first`.

    `decay` and `gain` state the same update in exact arithmetic,
    y[t] ~ decay * y[t-1] + gain * inputs[t]; they only estimate where each chunk starts.
    """
    n = len(inputs)
    if first >= n - 1:
        out = np.full(n, np.nan)
        out[first:] = seed
        return out
    updates = n - first - 1
    length = max(_MIN_CHUNK, -(-updates // _MAX_CHUNKS))
    chunks = -(-updates // length)
    out = np.empty(first + 1 + chunks * length)  # the tail past n pads the last chunk
    out[:first] = np.nan
    out[first] = seed
    # Row c is chunk c, in update order; a step works down one column, each input overwritten by its result.
    values = out[first + 1 :].reshape(chunks, length)
    values.ravel()[:updates] = inputs[first + 1 :]
    values.ravel()[updates:] = 0.0
    # Estimate the value before each chunk: each whole chunk moves it to decay**length * y + sum of
    # decay**(length-1-k) * gain * input_k (weights underflowing to 0 are fine: this is an estimate).
    weights = gain * decay ** np.arange(length - 1, -1, -1, dtype=np.float64)
    within = np.einsum("ck,k->c", values[:-1], weights)  # not `@`: BLAS threads cost more than they save here
    carry = decay**length
    starts = [seed]
    for moved in within.tolist():  # one Python step per chunk, not per candle
        starts.append(carry * starts[-1] + moved)
    # The exact update, a step of every chunk at once.
    current = np.asarray(starts, dtype=np.float64)
    for k in range(length):
        current = step(current, values[:, k])
        values[:, k] = current
    out = out[:n]
    # Chunk c > 0 started from an estimate, so its first update is the only place the recurrence may not hold.
    _settle(out, inputs, first + 1 + length * np.arange(1, chunks), step)
    return out


def _seed_sum(values: FloatArray) -> float:
    """0.0 + values[0] + values[1] + ..., left to right, as a class's warm-up sum accumulates."""
    return float(np.cumsum(np.concatenate(([0.0], values)))[-1])


def running_ema(values: FloatArray, period: int) -> FloatArray:
    """What `EMA(period).update` returns for each value, NaN before it is warm."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < period:
        return np.full(len(x), np.nan)
    alpha = 2.0 / (period + 1)

    def step(prev: FloatArray, value: FloatArray) -> FloatArray:
        return prev + alpha * (value - prev)

    return recurrence(step, x, period - 1, _seed_sum(x[:period]) / period, 1.0 - alpha, alpha)


def _wilder(inputs: FloatArray, first: int, period: int, warm_inputs: FloatArray) -> FloatArray:
    """Wilder's smoothing as the classes do it: the mean of the warm-up inputs, then (prev*(n-1) + x)/n."""
    n = period

    def step(prev: FloatArray, value: FloatArray) -> FloatArray:
        return (prev * (n - 1) + value) / n

    return recurrence(step, inputs, first, _seed_sum(warm_inputs) / n, (n - 1) / n, 1.0 / n)


def running_rsi(closes: FloatArray, period: int) -> FloatArray:
    """What `RSI(period).update` returns for each close, NaN before it is warm."""
    x = np.asarray(closes, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) <= period:
        return out
    change = np.diff(x, prepend=x[0])  # change[t] = x[t] - x[t-1]; change[0] is never used
    gains = np.where(change > 0, change, 0.0)
    losses = np.where(change < 0, -change, 0.0)
    avg_gain = _wilder(gains, period, period, gains[1 : period + 1])
    avg_loss = _wilder(losses, period, period, losses[1 : period + 1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rs_rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    # _rsi_from_averages: no losses is 100 with gains and 50 without.
    out[:] = np.where(avg_loss == 0.0, np.where(avg_gain > 0.0, 100.0, 50.0), rs_rsi)
    out[:period] = np.nan
    return out


def running_atr(highs: FloatArray, lows: FloatArray, closes: FloatArray, period: int) -> FloatArray:
    """What `ATR(period).update` returns for each candle, NaN before it is warm."""
    tr = true_range(highs, lows, closes)  # the same three differences and max as the class
    if len(tr) < period:
        return np.full(len(tr), np.nan)
    return _wilder(tr, period - 1, period, tr[:period])


class MacdColumns(NamedTuple):
    line: FloatArray
    signal: FloatArray
    histogram: FloatArray


def running_macd(closes: FloatArray, fast: int, slow: int, signal: int) -> MacdColumns:
    """What `MACD(fast, slow, signal).update` returns for each close (its three fields), NaN before warm."""
    x = np.asarray(closes, dtype=np.float64)
    n = len(x)
    line = running_ema(x, fast) - running_ema(x, slow)  # NaN until the slow EMA is warm, as `line` is None
    signal_line = np.full(n, np.nan)
    if n >= slow:
        signal_line[slow - 1 :] = running_ema(line[slow - 1 :], signal)
    histogram = line - signal_line
    ready = ~np.isnan(signal_line)
    return MacdColumns(np.where(ready, line, np.nan), signal_line, histogram)


def running_donchian(highs: FloatArray, lows: FloatArray, period: int) -> tuple[FloatArray, FloatArray]:
    """What `Donchian(period).update` returns (upper, lower) for each candle, NaN before warm.

    Van Herk/Gil-Werman: cut the series into blocks of `period`; the window ending at
    t is a suffix of one block and a prefix of the next, so a running extreme from
    each end of every block answers all windows in O(n) whatever the period.
    """
    return _rolling(highs, period, np.maximum, -np.inf), _rolling(lows, period, np.minimum, np.inf)


def _rolling(values: FloatArray, period: int, extreme: np.ufunc, neutral: float) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    out = np.full(n, np.nan)
    if n < period:
        return out
    blocks = -(-n // period)
    padded = np.full(blocks * period, neutral)
    padded[:n] = x
    # (period, blocks): row i is offset i of every block, so each step below is one contiguous operation.
    prefix = np.ascontiguousarray(padded.reshape(blocks, period).T)
    suffix = prefix.copy()
    for i in range(1, period):
        extreme(prefix[i - 1], prefix[i], out=prefix[i])
        extreme(suffix[period - i], suffix[period - 1 - i], out=suffix[period - 1 - i])
    # Back to time order: window [t - period + 1, t] is suffix at its start and prefix at its end.
    out[period - 1 :] = extreme(suffix.T.ravel()[: n - period + 1], prefix.T.ravel()[period - 1 : n])
    return out


def running_roc(closes: FloatArray, period: int) -> FloatArray:
    """What `ROC(period).update` returns for each close: NaN before warm and where the base is not positive."""
    x = np.asarray(closes, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) > period:
        base = x[:-period]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out[period:] = np.where(base > 0, x[period:] / base - 1.0, np.nan)
    return out
