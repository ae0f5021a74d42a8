"""Overview: is the daemon alive, what state is trading in, and how has the account done.

Reads only through `dashboard.common` (cached `StoreReader` queries). Equity and
drawdown are one plotly figure with a shared time axis, so the two line up; it
sits in the container keyed `overview_equity` (CSS class `st-key-overview_equity`)
after an `equity-chart` anchor, so a browser test can find it.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import common
from desk.services.store.queries import Heartbeat, RiskStatus

# Range choices, as a span back from the latest equity sample (None: everything).
RANGES: dict[str, int | None] = {"All": None, "30 days": 30, "7 days": 7, "24 hours": 1}
MARK_STYLE = {
    "start": ("#2e7d32", "dot", "start"),
    "stop": ("#757575", "dot", "stop"),
    "halt": ("#c62828", "solid", "HALT"),
    "resume": ("#1565c0", "dash", "resume"),
}
# Beyond this many restarts and halts, vertical lines clutter the chart: markers only.
MAX_MARK_LINES = 40
# Headline figures per row: at a 1400 px window with the sidebar open, more cut "$10,000.00" short.
METRICS_PER_ROW = 3
# The equity axis never spans less than this many dollars, or this fraction of the equity: a flat
# line would otherwise be drawn across cents (ticks like "10.0005k").
MIN_EQUITY_SPAN_USD = 20.0
MIN_EQUITY_SPAN_FRACTION = 0.002
# The drawdown axis reaches at least this deep (percent), so a flat 0 is drawn as the top of a scale.
MIN_DRAWDOWN_SPAN_PCT = 1.0


def show_heartbeat(beat: Heartbeat | None, now_ms: int) -> None:
    """Say whether the daemon is running: loudly (an error) when its heartbeat is stale."""
    if beat is None:
        st.warning("**Daemon not running**: no heartbeat has been recorded in this store.")
        return
    age_s = beat.age_s(now_ms)
    when = f"last beat {common.duration(age_s)} ago ({common.utc_time(beat.wall_ms, seconds=True)})"
    if beat.stopped:
        st.warning(f"**Daemon not running**: it stopped cleanly ({beat.detail.removeprefix('stopped: ')}); {when}.")
    elif age_s > common.HEARTBEAT_STALE_S:
        st.error(
            f"**Daemon heartbeat is stale**: {when}, pid {beat.pid}. It may have crashed or hung; "
            "check the process and its log."
        )
    else:
        st.success(f"**Daemon running** (pid {beat.pid}): {beat.detail}; {when}; journal at seq {beat.last_seq}.")


def show_risk_state(risk: RiskStatus) -> None:
    """Show the trading state and why; HALTED in red."""
    since = f" since {common.utc_time(risk.since_ms)}" if risk.since_ms is not None else ""
    why = f" by **{risk.rule}**: {risk.reason}" if risk.rule else ""
    if risk.state == "HALTED":
        st.error(f"Trading **HALTED**{since}{why}. No new entries until an operator resumes.")
    elif risk.state == "REDUCING":
        st.warning(f"Trading **REDUCING**{since}{why}. No new entries; open positions are managed.")
    else:
        st.success(f"Trading **{risk.state}**{since}{why}.")


def show_metrics() -> None:
    """The headline figures of the latest equity sample."""
    summary = common.summary()
    if summary is None:
        st.info("No equity samples yet: the daemon has not traded in this store.")
        return
    top, bottom = st.columns(METRICS_PER_ROW), st.columns(METRICS_PER_ROW)
    top[0].metric("Equity", common.money(summary.equity), help=f"as of {common.utc_time(summary.as_of_ms)}")
    top[1].metric(
        "Today's PnL",
        common.signed_money(summary.today_pnl),
        delta=common.pct(summary.today_pnl_pct),
        help=f"since the last sample before {common.utc_time(summary.today_start_ms)} (the desk's clock)",
    )
    top[2].metric(
        "Drawdown",
        common.pct(summary.drawdown_pct),
        help=f"below the high-water mark of {common.money(summary.high_water_mark)}",
    )
    bottom[0].metric(
        "Open exposure", common.money(summary.positions_value), help=f"{summary.open_positions} open positions"
    )
    bottom[1].metric("High-water mark", common.money(summary.high_water_mark), help="the highest equity sampled")
    bottom[2].metric(
        "Closed trades", f"{summary.trade_count:,}", help=f"net {common.signed_money(summary.realized_net_pnl)}"
    )


def equity_range(curve: pd.DataFrame) -> list[float]:
    """The equity axis: the band's min to max with a margin, widened around its middle to a minimum span."""
    low, high = float(curve["equity_min"].min()), float(curve["equity_max"].max())
    middle = (low + high) / 2
    span = max(high - low, MIN_EQUITY_SPAN_USD, abs(middle) * MIN_EQUITY_SPAN_FRACTION)
    pad = span * 0.08
    low, high = min(low, middle - span / 2), max(high, middle + span / 2)
    return [low - pad, high + pad]


