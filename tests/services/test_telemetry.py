"""Telemetry sinks against a real HTTP collector on loopback.

The collector is a small threaded `http.server` that records every POST and
answers from a script (503 twice then 200, 400 always, hang…). Timeouts and
backoff waits are tiny so the whole module runs in a few seconds.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from desk.config import TelemetryConfig
from desk.core.events import IntentScored, event_to_record
from desk.services.logging import configure_logging
from desk.services.telemetry import (
    HttpTelemetry,
    InMemoryCollector,
    TelemetrySink,
    build_telemetry,
    safe_url,
)
from tests.support.telemetry_collector import WAIT_S, CollectorServer


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would swallow loopback requests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def collector() -> Iterator[CollectorServer]:
    server = CollectorServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ingest"


@pytest.fixture
def make_sink() -> Iterator[Callable[..., HttpTelemetry]]:
    """Build HttpTelemetry with tiny timeouts and backoff; every sink is closed at teardown."""
    sinks: list[HttpTelemetry] = []

    def build(
        endpoint: str,
        *,
        batch_size: int = 100,
        timeout_s: float = 1.0,
        max_retries: int = 3,
        queue_size: int = 64,
    ) -> HttpTelemetry:
        config = TelemetryConfig(endpoint=endpoint, batch_size=batch_size, timeout_s=timeout_s, max_retries=max_retries)
        sink = HttpTelemetry(config, queue_size=queue_size, backoff_initial_s=0.01, backoff_max_s=0.02)
        sinks.append(sink)
        return sink

    yield build
    for sink in sinks:
        sink.close()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Capture the desk's JSON log lines; restore the global logging set-up afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    structlog.reset_defaults()


def records(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"seq": i, "type": "CandleClosed", "symbol": "BTC/USD", "close": 100.0 + i} for i in range(start, count)]


def log_events(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == event]


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# --- batching --------------------------------------------------------------------------------


def test_emit_when_batch_size_reached_then_posts_each_full_batch_with_exact_records(collector, make_sink):
    sink = make_sink(collector.url, batch_size=3)
    sent = records(7)

    for record in sent:
        sink.emit(record)

    assert sink.wait_idle(WAIT_S)
    assert collector.accepted == [sent[0:3], sent[3:6]]
    assert collector.requests[0].headers["Content-Type"] == "application/json"
    stats = sink.stats()
    assert (stats.sent_batches, stats.sent_records, stats.buffered_records) == (2, 6, 1)


def test_flush_when_partial_batch_buffered_then_posts_remaining_records(collector, make_sink):
    sink = make_sink(collector.url, batch_size=100)
    sent = records(5)
    for record in sent:
        sink.emit(record)
    assert sink.wait_idle(WAIT_S)
    assert collector.requests == []  # below batch_size nothing goes out until asked

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    assert collector.accepted == [sent]
    assert (sink.sent_batches, sink.sent_records, sink.dropped_records) == (1, 5, 0)


def test_close_when_records_buffered_then_delivers_them_before_returning(collector, make_sink):
    sink = make_sink(collector.url, batch_size=100)
    sent = records(4)
    for record in sent:
        sink.emit(record)

    sink.close()

    assert collector.accepted == [sent]
    assert sink.sent_records == 4


def test_emit_when_caller_mutates_record_afterwards_then_sends_original(collector, make_sink):
    sink = make_sink(collector.url, batch_size=100)
    record = {"seq": 1, "type": "OrderFilled"}

    sink.emit(record)
    record["seq"] = 999
    sink.close()

    assert collector.accepted == [[{"seq": 1, "type": "OrderFilled"}]]


def test_emit_when_record_is_an_event_record_then_collector_receives_it_as_json(collector, make_sink):
    event = IntentScored(
        seq=7, id="e7", worker="w1", symbol="BTC/USD", intent_id="i1", score=0.7, vetoed=False, features={"rsi": 41.5}
    )
    sink = make_sink(collector.url)

    sink.emit(event_to_record(event))
    sink.close()

    assert collector.accepted == [[event_to_record(event)]]


def test_emit_when_record_holds_non_finite_float_then_sends_null(collector, make_sink):
    sink = make_sink(collector.url)

    sink.emit({"seq": 1, "drawdown_pct": math.nan, "features": {"z": math.inf}})
    sink.close()

    assert collector.accepted == [[{"seq": 1, "drawdown_pct": None, "features": {"z": None}}]]


# --- retries and drops -----------------------------------------------------------------------


def test_send_when_server_answers_503_twice_then_delivers_once_with_two_failed_attempts(collector, make_sink):
    collector.answer(503, 503, then=200)
    sink = make_sink(collector.url, max_retries=3)
    sent = records(3)
    for record in sent:
        sink.emit(record)

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    assert len(collector.requests) == 3
    assert collector.accepted == [sent]
    assert (sink.sent_batches, sink.failed_attempts, sink.dropped_records) == (1, 2, 0)


def test_send_when_server_answers_429_then_retries_and_delivers(collector, make_sink):
    collector.answer(429, then=200)
    sink = make_sink(collector.url)
    sink.emit({"seq": 1})

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    assert (sink.sent_batches, sink.failed_attempts) == (1, 1)


def test_send_when_server_answers_400_then_drops_without_retry_and_logs(collector, make_sink, log_output):
    collector.answer(then=400)
    sink = make_sink(collector.url, max_retries=3)
    for record in records(4):
        sink.emit(record)

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    assert len(collector.requests) == 1
    assert (sink.sent_batches, sink.failed_attempts, sink.dropped_records) == (0, 1, 4)
    [dropped] = log_events(log_output, "telemetry_batch_dropped")
    assert (dropped["level"], dropped["status"], dropped["count"]) == ("error", 400, 4)


def test_send_when_server_answers_503_past_retries_then_drops_after_all_attempts(collector, make_sink):
    collector.answer(then=503)
    sink = make_sink(collector.url, max_retries=2)
    sink.emit({"seq": 1})

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    assert len(collector.requests) == 3  # the first attempt and two retries
    assert (sink.sent_batches, sink.failed_attempts, sink.dropped_records) == (0, 3, 1)


def test_send_when_server_down_then_drops_without_raising_into_caller(closed_port_url, make_sink, log_output):
    sink = make_sink(closed_port_url, max_retries=2)

    for record in records(5):
        sink.emit(record)
    sink.flush()
    sink.close()  # none of these may raise, however dead the collector

    assert (sink.sent_batches, sink.failed_attempts, sink.dropped_records) == (0, 3, 5)
    [dropped] = log_events(log_output, "telemetry_batch_dropped")
    assert (dropped["status"], dropped["count"], dropped["error"]) == (None, 5, "ConnectError")


def test_send_when_server_hangs_past_timeout_then_retries_and_drops(collector, make_sink):
    collector.hang()
    sink = make_sink(collector.url, timeout_s=0.1, max_retries=1)
    sink.emit({"seq": 1})

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    assert len(collector.requests) == 2
    assert (sink.sent_batches, sink.failed_attempts, sink.dropped_records) == (0, 2, 1)


# --- never blocking the trading loop ----------------------------------------------------------


def test_emit_when_server_hangs_then_returns_without_waiting_and_bounds_queue(collector, make_sink):
    collector.hang()
    sink = make_sink(collector.url, batch_size=10, timeout_s=0.2, max_retries=0, queue_size=4)

    for record in records(10_000):
        sink.emit(record)

    # All 10k emits returned while at most one request was outstanding at a collector that never
    # answers: they cannot have waited on the network. The backlog stayed bounded; the excess was
    # dropped oldest-first and every record is accounted for exactly once.
    stats = sink.stats()
    assert stats.sent_records == 0
    assert stats.queued_batches <= 4
    assert stats.in_flight_records <= 10
    assert stats.dropped_records >= 10_000 - 10 * (4 + 1)
    in_sink = stats.buffered_records + stats.queued_records + stats.in_flight_records
    assert in_sink + stats.dropped_records + stats.sent_records == 10_000

    sink.close()  # bounded by timeout_s * (max_retries + 1); the hanging collector cannot stall it

    final = sink.stats()
    assert final.dropped_records + final.in_flight_records == 10_000
    assert final.queued_batches == 0


def test_emit_when_queue_full_then_drops_oldest_batch(collector, make_sink):
    collector.hang()
    sink = make_sink(collector.url, batch_size=1, timeout_s=WAIT_S, max_retries=0, queue_size=1)
    sink.emit({"seq": 0})
    assert wait_until(lambda: sink.stats().in_flight_records == 1)  # seq 0 is held by the collector

    sink.emit({"seq": 1})  # queued
    sink.emit({"seq": 2})  # queue full: seq 1, the oldest, is dropped

    assert sink.stats().dropped_records == 1
    collector.release.set()
    assert sink.wait_idle(WAIT_S)
    assert collector.accepted == [[{"seq": 0}], [{"seq": 2}]]


def test_emit_when_closed_then_counts_drop_without_raising(collector, make_sink):
    sink = make_sink(collector.url)
    sink.close()

    sink.emit({"seq": 1})
    sink.flush()
    sink.close()  # idempotent

    assert sink.dropped_records == 1
    assert collector.requests == []


def test_emit_when_record_not_a_mapping_then_counts_drop_without_raising(collector, make_sink):
    http_sink = make_sink(collector.url)
    memory_sink = InMemoryCollector()

    for sink in (http_sink, memory_sink):
        sink.emit(42)  # type: ignore[arg-type]  # a caller bug must not reach the trading loop as an exception

    assert (http_sink.dropped_records, memory_sink.dropped, len(memory_sink)) == (1, 1, 0)


# --- credentials -------------------------------------------------------------------------------


def test_send_when_endpoint_has_credentials_then_authenticates_and_never_logs_them(collector, make_sink, log_output):
    collector.answer(then=400)  # a refusal makes the sink log its endpoint
    endpoint = f"http://alice:pa55-word-xyz@127.0.0.1:{collector.port}/ingest?token=tok-abcdef-123"
    sink = make_sink(endpoint)
    sink.emit({"seq": 1})

    sink.flush()

    assert sink.wait_idle(WAIT_S)
    [request] = collector.requests
    assert request.path == "/ingest?token=tok-abcdef-123"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pa55-word-xyz").decode()
    [dropped] = log_events(log_output, "telemetry_batch_dropped")
    assert dropped["endpoint"] == f"http://127.0.0.1:{collector.port}/ingest"
    output = log_output.getvalue()
    for secret in ("alice", "pa55-word-xyz", "tok-abcdef-123"):
        assert secret not in output
    assert sink.endpoint == f"http://127.0.0.1:{collector.port}/ingest"


def test_safe_url_when_url_has_credentials_and_query_then_keeps_only_scheme_host_port_path():
    assert safe_url("https://u:p@example.com/v1/ingest?token=abc#frag") == "https://example.com:443/v1/ingest"
    assert safe_url("http://[::1]:8080/x") == "http://[::1]:8080/x"


def test_http_telemetry_when_endpoint_not_http_then_raises_without_echoing_url():
    config = TelemetryConfig(endpoint="ftp://user:hunter22@example.com/in")

    with pytest.raises(ValueError, match="http") as raised:
        HttpTelemetry(config)

    assert "hunter22" not in str(raised.value)


# --- in-memory collector and factory --------------------------------------------------------------


def test_emit_when_in_memory_collector_full_then_keeps_newest_and_counts_dropped():
    sink = InMemoryCollector(maxlen=3)

    for record in records(5):
        sink.emit(record)

    assert sink.records == records(5, start=2)
    assert (len(sink), sink.dropped) == (3, 2)


def test_in_memory_collector_when_default_then_bounded_at_ten_thousand():
    sink = InMemoryCollector()

    for i in range(10_001):
        sink.emit({"seq": i})

    assert (sink.maxlen, len(sink), sink.dropped) == (10_000, 10_000, 1)
    assert sink.records[0] == {"seq": 1}


def test_build_telemetry_when_no_endpoint_then_returns_in_memory_collector():
    sink = build_telemetry(TelemetryConfig())

    assert isinstance(sink, InMemoryCollector)
    assert isinstance(sink, TelemetrySink)


def test_build_telemetry_when_endpoint_set_then_returns_http_telemetry(collector):
    sink = build_telemetry(TelemetryConfig(endpoint=collector.url, timeout_s=0.5, max_retries=0))
    try:
        assert isinstance(sink, HttpTelemetry)
        assert isinstance(sink, TelemetrySink)
    finally:
        sink.close()
