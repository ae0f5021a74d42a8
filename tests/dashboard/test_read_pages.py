"""The read pages (Overview, Trades, Workers, Logs, Report) under AppTest on empty, real and live stores.

Each page is pointed at its store through DESK_STORE_DIR. Three kinds of store:
none at all (the database does not exist yet), one the real daemon wrote
(TradingRuntime in-process), and the tiny hand-built one with a halt, a stale
heartbeat, faults and an open position. The last test renders every page
repeatedly while a daemon subprocess is writing to the store.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from streamlit import config as streamlit_config

from desk.services.store.queries import StoreReader
from tests.conftest import PROJECT_ROOT, config_data_for_tests, deep_update
from tests.dashboard.read_store import (
    APP,
    PAGE_TIMEOUT_S,
    build_flat_store,
    build_tiny_store,
    column_config,
    dataframe,
    dataframe_element,
    dataframe_rows,
    open_page,
    plotly_spec,
    run_daemon_in_process,
    texts,
    write_daemon_config,
)

READ_PAGES = ("overview.py", "trades.py", "workers.py", "logs.py", "report.py")
DAEMON_CANDLES = 1500
EMPTY_CELL = "\u2013"  # what tables show for a missing value, instead of the text "None"
# Every page by the URL path it answers to ("/overview" as well as "/" for the default page).
PAGE_URLS = {
    "overview": "Overview",
    "trades": "Trades",
    "workers": "Workers",
    "config": "Config",
    "logs": "Logs",
    "controls": "Controls",
    "report": "Report",
}


@pytest.fixture(autouse=True)
def full_error_details() -> Iterator[None]:
    """Show exception messages in AppTest results (the shipped .streamlit config redacts them for browsers)."""
    previous = streamlit_config.get_option("client.showErrorDetails")
    streamlit_config.set_option("client.showErrorDetails", "full")
    yield
    streamlit_config.set_option("client.showErrorDetails", previous)


@pytest.fixture(scope="module")
def daemon_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_daemon_in_process(tmp_path_factory.mktemp("daemon_store"), DAEMON_CANDLES)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_store(tmp_path_factory.mktemp("tiny_store"))


@pytest.fixture
def point_at(monkeypatch: pytest.MonkeyPatch):
    """Return a function that points the control room at a store folder (and nowhere else)."""

    def point(store_dir: Path) -> Path:
        monkeypatch.setenv("DESK_STORE_DIR", str(store_dir))
        monkeypatch.delenv("DESK_CONFIG", raising=False)
        return store_dir

    return point


# --- no store yet ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page_file", READ_PAGES)
def test_page_when_store_does_not_exist_then_renders_and_creates_nothing(page_file, point_at, tmp_path) -> None:
    store_dir = point_at(tmp_path / "no-store-yet")
    page = open_page(page_file)
    assert page.title[0].value
    assert not store_dir.exists()


def test_overview_when_store_does_not_exist_then_daemon_not_running(point_at, tmp_path) -> None:
    point_at(tmp_path / "none")
    page = open_page("overview.py")
    assert any("Daemon not running" in text for text in texts(page, "warning"))
    assert any("No equity samples yet" in text for text in texts(page, "info"))
    assert not page.get("plotly_chart") and not page.error


def test_trades_logs_report_when_store_does_not_exist_then_say_there_is_nothing(point_at, tmp_path) -> None:
    point_at(tmp_path / "none")
    assert "No closed trades yet." in texts(open_page("trades.py"), "info")
    assert "The journal is empty." in texts(open_page("logs.py"), "info")
    assert any("Nothing to report yet" in text for text in texts(open_page("report.py"), "info"))
    assert any("No worker has traded" in text for text in texts(open_page("workers.py"), "info"))


# --- a store the daemon wrote ---------------------------------------------------------------------


def test_overview_when_daemon_ran_then_metrics_equity_chart_and_feed(point_at, daemon_store) -> None:
    point_at(daemon_store)
    page = open_page("overview.py")
    metrics = {metric.label: metric.value for metric in page.metric}
    assert list(metrics) == ["Equity", "Today's PnL", "Drawdown", "Open exposure", "High-water mark", "Closed trades"]
    assert metrics["Equity"].startswith("$") and metrics["Drawdown"].endswith("%")
    assert metrics["High-water mark"].startswith("$")
    # Two rows of three: five or more to a row cut "$10,000.00" short at a 1400 px window.
    rows = [block for block in page.main.children.values() if any(c.type == "metric" for c in _leaves(block))]
    assert [len(row.children) for row in rows] == [3, 3]
    assert any("Daemon not running" in text and "stopped cleanly" in text for text in texts(page, "warning"))
    assert any("Trading **ACTIVE**" in text for text in texts(page, "success"))
    # Equity and drawdown are one figure on one time axis, in the keyed container the browser test looks for.
    assert [chart.key for chart in page.get("plotly_chart")] == ["equity_chart"]
    assert any(block.key == "overview_equity" for block in page.container)
    assert '<div id="equity-chart"></div>' in texts(page, "markdown")
    figure, config = plotly_spec(page, "equity_chart")
    axes = {trace.get("name"): (trace["xaxis"], trace["yaxis"]) for trace in figure["data"]}
    assert axes["equity"] == ("x", "y") and axes["drawdown"] == ("x2", "y2")
    assert figure["layout"]["xaxis"]["matches"] == "x2"  # zooming one panel zooms both
    assert figure["layout"]["legend"]["orientation"] == "h"  # above the plot: both panels get the full width
    yaxis = figure["layout"]["yaxis"]
    assert yaxis["tickformat"] == "$,.0f"  # "$9,500"; a dollar sign after the minus: "-$50"
    assert figure["layout"]["yaxis2"]["ticksuffix"] == "%"
    assert config["displayModeBar"] is False  # no mode bar over the data
    assert dataframe_rows(page, "feed_table") == 3
    assert not page.error


def _leaves(node):
    """Every element under a block of an AppTest tree."""
    children = getattr(node, "children", None)
    if not isinstance(children, dict) or not children:
        return [node]
    return [leaf for child in children.values() for leaf in _leaves(child)]


def test_overview_when_equity_is_flat_then_dollar_ticks_over_a_minimum_range(point_at, tmp_path) -> None:
    point_at(build_flat_store(tmp_path / "flat"))
    page = open_page("overview.py")
    figure, _ = plotly_spec(page, "equity_chart")
    yaxis = figure["layout"]["yaxis"]
    # Whole dollars, and a range of at least $20 around the line: never ticks like "10.0005k".
    assert yaxis["tickformat"] == "$,.0f"  # "$9,500"; a dollar sign after the minus: "-$50"
    low, high = yaxis["range"]
    assert high - low >= 20 and low < 10_000.0 and high > 10_001.0
    # No drawdown to speak of: the axis still reaches a whole percent below zero.
    assert figure["layout"]["yaxis2"]["range"][0] <= -1.0
    assert not page.error and not page.exception


def test_trades_when_daemon_ran_then_ledger_totals_page_and_csv_download(point_at, daemon_store) -> None:
    point_at(daemon_store)
    page = open_page("trades.py")
    trades = StoreReader(f"sqlite:///{daemon_store / 'desk.db'}", daemon_store / "journal").ledger_totals().trades
    assert trades > 0
    assert {metric.label: metric.value for metric in page.metric}["Trades"] == f"{trades:,}"
    assert dataframe_rows(page, "ledger_table") == min(trades, 100)
    ledger = column_config(page, "ledger_table")
    assert ledger["exit_time"]["type_config"] == {"type": "datetime", "format": "YYYY-MM-DD HH:mm"}
    assert ledger["net_pnl"]["type_config"]["format"] == "dollar"
    # The outcome is in view, and the exit time and worker stay put while the mechanics scroll in.
    assert list(dataframe(page, "ledger_table").columns[:6]) == [
        "exit_time",
        "worker",
        "symbol",
        "net_pnl",
        "r_multiple",
        "exit_reason",
    ]
    assert ledger["exit_time"]["pinned"] is True and ledger["worker"]["pinned"] is True
    assert [button.label for button in page.download_button] == [
        f"Download the filtered ledger as CSV ({trades:,} trades)"
    ]


def test_workers_when_daemon_ran_then_attribution_and_selected_worker_curve(point_at, daemon_store) -> None:
    point_at(daemon_store)
    page = open_page("workers.py")
    assert dataframe_rows(page, "attribution_table") >= 1
    assert dataframe_rows(page, "learner_summary_table") >= 1
    assert {chart.key for chart in page.get("plotly_chart")} == {"attribution_chart", "worker_curve_chart"}


def test_logs_when_daemon_ran_then_newest_records_and_filters_apply(point_at, daemon_store) -> None:
    point_at(daemon_store)
    page = open_page("logs.py")
    assert dataframe_rows(page, "journal_table") == 200
    page.multiselect(key="logs_types").select("PositionClosed")
    page.number_input(key="logs_lines").set_value(10)
    page.run()
    assert not page.exception
    assert 1 <= dataframe_rows(page, "journal_table") <= 10
    assert set(dataframe(page, "journal_table")["type"]) == {"PositionClosed"}


def test_report_when_built_then_pdf_offered_for_download(point_at, daemon_store) -> None:
    point_at(daemon_store)
    page = open_page("report.py", lambda at: at.button(key="report_build").click())
    assert [metric.label for metric in page.metric] == ["Equity at end", "Change", "Worst drawdown", "Closed trades"]
    assert page.download_button[0].label.startswith("Download the report")
    assert page.session_state["report_pdf"][3].startswith(b"%PDF")


# --- the tiny store: halted, stale, faulted ----------------------------------------------------------


def test_overview_when_halted_and_heartbeat_stale_then_both_shown_as_errors(point_at, tiny_store) -> None:
    point_at(tiny_store)
    page = open_page("overview.py")
    errors = texts(page, "error")
    assert any("heartbeat is stale" in text and "pid 4242" in text for text in errors)
    assert any("HALTED" in text and "max_drawdown" in text for text in errors)
    metrics = {metric.label: metric for metric in page.metric}
    assert (metrics["Equity"].value, metrics["Today's PnL"].value) == ("$10,230.00", "-$240.00")
    assert metrics["Open exposure"].value == "$1,050.00"


def test_trades_when_filtered_by_worker_then_only_its_trades_and_open_position_shown(point_at, tiny_store) -> None:
    point_at(tiny_store)
    page = open_page("trades.py", lambda at: at.multiselect(key="trades_workers").select("alpha"))
    assert dataframe_rows(page, "open_positions_table") == 1
    # Short headers and minute times, so the thirteen columns fit a 1400 px window; blanks, not "None".
    positions = column_config(page, "open_positions_table")
    assert positions["entry_time"]["type_config"] == {"type": "datetime", "format": "YYYY-MM-DD HH:mm"}
    assert [positions[c]["label"] for c in ("stop_price", "take_profit", "unrealized_r")] == ["stop", "target", "R"]
    assert dataframe_element(page, "open_positions_table").proto.placeholder == EMPTY_CELL
    assert dataframe_rows(page, "ledger_table") == 4
    assert {metric.label: metric.value for metric in page.metric}["Net PnL"] == "+$10.00"


def test_workers_when_config_lists_idle_worker_then_it_is_in_every_table_with_zeros(point_at, tiny_store, tmp_path):
    store_dir = point_at(tmp_path / "with-config")
    shutil.copytree(tiny_store, store_dir)
    workers = [{"name": name, "symbol": "ETH/USD", "strategy": "rsi"} for name in ("alpha", "beta", "eth-rsi")]
    (store_dir / "config.yaml").write_text(yaml.safe_dump({"workers": workers}))
    page = open_page("workers.py")

    attribution = dataframe(page, "attribution_table").set_index("worker")
    # eth-rsi is configured and did nothing; gamma is not configured but faulted: both are listed.
    assert set(attribution.index) == {"alpha", "beta", "gamma", "eth-rsi"}
    idle = attribution.loc["eth-rsi"]
    assert (idle.trades, idle.net_pnl, idle.fees, idle.faults, idle.open_positions) == (0, 0.0, 0.0, 0, 0)
    assert pd.isna(idle.win_rate) and pd.isna(idle.expectancy)  # drawn as EMPTY_CELL, never "None"
    learner = dataframe(page, "learner_summary_table").set_index("worker")
    assert list(learner.index) == ["alpha", "beta", "eth-rsi"]
    assert (learner.loc["eth-rsi", "intents"], learner.loc["eth-rsi", "vetoed"]) == (0, 0)
    for table in ("attribution_table", "learner_summary_table"):
        assert dataframe_element(page, table).proto.placeholder == EMPTY_CELL
    assert "eth-rsi" in page.selectbox(key="workers_choice").options
    assert not page.error and not page.exception


def test_workers_when_faulting_worker_selected_then_its_faults_and_state(point_at, tiny_store) -> None:
    point_at(tiny_store)
    page = open_page("workers.py", lambda at: at.selectbox(key="workers_choice").select("gamma"))
    assert dataframe_rows(page, "faults_table") == 2
    assert "gamma has no closed trades yet." in texts(page, "info")
    # Nothing configured here (no config.yaml): the workers come from the store, None cells drawn blank.
    assert set(dataframe(page, "attribution_table")["worker"]) == {"alpha", "beta", "gamma"}
    assert all(frame.proto.placeholder == EMPTY_CELL for frame in page.dataframe)
    assert all(plotly_spec(page, chart.key)[1]["displayModeBar"] is False for chart in page.get("plotly_chart"))


def test_logs_when_error_level_and_auto_refresh_then_errors_in_a_fragment(point_at, tiny_store) -> None:
    point_at(tiny_store)

    def interact(at) -> None:
        at.multiselect(key="logs_levels").select("error")
        at.toggle(key="logs_auto_refresh").set_value(True)

    page = open_page("logs.py", interact)
    table = dataframe(page, "journal_table")
    assert table["type"].tolist() == ["WorkerFaulted", "WorkerFaulted", "OrderRejected"]  # newest first
    assert set(table["level"]) == {"🔴 error"}


# --- the app and a live daemon -------------------------------------------------------------------------


def test_app_when_run_then_navigation_in_order_and_overview_first(point_at, tiny_store) -> None:
    from streamlit.testing.v1 import AppTest

    point_at(tiny_store)
    app = AppTest.from_file(str(APP), default_timeout=PAGE_TIMEOUT_S).run()
    assert not app.exception and app.title[0].value == "Overview"
    # AppTest keeps the registered navigation privately; it is the only view of the order.
    titles = list(dict.fromkeys(page["page_name"] for page in app._registered_pages.values()))
    expected = ["Overview", "Trades", "Workers", "Config", "Logs", "Controls", "Report"]
    assert titles == expected
    app.switch_page("pages/report.py").run()
    assert not app.exception and app.title[0].value == "Report"


def test_app_when_each_page_opened_by_its_url_then_that_page_renders(point_at, tiny_store) -> None:
    """`/overview` as well as `/`: a URL Streamlit does not know shows a "Page not found" dialog instead."""
    from streamlit.testing.v1 import AppTest

    point_at(tiny_store)
    app = AppTest.from_file(str(APP), default_timeout=PAGE_TIMEOUT_S).run()
    by_url = {page["url_pathname"]: page_hash for page_hash, page in app._registered_pages.items()}
    assert set(by_url) == {"", *PAGE_URLS}  # "" is the default page, served at "/"
    for url_path, title in PAGE_URLS.items():
        app._page_hash = by_url[url_path]  # what the browser asks for when it loads /<url_path>
        app.run()
        assert not app.exception, (url_path, [e.value for e in app.exception])
        assert app.title[0].value == title, url_path


def test_app_when_some_page_files_are_missing_then_navigation_has_only_the_others(point_at, tmp_path) -> None:
    from streamlit.testing.v1 import AppTest

    point_at(tmp_path / "store")
    pages = tmp_path / "dashboard" / "pages"
    pages.mkdir(parents=True)
    shutil.copy(APP, tmp_path / "dashboard" / "app.py")
    for name, title in (("trades.py", "Trades"), ("report.py", "Report")):
        (pages / name).write_text(f"import streamlit as st\n\nst.title({title!r})\n")
    app = AppTest.from_file(str(tmp_path / "dashboard" / "app.py"), default_timeout=PAGE_TIMEOUT_S).run()
    assert not app.exception
    pages = [(page["page_name"], page["url_pathname"]) for page in app._registered_pages.values()]
    # The first page that exists is the default, at "/" and by its own URL.
    assert pages == [("Trades", ""), ("Trades", "trades"), ("Report", "report")]
    assert app.title[0].value == "Trades"


def test_dashboard_when_imported_then_no_engine_runtime_or_exchange_code_is_loaded() -> None:
    """The control room reads the store; it must not be able to trade (DESIGN.md, layers)."""
    forbidden = ("desk.engines", "desk.runtime", "desk.strategies", "ccxt")
    for page_file in (*READ_PAGES, "../app.py", "../report_pdf.py", "../common.py"):
        tree = ast.parse((PROJECT_ROOT / "dashboard" / "pages" / page_file).resolve().read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name.startswith(forbidden)], page_file
    probe = (
        "import sys, dashboard.common, dashboard.report_pdf; print(sorted(m for m in sys.modules if m.startswith({})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe.format(forbidden)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_pages_when_daemon_is_writing_then_each_renders_again_and_again(point_at, tmp_path) -> None:
    store_dir = point_at(tmp_path / "live")
    store_dir.mkdir()
    config = write_daemon_config(store_dir)
    command = [sys.executable, str(PROJECT_ROOT / "main.py"), "--config", config.name, "--candles", "3000"]
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(command, cwd=store_dir, stdout=log, stderr=subprocess.STDOUT)
    renders_while_running = 0
    try:
        reader = StoreReader(f"sqlite:///{store_dir / 'desk.db'}", store_dir / "journal")
        deadline = time.monotonic() + 60
        while reader.summary() is None:  # wait for the first equity sample, not just the file
            assert daemon.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the daemon wrote no equity sample within 60 s"
            time.sleep(0.05)
        for _ in range(3):
            for page_file in READ_PAGES:
                running = daemon.poll() is None
                open_page(page_file)
                renders_while_running += running
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert renders_while_running >= 1, "the daemon finished before any page rendered beside it"
    assert daemon.returncode == 0, log_path.read_text()  # SIGTERM is a clean stop


# --- a database the control room cannot reach, with a password in its URL -----------------------------

PG_SECRET = "canary-pg-secret-99"
PG_URL = f"postgresql://desk:{PG_SECRET}@127.0.0.1/desk"


@pytest.mark.parametrize("page_file", [*READ_PAGES, "config_editor.py", "controls.py"])
def test_page_when_postgres_url_has_a_password_then_masked_and_unreachable_store_said_plainly(
    page_file, tmp_path, monkeypatch
) -> None:
    from tests.dashboard.operator_pages import rendered_text

    config = tmp_path / "config.yaml"
    store = {"journal_dir": str(tmp_path / "journal"), "database_url": PG_URL}
    config.write_text(yaml.safe_dump(deep_update(config_data_for_tests(), {"store": store}), sort_keys=False))
    monkeypatch.setenv("DESK_CONFIG", str(config))
    monkeypatch.delenv("DESK_STORE_DIR", raising=False)
    monkeypatch.delenv("DESK_DASHBOARD_PASSWORD", raising=False)

    page = open_page(page_file)  # fails on any exception

    shown = rendered_text(page)
    assert PG_SECRET not in shown
    assert "postgresql://desk:***@127.0.0.1/desk" in shown
    if page_file in READ_PAGES:  # they read the database at once: one clear error, then the page stops
        assert [text for text in texts(page, "error") if "Cannot read the store at" in text], texts(page, "error")
        assert any("postgresql://desk:***@127.0.0.1/desk" in text for text in texts(page, "caption"))
