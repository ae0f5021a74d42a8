"""Telemetry sinks: where event records go for dashboards and alerting, off the trading path.

Telemetry is best effort by design. A sink never raises into its caller and
never blocks it on the network: a record that cannot be delivered is counted
and dropped, because a slow or broken collector must not stop trading. The
journal, not telemetry, is the system of record.

* `InMemoryCollector` — the default when `telemetry.endpoint` is unset; a
  bounded in-process buffer the dashboard and tests can read.
* `HttpTelemetry` — batches records and POSTs `{"records": [...]}` as JSON
  from a background thread, retrying transient failures with exponential
  backoff.

Records are usually `desk.core.events.event_to_record(event)`.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential_jitter,
)

from desk.config import TelemetryConfig
from desk.services.logging import get_logger

__all__ = [
    "HttpTelemetry",
    "InMemoryCollector",
    "TelemetrySink",
    "TelemetryStats",
    "build_telemetry",
    "safe_url",
]

_log = get_logger(__name__)

# Failures worth another attempt: the network or the collector is momentarily unwell.
# Deliberately not all of httpx.TransportError: UnsupportedProtocol or a proxy misconfiguration will not heal.
_TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.NetworkError,  # connect / read / write / close errors
    httpx.TimeoutException,
    httpx.RemoteProtocolError,  # the server dropped the connection mid-response
)
# Overflow warnings come from the emit path; one per interval is enough to notice, without flooding stderr.
_OVERFLOW_LOG_INTERVAL_S = 10.0


@runtime_checkable
class TelemetrySink(Protocol):
    """Where records go. Implementations never raise into, nor block, the caller."""

    def emit(self, record: dict[str, Any]) -> None:
        """Accept one JSON-ready record (e.g. `event_to_record(event)`)."""
        ...

    def flush(self) -> None:
        """Hand buffered records on for delivery without waiting for the network."""
        ...

    def close(self) -> None:
        """Deliver what can be delivered within a bound, then release resources; idempotent."""
        ...


class InMemoryCollector:
    """Keeps the newest `maxlen` records in memory; older ones are dropped and counted.

    Bounded so a daemon that runs for weeks without an endpoint cannot grow
    without limit. Thread-safe: the dashboard may read while the loop emits.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {maxlen}")
        self._records: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._dropped = 0

    @property
    def maxlen(self) -> int:
        """How many records are kept."""
        return self._records.maxlen or 0

    @property
    def records(self) -> list[dict[str, Any]]:
        """A snapshot of the kept records, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def dropped(self) -> int:
        """How many records were pushed out by newer ones (or were not mappings)."""
        return self._dropped

    def __len__(self) -> int:
        return len(self._records)

    def emit(self, record: dict[str, Any]) -> None:
        """Keep a shallow copy of `record`, evicting the oldest one when full."""
        try:
            copied = dict(record)  # a copy, so a caller reusing its dict cannot rewrite what was recorded
        except Exception:  # not a mapping: a caller bug, but telemetry must not be what stops trading
            with self._lock:
                self._dropped += 1
            return
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self._dropped += 1
            self._records.append(copied)

    def flush(self) -> None:
        """Nothing to deliver: records are already where readers look."""

    def close(self) -> None:
        """Nothing to release; the records stay readable after close."""


@dataclass(frozen=True, slots=True)
class TelemetryStats:
    """A consistent snapshot of an `HttpTelemetry`'s counters and backlog.

    Every emitted record is in exactly one of: buffered, queued, in flight,
    sent or dropped — so the sum is the number of records emitted.
    """

    sent_batches: int
    sent_records: int
    dropped_batches: int
    dropped_records: int
    failed_attempts: int
    buffered_records: int
    queued_batches: int
    queued_records: int
    in_flight_records: int


class _StatusError(Exception):
    """The collector answered with a non-2xx status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why a batch was dropped, for the `telemetry_batch_dropped` log line."""

    reason: str  # send_failed | close_timeout | internal_error
    status: int | None  # the last HTTP status, when there was a response
    error: str | None  # the network exception's type name; never its message, which may quote the URL


def _is_transient(exc: BaseException) -> bool:
    """Retry network trouble, timeouts, 5xx and 429; a 4xx means the request itself is wrong."""
    if isinstance(exc, _StatusError):
        return exc.status >= 500 or exc.status == 429
    return isinstance(exc, _TRANSIENT_ERRORS)


def safe_url(url: str | httpx.URL) -> str:
    """Return `scheme://host:port/path` — no credentials, query or fragment — for logs and errors."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.scheme}://{host}:{port}{parsed.path}"