def drawdown_range(curve: pd.DataFrame) -> list[float]:
    """The drawdown axis in percent below zero: down to the worst drawdown (at least MIN_DRAWDOWN_SPAN_PCT)."""
    worst = float(curve["drawdown_max"].max() or 0.0) * 100
    depth = max(worst, MIN_DRAWDOWN_SPAN_PCT) * 1.08
    return [-depth, depth * 0.04]


def equity_figure(curve: pd.DataFrame, marks: pd.DataFrame) -> go.Figure:
    """Equity (last per bucket) in its min/max band above the drawdown, sharing one time axis.

    Restarts and halts are markers above the equity line and, when there are
    few, vertical lines through both panels. The legend sits above the plot, so
    it takes no width from either panel.
    """
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.68, 0.32])
    figure.add_trace(
        go.Scatter(x=curve["time"], y=curve["equity_max"], line={"width": 0}, hoverinfo="skip", showlegend=False),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=curve["time"],
            y=curve["equity_min"],
            fill="tonexty",
            fillcolor="rgba(31,119,180,0.15)",
            line={"width": 0},
            name="min-max",
            hoverinfo="skip",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=curve["time"],
            y=curve["equity"],
            name="equity",
            line={"color": "#1f77b4"},
            hovertemplate="%{y:$,.2f}<extra>equity</extra>",
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=curve["time"],
            y=-curve["drawdown_max"] * 100,
            fill="tozeroy",
            line={"color": "#c62828"},
            name="drawdown",
            hovertemplate="%{y:.2f}%<extra>drawdown</extra>",
        ),
        row=2,
        col=1,
    )
    if not marks.empty:
        y_range = equity_range(curve)
        top = y_range[1] - (y_range[1] - y_range[0]) * 0.04  # inside the axis, above the band
        for kind, group in marks.groupby("kind"):
            color, dash, label = MARK_STYLE.get(str(kind), ("#000000", "dot", str(kind)))
            figure.add_trace(
                go.Scatter(
                    x=group["time"],
                    y=[top] * len(group),
                    mode="markers",
                    marker={"color": color, "symbol": "triangle-down", "size": 10},
                    name=label,
                    text=group["detail"],
                    hovertemplate="%{text}<extra></extra>",
                ),
                row=1,
                col=1,
            )
            if len(marks) <= MAX_MARK_LINES:
                for when in group["time"]:
                    figure.add_vline(x=when, line={"color": color, "dash": dash, "width": 1}, row="all", col=1)
    figure.update_layout(
        height=560,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "left", "x": 0, "traceorder": "normal"},
    )
    figure.update_yaxes(title_text="equity", tickformat="$,.0f", range=equity_range(curve), row=1, col=1)
    figure.update_yaxes(
        title_text="drawdown", ticksuffix="%", tickformat=".1f", range=drawdown_range(curve), row=2, col=1
    )
    return figure


def show_charts() -> None:
    """The equity curve with its uptime marks, and the drawdown below it."""
    bounds = common.equity_bounds()
    if bounds is None:
        return
    choice = st.radio("Range", list(RANGES), horizontal=True, key="overview_range")
    days = RANGES[choice]
    start_ms = None if days is None else bounds[1] - days * common.DAY_MS
    curve = common.equity_curve(start_ms=start_ms)
    marks = common.lifecycle_marks(start_ms=start_ms)
    with st.container(key="overview_equity"):
        st.markdown('<div id="equity-chart"></div>', unsafe_allow_html=True)
        st.subheader("Equity and drawdown")
        st.plotly_chart(equity_figure(curve, marks), key="equity_chart", width="stretch", config=common.CHART_CONFIG)
    st.caption(
        f"{len(curve):,} points (bucketed in SQL). Markers: starts and restarts (green), stops (grey), "
        "halts (red), resumes (blue)."
    )


def show_feed() -> None:
    """The last candle of every symbol."""
    st.subheader("Feed")
    feed = common.feed_status()
    if feed.empty:
        st.info("No candles yet.")
        return
    table = pd.DataFrame(
        {
            "symbol": feed["symbol"],
            "last candle": feed["time"],
            "close": feed["close"],
            "behind newest": [common.duration(ms / 1000) if ms else "newest" for ms in feed["behind_ms"]],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch", key="feed_table", placeholder=common.MISSING)


common.page_header("Overview")
show_heartbeat(common.heartbeat(), common.wall_ms())
show_risk_state(common.risk_state())
show_metrics()
show_charts()
show_feed()
