"""Workers: what each strategy worker has earned, its sub-ledger curve, its faults and its learner scores.

Attribution comes from the closed trades (net of every fee), so the workers'
net PnL adds up to the account's realised PnL; faults and states come from
the daemon's worker tables, scores and vetoes from the learner's records.
Every worker of the store's config is listed, with zeros until it trades.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import common

MONEY = st.column_config.NumberColumn(format="dollar")
ATTRIBUTION_VIEW = ["worker", "state", "trades", "win_rate", "net_pnl", "realized_pnl", "fees", "expectancy"]
ATTRIBUTION_VIEW += ["expectancy_r", "avg_win", "avg_loss", "max_drawdown", "faults", "open_positions", "state_reason"]


def show_attribution(attribution: pd.DataFrame) -> None:
    """The per-worker table and a bar of each worker's net PnL."""
    st.subheader("Attribution")
    if attribution.empty:
        st.info("No worker has traded, faulted or changed state yet.")
        return
    common.data_table(
        attribution[ATTRIBUTION_VIEW],
        key="attribution_table",
        column_config={
            # Short headers: all fifteen columns fit a 1400 px window.
            "win_rate": st.column_config.NumberColumn("win rate", format="percent"),
            "net_pnl": st.column_config.NumberColumn("net PnL", format="dollar"),
            "realized_pnl": st.column_config.NumberColumn("gross PnL", format="dollar"),
            "fees": MONEY,
            "expectancy": st.column_config.NumberColumn(
                "per trade", format="dollar", help="expectancy: net PnL / trade"
            ),
            "expectancy_r": st.column_config.NumberColumn("avg R", format="%.2f", help="expectancy in R multiples"),
            "avg_win": st.column_config.NumberColumn("avg win", format="dollar"),
            "avg_loss": st.column_config.NumberColumn("avg loss", format="dollar"),
            "max_drawdown": st.column_config.NumberColumn("max DD", format="dollar", help="max drawdown"),
            "open_positions": st.column_config.NumberColumn("open", help="open positions"),
            "state_reason": st.column_config.TextColumn("why", help="why the worker is in its state"),
        },
    )
    st.caption(
        "Win rate: trades netting more than zero after fees. Expectancy: net PnL per trade. "
        "Max drawdown (DD): the deepest fall of the worker's cumulative net PnL from its running peak. "
        f"A {common.MISSING} means no closed trade to compute it from."
    )
    colors = ["#2e7d32" if value >= 0 else "#c62828" for value in attribution["net_pnl"]]
    figure = go.Figure(go.Bar(x=attribution["worker"], y=attribution["net_pnl"], marker_color=colors))
    figure.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="net PnL")
    figure.update_yaxes(tickformat="$,.0f")  # "-$50", not "$-50"
    st.plotly_chart(figure, key="attribution_chart", width="stretch", config=common.CHART_CONFIG)


def show_worker_curve(worker: str) -> None:
    """One worker's sub-ledger: cumulative net PnL by exit time."""
    curve = common.worker_equity(worker)
    if curve.empty:
        st.info(f"{worker} has no closed trades yet.")
        return
    figure = go.Figure(
        go.Scatter(
            x=curve["time"],
            y=curve["cum_net_pnl"],
            mode="lines+markers" if len(curve) < 60 else "lines",
            name=worker,
            customdata=curve["trades"],
            hovertemplate="%{x}<br>%{y:$,.2f} after %{customdata} trades<extra></extra>",
        )
    )
    figure.add_hline(y=0, line={"color": "#9e9e9e", "width": 1})
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="cumulative net PnL")
    figure.update_yaxes(tickformat="$,.0f")  # "-$50", not "$-50"
    st.plotly_chart(figure, key="worker_curve_chart", width="stretch", config=common.CHART_CONFIG)


def show_faults(worker: str) -> None:
    """The worker's newest faults."""
    faults = common.worker_faults(worker=worker)
    st.markdown("**Faults**")
    if faults.empty:
        st.caption("No faults recorded.")
        return
    common.data_table(faults[["time", "worker", "symbol", "error_type", "message", "consecutive"]], key="faults_table")


def show_learner_summary(workers: tuple[str, ...]) -> None:
    """What the learner made of every worker's intents: counts, vetoes, outcomes and mean scores."""
    st.subheader("Learner")
    summary = common.learner_summary(workers=workers)
    if summary.empty:
        st.info("No intents recorded yet.")
        return
    score = "%.4f"
    common.data_table(
        summary,
        key="learner_summary_table",
        column_config={
            "mean_score": st.column_config.NumberColumn("mean score", format=score),
            "mean_score_won": st.column_config.NumberColumn("mean score, won", format=score),
            "mean_score_lost": st.column_config.NumberColumn("mean score, lost", format=score),
        },
    )
    st.caption("The learner records scores and outcomes; it vetoes only below `ml.veto_below` (0 keeps every intent).")


def show_learner(worker: str) -> None:
    """The worker's newest intents with their score, veto, risk outcome and trade result."""
    st.markdown("**Learner scores and vetoes**")
    scores = common.learner_scores(worker=worker, limit=200)
    if scores.empty:
        st.caption("No intents recorded yet.")
        return
    common.data_table(
        scores[["time", "worker", "symbol", "side", "confidence", "score", "vetoed", "status", "deny_rule"]]
        .assign(net_pnl=scores["net_pnl"], won=scores["won"])
        .rename(columns={"deny_rule": "denied by"}),
        key="learner_scores_table",
        column_config={"net_pnl": st.column_config.NumberColumn("trade net PnL", format="dollar")},
    )


common.page_header("Workers")
configured = common.configured_workers()
attribution = common.worker_attribution(workers=configured)
show_attribution(attribution)
show_learner_summary(configured)
st.subheader("Worker detail")
# Attribution order first (best net PnL), then any worker only the other tables mention.
names = list(dict.fromkeys([*attribution["worker"], *common.known_workers()]))
if names:
    selected = st.selectbox("Worker", names, key="workers_choice")
    show_worker_curve(selected)
    show_faults(selected)
    show_learner(selected)
else:
    st.info("No workers in this store yet.")
