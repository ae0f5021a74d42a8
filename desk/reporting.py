"""The backtest report: performance metrics for the account and per worker, as text, HTML and JSON.

Built once at the end of a run from the `RunRecorder` (numpy over the recorded
arrays; nothing here runs per candle). Conventions:

* **The equity curve** is the account's opening balance (`starting_cash`, placed
  one minute before the first sample: the open of the first traded candle, since
  samples are stamped at candle close) followed by every equity sample. Returns,
  drawdowns and CAGR are measured on it, so a loss in the first minute counts.
* **Periods.** When the curve spans at least two days, returns are taken between
  daily closes (UTC; the close of day D is the last point stamped in (D 00:00, D+1
  00:00], because a sample stamped at midnight is the close of the 23:59 candle),
  the first one measured from the opening balance. Shorter runs use per-minute
  returns on a one-minute grid. Values are carried forward over gaps.
* **Annualisation** uses 365 days, because crypto trades every day: Sharpe and
  Sortino are multiplied by sqrt(365) for daily returns and sqrt(525,600) for
  minute returns. The risk-free rate is 0.
* **Sharpe** = mean / sample standard deviation (ddof=1) of the period returns.
  **Sortino** = mean / downside deviation, where the downside deviation is
  sqrt(mean(min(r, 0)^2)) over *all* periods, not only the losing ones.
* **CAGR** = (end / start) ^ (365 days / span) - 1, the span running from the
  curve's first point to its last sample. Runs shorter than a day have none
  (None): compounding minutes into a year turns +0.1 % in three minutes into
  10^76 x and -0.1 % into -100 %, which says nothing; their total return does.
* **Max drawdown** is the largest fall from a running peak, as a positive
  fraction (0.10 = 10 %); its **duration** is the longest time spent below a
  previous peak, from the last moment at that peak to the first point back at
  or above it (or to the end of the run if it never recovers). Curves are held
  flat between points (as for returns), so the last moment at the peak is the
  start of the minute whose close first fell below it: a data gap, or a
  sub-ledger's quiet weeks between two exits, is not time under water.
* **Trade statistics** use each closed trade's net PnL (after all its fees):
  win rate = share of trades with net PnL > 0, expectancy = mean net PnL in the
  quote currency, profit factor = gross win / gross loss. `net_pnl` is the sum
  over closed trades; a position still open at the end is in `end_equity`
  (marked to market). `fees` is every fee paid: closed trades' and those
  already paid on positions still open at the end (their entry, any partial
  exit).
* **Per worker**, return / CAGR / Sharpe / Sortino / drawdown come from the
  worker's sub-ledger: `starting_cash` plus the cumulative net PnL of its trades,
  booked at their exit times, held flat to the end of the run. That is the
  account as if this worker alone had traded, with no mark-to-market while a
  trade is open. **Exposure** is the share of the run's span (opening balance to
  last sample) during which a position was held: per worker from its trades'
  entry and exit times, a position still open at the end counting to the end;
  for the account from the equity samples, each sample's "any position open"
  holding until the next sample, so time in a data gap counts as it does for
  the workers.
* **Undefined is None**: a ratio whose denominator is zero (Sharpe or Sortino of
  a flat curve, win rate or expectancy with no trades, profit factor with no
  losing trade, where it would be infinite) is None, shown as "—" and written
  as JSON null.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from desk.core.events import PositionClosed
from desk.core.types import DAY_MS, MINUTE_MS

if TYPE_CHECKING:
    from desk.backtest import OpenTrade, RunRecorder

YEAR_MS = 365 * DAY_MS
PERIODS_PER_YEAR = {"daily": 365, "minute": 525_600}
# Below this span, daily returns are too few to mean anything; per-minute returns are used instead.
DAILY_MIN_SPAN_MS = 2 * DAY_MS
MAX_CHART_POINTS = 5_000

Period = Literal["daily", "minute"]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Performance of the account or of one worker's sub-ledger; see the module docstring for definitions."""

    start_equity: float
    end_equity: float
    net_pnl: float
    total_return: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    max_drawdown_duration_ms: int
    exposure: float
    trade_count: int
    win_rate: float | None
    expectancy: float | None
    profit_factor: float | None
    fees: float


