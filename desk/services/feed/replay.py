"""Replay 1-minute candle files as a feed, for backtests.

Several symbols share ONE timeline: the sorted union of their candle open times
within [start_ms, end_ms). Each step of `next_candles` returns the candles of the
symbols that have a row at that time; a symbol without one is absent from the
batch (a gap for that symbol), so a batch is never empty but may hold fewer
symbols than `symbols`. `gaps()` lists every such hole, computed once at load.

Everything is loaded and validated in the constructor (see `candle_files` for the
layouts and rules), so a bad file raises `ReplayDataError` before the caller has
created anything on disk.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from desk.core.errors import ReplayDataError
from desk.core.types import MINUTE_MS, Candle, Market
from desk.services.feed.candle_files import KNOWN_LAYOUTS, CandleColumns, CandleFile, load_candle_file
from desk.services.feed.simulated import market_rules

__all__ = ["KNOWN_LAYOUTS", "CandleColumns", "Gap", "ReplayFeed", "ReplaySource", "infer_symbol"]

# Timeline steps turned into Candle objects at a time: big enough to amortise the numpy
# calls, small enough that a million-bar replay never holds more than a few thousand candles.
_CHUNK_STEPS = 4096

# Exchange spellings of assets, as they appear in file names (Kraken's XBT and its legacy X/Z codes).
_ASSET_ALIASES: dict[str, tuple[str, ...]] = {
    "BTC": ("BTC", "XBT", "XXBT"),
    "DOGE": ("DOGE", "XDG", "XXDG"),
    "ETH": ("ETH", "XETH"),
    "USD": ("USD", "ZUSD"),
    "EUR": ("EUR", "ZEUR"),
    "GBP": ("GBP", "ZGBP"),
}
_SEPARATORS = re.compile(r"[^A-Z0-9]+")
_EXTENSIONS = (".csv.gz", ".csv", ".parquet")


@dataclass(frozen=True, slots=True)
class ReplaySource:
    """One candle file and the symbol ("BASE/QUOTE") it holds; `layout` None means detect it."""

    path: Path
    symbol: str
    layout: str | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """A hole in one symbol's candles: none between `after_ts` and `next_ts` (both candle opens, epoch ms)."""

    symbol: str
    after_ts: int
    next_ts: int
    missing_minutes: int


