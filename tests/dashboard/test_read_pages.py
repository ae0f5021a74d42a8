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

import pytest
from streamlit import config as streamlit_config

from desk.services.store.queries import StoreReader
from tests.conftest import PROJECT_ROOT
from tests.dashboard.read_store import (
    APP,
    PAGE_TIMEOUT_S,
    build_tiny_store,
    dataframe,
    dataframe_rows,
    open_page,
    run_daemon_in_process,
    texts,
    write_daemon_config,
)

READ_PAGES = ("overview.py", "trades.py", "workers.py", "logs.py", "report.py")
DAEMON_CANDLES = 1500


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
    assert list(metrics) == ["Equity", "Today's PnL", "Open exposure", "Drawdown", "Closed trades"]
    assert metrics["Equity"].startswith("$") and metrics["Drawdown"].endswith("%")
    assert any("Daemon not running" in text and "stopped cleanly" in text for text in texts(page, "warning"))
    assert any("Trading **ACTIVE**" in text for text in texts(page, "success"))
    assert {chart.key for chart in page.get("plotly_chart")} == {"equity_chart", "drawdown_chart"}
    assert any(block.key == "overview_equity" for block in page.container)
    assert '<div id="equity-chart"></div>' in texts(page, "markdown")
    assert dataframe_rows(page, "feed_table") == 3
    assert not page.error


def test_trades_when_daemon_ran_then_ledger_totals_page_and_csv_download(point_at, daemon_store) -> None:
    point_at(daemon_store)
    page = open_page("trades.py")
    trades = StoreReader(f"sqlite:///{daemon_store / 'desk.db'}", daemon_store / "journal").ledger_totals().trades
    assert trades > 0
    assert {metric.label: metric.value for metric in page.metric}["Trades"] == f"{trades:,}"
    assert dataframe_rows(page, "ledger_table") == min(trades, 100)
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
    assert dataframe_rows(page, "ledger_table") == 4
    assert {metric.label: metric.value for metric in page.metric}["Net PnL"] == "+$10.00"


def test_workers_when_faulting_worker_selected_then_its_faults_and_state(point_at, tiny_store) -> None:
    point_at(tiny_store)
    page = open_page("workers.py", lambda at: at.selectbox(key="workers_choice").select("gamma"))
    assert dataframe_rows(page, "faults_table") == 2
    assert "gamma has no closed trades yet." in texts(page, "info")


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
    titles = [page["page_name"] for page in app._registered_pages.values()]
    expected = ["Overview", "Trades", "Workers", "Config", "Logs", "Controls", "Report"]
    assert titles == [title for title in expected if title in titles]
    assert {"Overview", "Trades", "Workers", "Logs", "Report"} <= set(titles)
    app.switch_page("pages/report.py").run()
    assert not app.exception and app.title[0].value == "Report"


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
    assert [page["page_name"] for page in app._registered_pages.values()] == ["Trades", "Report"]
    assert app.title[0].value == "Trades"  # the first page that exists is the default


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