@dataclass(frozen=True, slots=True)
class BacktestReport:
    """The account's metrics, each worker's, and the time span and return period they were measured on."""

    total: Metrics
    by_worker: dict[str, Metrics]
    start_ms: int
    end_ms: int
    period: Period


@dataclass(frozen=True, slots=True)
class _Curve:
    ts: np.ndarray  # int64 epoch ms, non-decreasing
    values: np.ndarray  # float64


def build_report(recorder: RunRecorder, starting_cash: float, *, workers: Sequence[str] = ()) -> BacktestReport:
    """Compute the report; `workers` lists workers to include even if they never traded."""
    curve = account_curve(recorder, starting_cash)
    start_ms, end_ms = int(curve.ts[0]), int(curve.ts[-1])
    period: Period = "daily" if end_ms - start_ms >= DAILY_MIN_SPAN_MS else "minute"
    still_open = list(recorder.open_trades.values())
    fees = sum(t.fees for t in recorder.trades) + sum(o.fees for o in still_open)
    total = _metrics(curve, period, recorder.trades, _time_exposed(recorder, start_ms, end_ms), fees)
    trades_by_worker: dict[str, list[PositionClosed]] = {name: [] for name in workers}
    for trade in recorder.trades:
        trades_by_worker.setdefault(trade.worker, []).append(trade)
    open_by_worker: dict[str, list[OpenTrade]] = {}
    for held in still_open:
        open_by_worker.setdefault(held.worker, []).append(held)
        trades_by_worker.setdefault(held.worker, [])
    by_worker = {}
    for name in sorted(trades_by_worker):
        trades = sorted(trades_by_worker[name], key=lambda t: t.ts_event)
        held = open_by_worker.get(name, [])
        ledger = _ledger_curve(trades, starting_cash, start_ms, end_ms)
        # A position the data ran out on was in the market until the end, and its fees were paid.
        intervals = [(t.entry_ts, t.ts_event) for t in trades] + [(o.entry_ts, end_ms) for o in held]
        worker_fees = sum(t.fees for t in trades) + sum(o.fees for o in held)
        by_worker[name] = _metrics(ledger, period, trades, _time_in_market(intervals, start_ms, end_ms), worker_fees)
    return BacktestReport(total=total, by_worker=by_worker, start_ms=start_ms, end_ms=end_ms, period=period)


def account_curve(recorder: RunRecorder, starting_cash: float) -> _Curve:
    """The opening balance one minute before the first sample, then every equity sample."""
    if not recorder.equity_ts:
        # A run that never sampled equity has nothing but its opening balance.
        return _Curve(np.zeros(1, dtype=np.int64), np.array([starting_cash]))
    ts = np.asarray(recorder.equity_ts, dtype=np.int64)
    values = np.asarray(recorder.equity, dtype=np.float64)
    return _Curve(np.concatenate(([ts[0] - MINUTE_MS], ts)), np.concatenate(([starting_cash], values)))


def _ledger_curve(trades: Sequence[PositionClosed], starting_cash: float, start_ms: int, end_ms: int) -> _Curve:
    exits = np.array([t.ts_event for t in trades], dtype=np.int64)
    balance = starting_cash + np.cumsum([t.net_pnl for t in trades], dtype=np.float64)
    # Held flat to the end, so the ledger spans the same time as the account and CAGRs compare.
    ts = np.concatenate(([start_ms], exits, [end_ms]))
    values = np.concatenate(([starting_cash], balance, [balance[-1] if balance.size else starting_cash]))
    return _Curve(ts, values)