def _finite(value: Any) -> Any:
    """Replace NaN/inf (which JSON cannot carry) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _encode(batch: list[dict[str, Any]]) -> bytes:
    """Serialise a batch; odd values become strings and non-finite floats null rather than losing the batch."""
    try:
        text = json.dumps({"records": batch}, default=str, allow_nan=False, separators=(",", ":"))
    except ValueError:  # a NaN or infinity somewhere; rare, so only then pay for the walk
        text = json.dumps({"records": _finite(batch)}, default=str, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


class HttpTelemetry:
    """Batches records and POSTs them to `config.endpoint` from a background daemon thread.

    `emit` appends to a buffer; every `config.batch_size` records (or on
    `flush`/`close`) the buffer becomes a batch on a bounded queue. When the
    queue is full the *oldest* batch is dropped — recent telemetry is worth
    more than stale telemetry. The sender thread retries transient failures
    (network errors, timeouts, 5xx, 429) up to `config.max_retries` times with
    exponential backoff; a batch that still fails, or is refused with another
    4xx, is dropped and logged as `telemetry_batch_dropped`.

    Credentials in the endpoint (`https://user:pass@host/…`) are sent as HTTP
    Basic auth and never logged; a token in the query string is sent as is and
    never logged either (logs show only `scheme://host:port/path`).

    Pass `client` to reuse a connection pool or to test; it is then the
    caller's to close. `backoff_initial_s`/`backoff_max_s` shape the waits
    between retries, `queue_size` bounds the number of batches waiting.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        client: httpx.Client | None = None,
        *,
        queue_size: int = 64,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 2.0,
    ) -> None:
        if not config.endpoint:
            raise ValueError("HttpTelemetry needs telemetry.endpoint; use build_telemetry to fall back to memory")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        try:
            url = httpx.URL(config.endpoint)
        except httpx.InvalidURL:
            raise ValueError("telemetry.endpoint is not a valid URL") from None  # the message may quote it
        if url.scheme not in ("http", "https") or not url.host:
            # Name the parts, not the URL: it may hold credentials.
            raise ValueError(f"telemetry.endpoint must be an http(s) URL with a host, got scheme {url.scheme!r}")
        self._config = config
        # Send userinfo as an explicit auth header so the URL we hand httpx (which logs it) holds no password.
        self._auth = httpx.BasicAuth(url.username, url.password) if (url.username or url.password) else None
        self._url = url.copy_with(username=None, password=None)
        self._safe_url = safe_url(url)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=config.timeout_s)
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        # Long enough for the last batch's every attempt and backoff; close() never waits longer.
        self._close_bound_s = config.timeout_s * (config.max_retries + 1) + backoff_max_s * config.max_retries

        # One lock guards the buffer, queue and counters, so `stats()` is a consistent snapshot.
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._buffer: list[dict[str, Any]] = []
        self._queue: deque[list[dict[str, Any]]] = deque()
        self._queue_size = queue_size
        self._in_flight = 0  # records the sender holds; counted here until sent or dropped
        self._busy = False  # the sender is between taking a batch and having counted and logged it
        self._closed = False
        self._deadline: float | None = None  # set by close(): past it the sender gives up and drops
        self._last_overflow_log = -math.inf

        self._sent_batches = 0
        self._sent_records = 0
        self._dropped_batches = 0
        self._dropped_records = 0
        self._failed_attempts = 0

        self._thread = threading.Thread(target=self._run, name="desk-telemetry", daemon=True)
        self._thread.start()

    # --- counters ---------------------------------------------------------------------------

    @property
    def sent_batches(self) -> int:
        """Batches the collector accepted (2xx)."""
        return self._sent_batches

    @property
    def sent_records(self) -> int:
        """Records in accepted batches."""
        return self._sent_records

    @property
    def dropped_records(self) -> int:
        """Records given up on: failed batches, queue overflow, emits after close."""
        return self._dropped_records

    @property
    def failed_attempts(self) -> int:
        """POST attempts that failed, retried or not."""
        return self._failed_attempts

    @property
    def endpoint(self) -> str:
        """The endpoint without credentials or query, safe to display."""
        return self._safe_url

    def stats(self) -> TelemetryStats:
        """A consistent snapshot of every counter and of the backlog."""
        with self._lock:
            return TelemetryStats(
                sent_batches=self._sent_batches,
                sent_records=self._sent_records,
                dropped_batches=self._dropped_batches,
                dropped_records=self._dropped_records,
                failed_attempts=self._failed_attempts,
                buffered_records=len(self._buffer),
                queued_batches=len(self._queue),
                queued_records=sum(len(batch) for batch in self._queue),
                in_flight_records=self._in_flight,
            )

    # --- the caller's side: never blocks on the network, never raises -----------------------

    def emit(self, record: dict[str, Any]) -> None:
        """Buffer a shallow copy of `record`; a full buffer becomes a batch for the sender."""
        try:
            copied = dict(record)  # so a caller reusing its dict cannot rewrite a queued record
        except Exception:  # not a mapping: a caller bug, but telemetry must not be what stops trading
            with self._lock:
                self._dropped_records += 1
            return
        evicted = 0
        with self._lock:
            if self._closed:
                self._dropped_records += 1
                return
            self._buffer.append(copied)
            if len(self._buffer) >= self._config.batch_size:
                evicted = self._enqueue_locked()
        if evicted:
            self._log_overflow(evicted)

    def flush(self) -> None:
        """Queue the buffered records as a batch now; returns at once (see `wait_idle` to wait)."""
        evicted = 0
        with self._lock:
            if self._buffer and not self._closed:
                evicted = self._enqueue_locked()
        if evicted:
            self._log_overflow(evicted)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is buffered-and-flushed, queued or in flight; False if `timeout` ran out.

        For shutdown paths and tests, never the trading loop. Records still in
        the buffer (fewer than `batch_size`, not flushed) do not count.
        """
        with self._idle:
            return self._idle.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        """Flush, let the sender drain for at most a bounded time, then drop and count the rest.

        The bound is `timeout_s * (max_retries + 1)` plus the backoff waits,
        i.e. enough for the last batch's every attempt. Idempotent.
        """
        evicted = 0
        with self._lock:
            if self._closed:
                return
            if self._buffer:
                evicted = self._enqueue_locked()
            self._closed = True
            self._deadline = time.monotonic() + self._close_bound_s
            self._has_work.notify_all()
        if evicted:
            self._log_overflow(evicted)
        self._thread.join(self._close_bound_s + 0.5)  # slack for the sender to notice the deadline
        leftover: list[list[dict[str, Any]]] = []
        with self._lock:
            if self._queue:
                leftover = list(self._queue)
                self._queue.clear()
                self._dropped_batches += len(leftover)
                self._dropped_records += sum(len(batch) for batch in leftover)
                self._idle.notify_all()
        if leftover:
            self._log_drop(
                "telemetry_batch_dropped",
                reason="close_timeout",
                status=None,
                count=sum(len(b) for b in leftover),
                batches=len(leftover),
            )
        # A sender still stuck in a request would fail on a closed client; it is a daemon thread,
        # so leaving the client to the process exit is the safer choice.
        if self._owns_client and not self._thread.is_alive():
            with contextlib.suppress(Exception):  # closing a pool must not turn shutdown into a crash
                self._client.close()

    def _enqueue_locked(self) -> int:
        """Move the buffer onto the queue, evicting the oldest batch when full; return the records evicted.

        The caller holds the lock, and logs any eviction after releasing it, so
        a slow stderr never holds up other threads' emits.
        """
        batch, self._buffer = self._buffer, []
        evicted = 0
        if len(self._queue) >= self._queue_size:
            oldest = self._queue.popleft()
            self._dropped_batches += 1
            self._dropped_records += len(oldest)
            evicted = len(oldest)
        self._queue.append(batch)
        self._has_work.notify()
        return evicted

    def _log_overflow(self, evicted: int) -> None:
        """Log a queue overflow, at most once per interval: it repeats on every emit while the collector is down."""
        now = time.monotonic()
        if now - self._last_overflow_log < _OVERFLOW_LOG_INTERVAL_S:
            return
        self._last_overflow_log = now
        self._log_drop(
            "telemetry_batch_dropped",
            reason="queue_full",
            status=None,
            count=evicted,
            dropped_records_total=self._dropped_records,
        )

    # --- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        """Send batches until closed and drained; survives any error so telemetry never goes silent."""
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._has_work.wait()
                if not self._queue:
                    return  # closed and drained
                batch = self._queue.popleft()
                self._in_flight = len(batch)
                self._busy = True
            try:
                failure = self._deliver(batch)
            except Exception as exc:  # a bug in delivery must not kill the thread and silently stop telemetry
                failure = _Failure(reason="internal_error", status=None, error=type(exc).__name__)
            with self._lock:
                # Counted in the same critical section that clears in_flight, so every record is in
                # exactly one place in any stats() snapshot.
                if failure is None:
                    self._sent_batches += 1
                    self._sent_records += len(batch)
                else:
                    self._dropped_batches += 1
                    self._dropped_records += len(batch)
                self._in_flight = 0
            if failure is not None:
                self._log_drop(
                    "telemetry_batch_dropped",
                    reason=failure.reason,
                    status=failure.status,
                    count=len(batch),
                    error=failure.error,
                )
            with self._lock:
                # Idle only once the outcome is logged too, so wait_idle() callers see the log line.
                self._busy = False
                self._idle.notify_all()

    def _past_deadline(self, _state: RetryCallState | None = None) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deliver(self, batch: list[dict[str, Any]]) -> _Failure | None:
        """POST one batch with retries; return why it failed, or None once the collector accepted it."""
        if self._past_deadline():
            return _Failure(reason="close_timeout", status=None, error=None)
        body = _encode(batch)
        retrying = Retrying(
            # max_retries retries = max_retries + 1 attempts; a closing sink also stops at its deadline.
            stop=stop_any(stop_after_attempt(self._config.max_retries + 1), self._past_deadline),
            wait=wait_exponential_jitter(
                multiplier=self._backoff_initial_s, max=self._backoff_max_s, jitter=self._backoff_initial_s
            ),
            retry=retry_if_exception(_is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            retrying(self._attempt, body)
        except Exception as exc:
            if isinstance(exc, _StatusError):
                return _Failure(reason="send_failed", status=exc.status, error=None)
            return _Failure(reason="send_failed", status=None, error=type(exc).__name__)
        return None

    def _attempt(self, body: bytes) -> None:
        """One POST; raises on anything but 2xx, counting the failure."""
        try:
            response = self._client.post(
                self._url,
                content=body,
                headers={"Content-Type": "application/json"},
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._config.timeout_s,
            )
            if not 200 <= response.status_code < 300:
                raise _StatusError(response.status_code)
        except Exception:
            with self._lock:
                self._failed_attempts += 1
            raise

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self._safe_log(
            "debug",
            "telemetry_retry",
            endpoint=self._safe_url,
            attempt=state.attempt_number,
            status=exc.status if isinstance(exc, _StatusError) else None,
            error=type(exc).__name__ if exc is not None and not isinstance(exc, _StatusError) else None,
        )

    def _log_drop(self, event: str, **fields: Any) -> None:
        self._safe_log("error", event, endpoint=self._safe_url, **fields)

    @staticmethod
    def _safe_log(level: str, event: str, **fields: Any) -> None:
        """Log, but never let a logging failure (closed stream, bad handler) escape into telemetry."""
        with contextlib.suppress(Exception):
            getattr(_log, level)(event, **fields)


def build_telemetry(config: TelemetryConfig) -> TelemetrySink:
    """The sink the config asks for: HTTP when an endpoint is set, otherwise in memory."""
    if config.endpoint:
        return HttpTelemetry(config)
    return InMemoryCollector()