class ReplayFeed:
    """A `Feed` over candle files, aligned on one timeline; exhausted at the end of the data or `end_ms`."""

    def __init__(self, sources: Sequence[ReplaySource], start_ms: int | None = None, end_ms: int | None = None) -> None:
        if not sources:
            raise ValueError("the replay feed needs at least one source")
        symbols = [source.symbol for source in sources]
        duplicates = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
        if duplicates:
            raise ValueError(f"symbols given more than one file: {duplicates}")
        if start_ms is not None and end_ms is not None and start_ms >= end_ms:
            raise ValueError(f"start_ms {start_ms} is not before end_ms {end_ms}")
        self._symbols = symbols
        self._files: dict[str, CandleFile] = {}
        # Per symbol, the [first, last) rows inside the window.
        self._window: dict[str, tuple[int, int]] = {}
        for source in sources:
            loaded = load_candle_file(source.path, source.layout)
            ts = loaded.bars.ts
            first = 0 if start_ms is None else int(np.searchsorted(ts, start_ms, side="left"))
            last = len(ts) if end_ms is None else int(np.searchsorted(ts, end_ms, side="left"))
            if first >= last:
                raise ReplayDataError(
                    str(source.path),
                    [
                        f"no {source.symbol} candles in the replay window {_window_text(start_ms, end_ms)}; "
                        f"the file covers {_iso(int(ts[0]))} to {_iso(int(ts[-1]))}"
                    ],
                )
            self._files[source.symbol] = loaded
            self._window[source.symbol] = (first, last)

        # Rules from the first price the replay shows; a malformed symbol fails here, before any run.
        self._markets = {
            symbol: market_rules(symbol, float(self._files[symbol].bars.close[self._window[symbol][0]]))
            for symbol in symbols
        }
        windows = [self._files[s].bars.ts[slice(*self._window[s])] for s in symbols]
        self._timeline = _union_sorted(windows)
        self._timeline.flags.writeable = False
        # Row of each symbol at each timeline step, -1 where the symbol has none: next_candles
        # then needs no search at all.
        self._rows_at_step: list[np.ndarray] = []
        for symbol, window_ts in zip(symbols, windows, strict=True):
            rows = np.full(self._timeline.shape[0], -1, dtype=np.int64)
            first, last = self._window[symbol]
            rows[np.searchsorted(self._timeline, window_ts)] = np.arange(first, last, dtype=np.int64)
            self._rows_at_step.append(rows)
        self._gaps = _find_gaps(symbols, windows)
        self._step = 0
        self._chunk_start = -1
        self._chunk: list[list[Candle]] = []

    # ----------------------------------------------------------------- Feed API

    @property
    def symbols(self) -> list[str]:
        """The symbols replayed, in the order each batch lists them (a copy)."""
        return list(self._symbols)

    def markets(self) -> dict[str, Market]:
        """Kraken-like rules per symbol, derived from its first close in the window."""
        return dict(self._markets)

    def next_candles(self) -> list[Candle] | None:
        """The candles of every symbol that has one at the next timeline step, in `symbols` order; None at the end."""
        step = self._step
        if step >= self._timeline.shape[0]:
            return None
        chunk_start = step - step % _CHUNK_STEPS
        if chunk_start != self._chunk_start:
            self._chunk = self._build_chunk(chunk_start)
            self._chunk_start = chunk_start
        self._step = step + 1
        return self._chunk[step - chunk_start]

    def seek(self, after_ts: int) -> None:
        """Position the feed so `next_candles` returns the first timeline step whose open is after `after_ts`."""
        self._step = int(np.searchsorted(self._timeline, after_ts, side="right"))
        # Batches already handed out may have been changed by the caller; never serve them twice.
        self._chunk_start = -1
        self._chunk = []

    # --------------------------------------------------------------- inspection

    def __len__(self) -> int:
        """Number of timeline steps in the window (minutes in which at least one symbol has a candle)."""
        return int(self._timeline.shape[0])

    def short_coverage(self) -> list[str]:
        """A note for every symbol whose data starts after the replay's first minute or ends before its last.

        Such a symbol's workers wait for its first candle; after its last one, any
        position on it is marked at that close to the end of the run and its stops
        no longer trigger. Neither is a gap (there is no candle on the far side),
        so a backtest says so up front instead.
        """
        first, last = int(self._timeline[0]), int(self._timeline[-1])
        notes: list[str] = []
        for symbol in self._symbols:
            begin, end = self._window[symbol]
            ts = self._files[symbol].bars.ts
            starts, ends = int(ts[begin]), int(ts[end - 1])
            if starts > first:
                minutes = (starts - first) // MINUTE_MS
                notes.append(f"{symbol} data starts at {_iso(starts)}, {minutes} minutes after the replay's first")
            if ends < last:
                minutes = (last - ends) // MINUTE_MS
                notes.append(
                    f"{symbol} data ends at {_iso(ends)}, {minutes} minutes before the replay's last: a position"
                    " on it is marked at that close to the end and its stops no longer trigger"
                )
        return notes

    def gaps(self) -> list[Gap]:
        """Every hole inside the window in each symbol's candles, oldest first (a copy)."""
        return list(self._gaps)

    def bars(self, symbol: str) -> CandleColumns:
        """The symbol's whole file as read-only arrays, including rows outside the window (warm-up history)."""
        return self._file(symbol).bars

    def index_of(self, symbol: str, ts: int) -> int:
        """The row in `bars(symbol)` of the candle that opens at `ts`; KeyError if the symbol has none then."""
        bars = self._file(symbol).bars
        row = int(np.searchsorted(bars.ts, ts, side="left"))
        if row >= len(bars) or int(bars.ts[row]) != ts:
            raise KeyError(f"{symbol} has no candle at {ts} ({_iso(ts)})")
        return row

    @property
    def timeline(self) -> np.ndarray:
        """Every timeline step's candle open time, epoch ms, oldest first (read-only)."""
        return self._timeline

    def window_rows(self, symbol: str) -> tuple[int, int]:
        """The [first, last) rows of `bars(symbol)` inside the replay window."""
        self._file(symbol)
        return self._window[symbol]

    def rows_at_steps(self, symbol: str) -> np.ndarray:
        """The row in `bars(symbol)` of the symbol's candle at each timeline step, -1 where it has none."""
        rows = self._rows_at_step[self._symbols.index(symbol)].view()
        rows.flags.writeable = False
        return rows

    def candles_at(self, step: int) -> list[Candle]:
        """The batch `next_candles` returns for timeline step `step`, built on its own (random access)."""
        batch = []
        for symbol, rows in zip(self._symbols, self._rows_at_step, strict=True):
            row = int(rows[step])
            if row >= 0:
                batch.append(self.candle(symbol, row))
        return batch

    def candle(self, symbol: str, row: int) -> Candle:
        """Row `row` of `bars(symbol)` as a Candle."""
        bars = self._file(symbol).bars
        return Candle(
            symbol,
            int(bars.ts[row]),
            float(bars.open[row]),
            float(bars.high[row]),
            float(bars.low[row]),
            float(bars.close[row]),
            float(bars.volume[row]),
        )

    def layout(self, symbol: str) -> str:
        """The layout the symbol's file was read as."""
        return self._file(symbol).layout

    # --------------------------------------------------------------- internals

    def _file(self, symbol: str) -> CandleFile:
        try:
            return self._files[symbol]
        except KeyError:
            raise KeyError(f"{symbol!r} is not replayed; symbols are {self._symbols}") from None

    def _build_chunk(self, chunk_start: int) -> list[list[Candle]]:
        """Candle batches for `_CHUNK_STEPS` steps from `chunk_start`, built column-wise with `tolist`."""
        chunk_end = min(chunk_start + _CHUNK_STEPS, self._timeline.shape[0])
        batches: list[list[Candle]] = [[] for _ in range(chunk_end - chunk_start)]
        # Symbols outermost, so each batch lists its candles in `symbols` order.
        for symbol, rows_at_step in zip(self._symbols, self._rows_at_step, strict=True):
            rows = rows_at_step[chunk_start:chunk_end]
            steps = np.flatnonzero(rows >= 0)
            rows = rows[steps]
            bars = self._files[symbol].bars
            columns = zip(
                steps.tolist(),
                bars.ts[rows].tolist(),
                bars.open[rows].tolist(),
                bars.high[rows].tolist(),
                bars.low[rows].tolist(),
                bars.close[rows].tolist(),
                bars.volume[rows].tolist(),
                strict=True,
            )
            for step, ts, open_, high, low, close, volume in columns:
                batches[step].append(Candle(symbol, ts, open_, high, low, close, volume))
        return batches