def _metrics(curve: _Curve, period: Period, trades: Sequence[PositionClosed], exposure: float, fees: float) -> Metrics:
    start, end = float(curve.values[0]), float(curve.values[-1])
    returns = period_returns(curve, period)
    scale = math.sqrt(PERIODS_PER_YEAR[period])
    net = np.array([t.net_pnl for t in trades], dtype=np.float64)
    wins, losses = net[net > 0].sum(), -net[net < 0].sum()
    drawdown, duration = max_drawdown(curve)
    return Metrics(
        start_equity=start,
        end_equity=end,
        net_pnl=float(net.sum()),
        total_return=end / start - 1.0,
        cagr=_cagr(start, end, int(curve.ts[-1] - curve.ts[0])),
        sharpe=_ratio(returns.mean(), returns.std(ddof=1), scale) if returns.size >= 2 else None,
        sortino=_ratio(returns.mean(), math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)), scale)
        if returns.size
        else None,
        max_drawdown=drawdown,
        max_drawdown_duration_ms=duration,
        exposure=exposure,
        trade_count=len(trades),
        win_rate=float((net > 0).mean()) if net.size else None,
        expectancy=float(net.mean()) if net.size else None,
        profit_factor=float(wins / losses) if losses > 0 else None,
        fees=float(fees),
    )


def period_returns(curve: _Curve, period: Period) -> np.ndarray:
    """Simple returns between daily closes (UTC) or on a one-minute grid, values carried forward."""
    first, last = int(curve.ts[0]), int(curve.ts[-1])
    if period == "daily":
        # A sample stamped t closes day (t - 1) // DAY_MS: a midnight stamp closes the previous day. The
        # first point is the opening balance, the open of day first // DAY_MS, so it closes no day.
        days = np.arange(first // DAY_MS, (last - 1) // DAY_MS + 1, dtype=np.int64)
        marks = np.minimum((days + 1) * DAY_MS, last)
    else:
        marks = np.arange(first + MINUTE_MS, last + MINUTE_MS, MINUTE_MS, dtype=np.int64)
        marks[-1:] = np.minimum(marks[-1:], last)
    closes = curve.values[np.searchsorted(curve.ts, marks, side="right") - 1]
    # The opening balance is the base of the first period.
    series = np.concatenate(([curve.values[0]], closes))
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = series[1:] / series[:-1] - 1.0
    return returns[np.isfinite(returns)]


def max_drawdown(curve: _Curve) -> tuple[float, int]:
    """The deepest fall from a running peak (a positive fraction) and the longest time below a peak, in ms."""
    values, ts = curve.values, curve.ts
    peaks = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdowns = np.where(peaks > 0, 1.0 - values / peaks, 0.0)
    deepest = float(drawdowns.max()) if drawdowns.size else 0.0
    below = values < peaks
    if not below.any():
        return deepest, 0
    # Spells below the peak: each starts just after a peak point and ends at the recovery (or the last sample).
    edges = np.diff(np.concatenate(([0], below.astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    recovered_at = ts[np.minimum(stops, len(ts) - 1)]
    # The first point is never below its own peak, so starts - 1 is always a peak point. The curve holds
    # that value until the minute whose close is the first point below: over a gap, or between a
    # sub-ledger's exits, it is still at the peak.
    left_peak = np.maximum(ts[starts] - MINUTE_MS, ts[starts - 1])
    return deepest, int((recovered_at - left_peak).max())


def _time_exposed(recorder: RunRecorder, start_ms: int, end_ms: int) -> float:
    span = end_ms - start_ms
    if span <= 0 or not recorder.exposed:
        return 0.0
    ts = np.asarray(recorder.equity_ts, dtype=np.int64)
    exposed = np.asarray(recorder.exposed, dtype=bool)
    # A sample's state holds until the next sample (whose events are stamped then), so time in a data
    # gap counts and the account measures exposure as each worker does, by time, not by sample count.
    # Nothing is held before the first sample: the run opens flat.
    return float(np.diff(ts)[exposed[:-1]].sum()) / span


def _time_in_market(held_from_to: Sequence[tuple[int, int]], start_ms: int, end_ms: int) -> float:
    span = end_ms - start_ms
    if span <= 0 or not held_from_to:
        return 0.0
    intervals = sorted((max(begin, start_ms), min(finish, end_ms)) for begin, finish in held_from_to)
    held, reach = 0, start_ms
    for begin, finish in intervals:
        # Union of intervals: a worker holds one position at a time, but overlaps must not count twice.
        begin = max(begin, reach)
        if finish > begin:
            held += finish - begin
            reach = finish
    return held / span


def _cagr(start: float, end: float, span_ms: int) -> float | None:
    if span_ms < DAY_MS or start <= 0:
        # Under a day, annualising compounds noise into rates of 10^76 x or -100 %: not a growth rate.
        return None
    if end <= 0:
        return -1.0
    try:
        return (end / start) ** (YEAR_MS / span_ms) - 1.0
    except OverflowError:
        # A big gain over a few minutes compounds past float range; it is not a meaningful rate.
        return None


def _ratio(mean: float, deviation: float, scale: float) -> float | None:
    if not math.isfinite(deviation) or deviation <= 1e-15:
        return None
    return float(mean / deviation * scale)


# --- output ----------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (header, Metrics field, format)
    ("net PnL", "net_pnl", "money"),
    ("return", "total_return", "signed_pct"),
    ("CAGR", "cagr", "signed_pct"),
    ("Sharpe", "sharpe", "num"),
    ("Sortino", "sortino", "num"),
    ("max DD", "max_drawdown", "pct"),
    ("DD time", "max_drawdown_duration_ms", "dur"),
    ("trades", "trade_count", "int"),
    ("win", "win_rate", "pct"),
    ("expect.", "expectancy", "money"),
    ("PF", "profit_factor", "num"),
    ("exposure", "exposure", "pct"),
    ("fees", "fees", "money"),
)


def format_value(value: float | int | None, kind: str) -> str:
    """Render one metric for people: percentages, money with thousands separators, durations."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "signed_pct":
        # Past +9,999 % a multiple reads better than a percentage.
        return f"{value * 100:+.1f}%" if abs(value) < 100 else f"{value + 1:.3g}x"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return str(int(value))
    if kind == "dur":
        return format_duration(int(value))
    return f"{value:.2f}"


def format_duration(ms: int) -> str:
    if ms < 60 * MINUTE_MS:
        return f"{ms / MINUTE_MS:.0f}m"
    if ms < DAY_MS:
        return f"{ms / (60 * MINUTE_MS):.1f}h"
    return f"{ms / DAY_MS:.1f}d"


def summary_rows(report: BacktestReport) -> list[list[str]]:
    """Header plus one row per line (account first, then workers), as display strings."""
    rows = [["", *(header for header, _, _ in _COLUMNS)]]
    for name, metrics in [("TOTAL", report.total), *report.by_worker.items()]:
        rows.append([name, *(format_value(getattr(metrics, f), kind) for _, f, kind in _COLUMNS)])
    return rows


def format_summary(report: BacktestReport) -> str:
    """A compact aligned text table for the terminal: the account, then each worker."""
    rows = summary_rows(report)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"{_iso(report.start_ms)} → {_iso(report.end_ms)}  ({format_duration(report.end_ms - report.start_ms)}, "
        f"{report.period} returns)   equity {report.total.start_equity:,.2f} → {report.total.end_equity:,.2f}"
    ]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0 or (index == 1 and len(rows) > 2):
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_to_dict(report: BacktestReport) -> dict[str, Any]:
    """Plain JSON-ready data; non-finite numbers become None."""
    return _finite(dataclasses.asdict(report))


def write_json(report: BacktestReport, path: Path) -> None:
    """Write the report as JSON (NaN and infinity as null)."""
    path.write_text(json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> BacktestReport:
    """Read a report written by `write_json`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return BacktestReport(
        total=Metrics(**data["total"]),
        by_worker={name: Metrics(**m) for name, m in data["by_worker"].items()},
        start_ms=data["start_ms"],
        end_ms=data["end_ms"],
        period=data["period"],
    )


def _finite(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _finite(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_finite(value) for value in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def downsample(ts: np.ndarray, values: np.ndarray, limit: int = MAX_CHART_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` points, keeping each bucket's low and high so spikes and troughs stay visible."""
    n = values.size
    if n <= limit:
        return ts, values
    buckets = (limit - 2) // 2  # two points per bucket, plus the first and last so the chart spans the run
    size = math.ceil(n / buckets)
    padded = np.concatenate((values, np.full(buckets * size - n, values[-1])))
    grid = padded.reshape(buckets, size)
    base = np.arange(buckets) * size
    extremes = np.concatenate(([0, n - 1], base + grid.argmin(1), base + grid.argmax(1)))
    keep = np.unique(np.minimum(extremes, n - 1))
    return ts[keep], values[keep]


def write_html(report: BacktestReport, recorder: RunRecorder, path: Path) -> None:
    """Write a self-contained HTML report (plotly.js inline, so it opens offline): charts and metric tables."""
    import plotly.graph_objects as go  # only the report needs plotly; keep it off the import path of runs
    from plotly.subplots import make_subplots

    curve = account_curve(recorder, report.total.start_equity)
    ts, equity = downsample(curve.ts, curve.values)
    peaks = np.maximum.accumulate(curve.values)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peaks > 0, curve.values / peaks - 1.0, 0.0)
    dd_ts, dd = downsample(curve.ts, drawdown)
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.45, 0.2, 0.35],
        vertical_spacing=0.05,
        subplot_titles=("Equity", "Drawdown", "Cumulative net PnL by worker (at exits)"),
    )
    figure.add_trace(go.Scatter(x=_datetimes(ts), y=equity, name="equity", line={"width": 1.2}), row=1, col=1)
    figure.add_trace(
        go.Scatter(x=_datetimes(dd_ts), y=dd * 100, name="drawdown %", fill="tozeroy", line={"width": 1}),
        row=2,
        col=1,
    )
    by_worker: dict[str, list[PositionClosed]] = {}
    for trade in sorted(recorder.trades, key=lambda t: t.ts_event):
        by_worker.setdefault(trade.worker, []).append(trade)
    for name, trades in sorted(by_worker.items()):
        exits = np.array([report.start_ms] + [t.ts_event for t in trades] + [report.end_ms], dtype=np.int64)
        cumulative = np.cumsum([t.net_pnl for t in trades], dtype=np.float64)
        pnl = np.concatenate(([0.0], cumulative, cumulative[-1:]))
        exits, pnl = downsample(exits, pnl)
        figure.add_trace(go.Scatter(x=_datetimes(exits), y=pnl, name=name, line={"shape": "hv"}), row=3, col=1)
    figure.update_yaxes(title_text="equity", row=1, col=1)
    figure.update_yaxes(title_text="%", row=2, col=1)
    figure.update_yaxes(title_text="net PnL", row=3, col=1)
    figure.update_layout(height=900, margin={"l": 60, "r": 20, "t": 40, "b": 40}, hovermode="x unified")
    chart = figure.to_html(full_html=False, include_plotlyjs=True, include_mathjax=False)
    rows = summary_rows(report)
    table = "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>".format(
        "".join(f"<th>{html.escape(cell)}</th>" for cell in rows[0]),
        "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows[1:]),
    )
    title = f"Backtest {_iso(report.start_ms)} → {_iso(report.end_ms)}"
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 1em 0; }}
th, td {{ padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tbody tr:first-child {{ font-weight: 600; }}
p.note {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Equity {report.total.start_equity:,.2f} → {report.total.end_equity:,.2f};
{html.escape(report.period)} returns, annualised over 365 days, risk-free rate 0.</p>
{table}
<p class="note">Worker lines use each worker's sub-ledger: starting cash plus the net PnL of its closed trades,
booked at exit. "—" marks an undefined figure (no trades, no losses, a flat curve, or CAGR for a run under a day).</p>
{chart}
</body></html>
"""
    path.write_text(document, encoding="utf-8")


def _datetimes(ts: np.ndarray) -> np.ndarray:
    return ts.astype("datetime64[ms]")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