def infer_symbol(path: Path, known_symbols: Sequence[str]) -> str | None:
    """The one known symbol ("BASE/QUOTE") a file name spells, or None if none or several match.

    The name (without extension) is split into tokens at anything not a letter or digit;
    a symbol matches when one token is BASE+QUOTE or two adjacent tokens are BASE, QUOTE,
    with exchange spellings allowed (Kraken's XBT for BTC). Whole tokens only, so
    "BTCUSDT" does not match BTC/USD. Examples: btcusd.csv, BTC-USD.parquet, BTC_USDT.csv,
    XBTUSD_1.csv, ETHUSD_1m.csv.gz, Binance_BTCUSDT_minute.csv.
    """
    name = Path(path).name.upper()
    for extension in _EXTENSIONS:
        if name.endswith(extension.upper()):
            name = name[: -len(extension)]
            break
    tokens = [token for token in _SEPARATORS.split(name) if token]
    singles = set(tokens)
    pairs = set(itertools.pairwise(tokens))
    matches = []
    for symbol in known_symbols:
        base, sep, quote = symbol.upper().partition("/")
        if not sep:
            continue
        spellings = [(b, q) for b in _ASSET_ALIASES.get(base, (base,)) for q in _ASSET_ALIASES.get(quote, (quote,))]
        if any(b + q in singles or (b, q) in pairs for b, q in spellings):
            matches.append(symbol)
    return matches[0] if len(matches) == 1 else None


def _union_sorted(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The sorted union of strictly increasing arrays.

    A stable sort of the concatenation is timsort, which merges the already-sorted runs in
    linear time: several times faster than np.unique's hashing on a million timestamps.
    """
    if len(arrays) == 1:
        return arrays[0]
    merged = np.sort(np.concatenate(arrays), kind="stable")
    keep = np.empty(merged.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def _find_gaps(symbols: Sequence[str], windows: Sequence[np.ndarray]) -> list[Gap]:
    """Holes longer than a minute between consecutive candles of each symbol, oldest first."""
    gaps: list[tuple[int, int, Gap]] = []
    for order, (symbol, ts) in enumerate(zip(symbols, windows, strict=True)):
        steps = np.diff(ts)
        at = np.flatnonzero(steps > MINUTE_MS)
        for after_ts, next_ts in zip(ts[at].tolist(), ts[at + 1].tolist(), strict=True):
            gaps.append((after_ts, order, Gap(symbol, after_ts, next_ts, (next_ts - after_ts) // MINUTE_MS - 1)))
    gaps.sort(key=lambda item: (item[0], item[1]))
    return [gap for _, _, gap in gaps]


def _window_text(start_ms: int | None, end_ms: int | None) -> str:
    start = _iso(start_ms) if start_ms is not None else "the start"
    end = _iso(end_ms) if end_ms is not None else "the end"
    return f"[{start}, {end})"


def _iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC, for messages."""
    return np.datetime_as_string(np.datetime64(ms, "ms"), unit="m") + "Z"
