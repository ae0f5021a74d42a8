"""TradingRuntime: the composition root's daemon. Boot, recover, trade, shut down cleanly.

Startup is the recovery path: the projection catches up with the journal, the
journal is replayed through every engine's `apply`, the feed is positioned just
after the last journaled candle, and the workers are re-warmed on history. The
loop then handles one minute of candles at a time; the asyncio shell adds only
the concurrent, time-limited worker evaluation, pacing, signals and commands.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from desk.config import DeskConfig, load_config
from desk.config_versions import live_changes, restart_required
from desk.core.clock import Clock, SimulatedClock, WallClock, parse_utc_ms
from desk.core.errors import ConfigError
from desk.core.events import (
    AccountOpened,
    CommandApplied,
    ConfigApplied,
    ConfigChanged,
    RuntimeStarted,
    RuntimeStopped,
    WorkerStateChanged,
)
from desk.core.types import MINUTE_MS, Candle
from desk.engines.bus import EventBus
from desk.engines.reconfigure import reconfigure
from desk.engines.trading import Command, TradingCore, WorkerResult
from desk.engines.worker import Evaluation, Worker, WorkerStatus
from desk.services.broker.paper import PaperBroker
from desk.services.feed.base import Feed
from desk.services.feed.simulated import SimulatedMarket
from desk.services.logging import get_logger, redact
from desk.services.store.store import EventStore
from desk.services.telemetry import TelemetrySink, build_telemetry

log = get_logger("desk.runtime")

COMMAND_POLL_S = 0.5  # how often the inbox is read, in wall seconds


class _FanOut:
    """Send every published record to the store and to telemetry."""

    def __init__(self, store: EventStore, telemetry: TelemetrySink) -> None:
        self._store = store
        self._telemetry = telemetry

    def append(self, records: list[dict]) -> None:
        self._store.append(records)
        for record in records:
            self._telemetry.emit(record)


@dataclass(frozen=True, slots=True)
class RunSummary:
    candles: int
    events: int
    reason: str


class TradingRuntime:
    """Boots the desk on its config and runs the trading loop until told to stop."""

    def __init__(
        self,
        config: DeskConfig,
        *,
        base_dir: Path,
        feed: Feed | None = None,
        wall_clock: Clock | None = None,
        telemetry: TelemetrySink | None = None,
        config_path: Path | None = None,
    ) -> None:
        if config.settings.mode == "live":
            raise ConfigError([("settings.mode", "live trading needs the exchange broker, not in this build yet")])
        if feed is None and config.feed.source != "simulated":
            raise ConfigError([("feed.source", f"the {config.feed.source!r} feed is not in this build yet")])
        self.config = config
        self.config_path = config_path
        self.base_dir = base_dir
        self.wall_clock = wall_clock or WallClock()
        self.start_ms = parse_utc_ms(config.feed.simulated.start, "feed.simulated.start")
        self.clock = SimulatedClock(self.start_ms)
        self._feed_override = feed
        # Flat out, SQLite commits dominate; the journal is still written every minute
        # and the projection follows a quarter second behind. Paced runs project every minute.
        lag_s = 0.25 if config.feed.simulated.speed == 0 else 0.0
        self.store = EventStore(config.store, base_dir, projection_lag_s=lag_s)
        self.telemetry = telemetry or build_telemetry(config.telemetry)
        self.bus = EventBus(self.wall_clock, _FanOut(self.store, self.telemetry))
        self.feed: Feed = feed or self._simulated_market()
        self.broker = PaperBroker(self.feed.markets(), config.portfolio.fees, config.settings.quote_currency)
        self.core = TradingCore(config, self.bus, self.broker)
        self._stop_reason: str | None = None
        self._stop_event: asyncio.Event | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._last_command_poll = 0.0
        self._last_beat = 0.0
        self.candles_processed = 0

    def _simulated_market(self) -> SimulatedMarket:
        sim = self.config.feed.simulated
        return SimulatedMarket(self.config.feed.symbols, sim.seed, self.start_ms)

    # --- boot and recovery -------------------------------------------------------------------

    def boot(self) -> int:
        """Open the store, replay the journal into the engines, seed the workers. Return events replayed."""
        caught_up = self.store.open()
        if caught_up:
            log.warning("projection_caught_up", events=caught_up)
        replayed = self.bus.replay(self.store.read_events())
        if replayed == 0:
            self.bus.publish(
                [
                    AccountOpened(
                        ts_event=self.start_ms,
                        currency=self.config.settings.quote_currency,
                        cash=self.config.settings.starting_cash,
                    )
                ]
            )
        self._seed_workers()
        ts = self.clock.now_ms()
        self._disable_workers_off_in_config(ts)
        self.bus.publish(
            [
                RuntimeStarted(
                    ts_event=ts,
                    mode=self.config.settings.mode,
                    feed_source=self.config.feed.source,
                    config_hash=self.config.config_hash(),
                    recovered_events=replayed,
                    wall_ms=self.wall_clock.now_ms(),
                ),
                ConfigApplied(
                    ts_event=ts, config_hash=self.config.config_hash(), workers=[w.name for w in self.core.workers]
                ),
            ]
        )
        self._apply_commands(force=True)
        self.store.flush()
        self._beat(force=True)
        log.info(
            "runtime_booted",
            replayed=replayed,
            last_seq=self.bus.last_seq,
            state=self.core.trading_state.value,
            journal=str(self.store.journal_dir),
            database=self.store.database_url_display,
        )
        return replayed

    def _disable_workers_off_in_config(self, ts: int) -> None:
        """The file wins over the journal: a worker switched off while the daemon was down stays off."""
        for worker in self.core.workers:
            if not worker.config.enabled and worker.status is not WorkerStatus.DISABLED:
                changed = WorkerStateChanged(
                    ts_event=ts, worker=worker.name, symbol=worker.symbol, state="disabled", reason="disabled in config"
                )
                self.bus.publish([changed])

    def _beat(self, force: bool = False, detail: str = "") -> None:
        """Write the heartbeat the control room watches, at most once a wall second."""
        now = time.monotonic()
        if not force and now - self._last_beat < 1.0:
            return
        self._last_beat = now
        state = detail or f"{self.core.trading_state.value}; {self.candles_processed} candles this run"
        self.store.heartbeat(self.wall_clock.now_ms(), os.getpid(), state)

    def _seed_workers(self) -> None:
        """Position the feed after the last journaled candle and warm the workers on the minutes before it."""
        seed = self.config.feed.seed_candles
        last = self.core.last_candle_ts
        if last is None:  # a fresh store spends the market's first `seed` minutes on warm-up
            first_ts, end_ts = self.start_ms, self.start_ms + (seed - 1) * MINUTE_MS
        else:  # a restart re-reads the `seed` minutes that end at the last candle it traded on
            first_ts, end_ts = max(self.start_ms, last - (seed - 1) * MINUTE_MS), last
        self.feed.seek(first_ts - MINUTE_MS if seed else end_ts)
        history: dict[str, list[Candle]] = {symbol: [] for symbol in self.feed.symbols}
        while seed and (batch := self.feed.next_candles()) is not None:
            for candle in batch:
                history[candle.symbol].append(candle)
            if batch[0].ts >= end_ts:
                break
        for worker in self.core.workers:
            if not worker.evaluates:
                continue
            error = worker.seed(history.get(worker.symbol, []))
            if error is not None:
                self.bus.publish(worker.fault(error, end_ts + MINUTE_MS))
        # The clock stands at the close of the last candle seen, so no event is stamped before it.
        self.clock.advance_to(max(self.clock.now_ms(), end_ts + MINUTE_MS))

    # --- the loop ----------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("stop_requested", reason=reason)
        if self._stop_event is not None:
            self._stop_event.set()

    async def run(self, *, duration_s: float | None = None, max_candles: int | None = None) -> RunSummary:
        """Boot, then trade until stopped, the duration passes, or `max_candles` minutes are done."""
        self._stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread (tests): stop via request_stop
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(16, len(self.core.workers))), thread_name_prefix="worker"
        )
        events_before = self.bus.last_seq
        started = time.monotonic()
        try:
            self.boot()
            speed = self.config.feed.simulated.speed
            wall_per_minute = 60.0 / speed if speed > 0 else 0.0
            next_deadline = time.monotonic()
            while self._stop_reason is None:
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    self.request_stop("duration reached")
                    break
                if max_candles is not None and self.candles_processed >= max_candles:
                    self.request_stop("candle limit reached")
                    break
                candles = self.feed.next_candles()
                if candles is None:
                    self.request_stop("feed exhausted")
                    break
                await self._process_minute(candles)
                if wall_per_minute:
                    next_deadline += wall_per_minute
                    delay = next_deadline - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(self._stop_event.wait(), timeout=delay)
                        except TimeoutError:
                            pass
                    else:
                        next_deadline = time.monotonic()  # fell behind: don't sprint to catch up
                elif self.candles_processed % 50 == 0:
                    await asyncio.sleep(0)  # let signal handlers run at full speed
        finally:
            self._shutdown()
        return RunSummary(self.candles_processed, self.bus.last_seq - events_before, self._stop_reason or "")

    async def _process_minute(self, candles: list[Candle]) -> None:
        self.clock.advance_to(candles[0].ts + MINUTE_MS)
        self.core.step(candles, self._evaluate)
        self._apply_commands()
        self.store.flush()
        self.candles_processed += 1
        self._beat()

    def _evaluate(self, by_symbol: dict[str, Candle]) -> list[tuple[Worker, WorkerResult]]:
        """Run every evaluating worker on a pool thread, all within one time limit.

        The loop thread waits on the futures directly rather than through asyncio:
        nothing else runs while a minute is being decided, and skipping the
        asyncio wrapping halves the dispatch cost per worker.
        """
        assert self._pool is not None
        timeout = self.config.settings.worker_timeout_ms / 1000.0
        jobs: list[tuple[Worker, Future[Evaluation] | None]] = []
        for worker in self.core.workers:
            candle = by_symbol.get(worker.symbol)
            if candle is None or not worker.evaluates:
                continue
            if worker.busy:
                jobs.append((worker, None))
                continue
            jobs.append((worker, self._pool.submit(worker.evaluate, candle)))
        futures = [f for _, f in jobs if f is not None]
        if futures:
            wait(futures, timeout=timeout)
        results: list[tuple[Worker, WorkerResult]] = []
        for worker, future in jobs:
            if future is None:
                results.append((worker, f"still running a previous evaluation past {timeout:.3f}s; candle skipped"))
            elif not future.done():
                results.append((worker, f"evaluation exceeded {timeout:.3f}s"))
            elif (error := future.exception()) is not None:
                results.append((worker, error))
            else:
                results.append((worker, future.result()))
        return results

    def _apply_commands(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_command_poll < COMMAND_POLL_S:
            return
        self._last_command_poll = now
        for row in self.store.pending_commands():
            payload = row.payload or {}
            command = Command(row.command_id, row.command, str(payload.get("worker", "")))
            ts = self.clock.now_ms()
            if command.command == "reload_config":
                applied = self._reload_config(command, payload, ts)
            else:
                applied = self.core.handle_command(command, ts)
            # Journal the outcome before the inbox says "applied": a crash in between must leave the
            # command pending (and so applied again at start), never acknowledged but unrecorded.
            self.store.flush()
            self.store.mark_command(row.command_id, applied.status, applied.detail, applied.seq)
            log.info("command_applied", command=row.command, status=applied.status, detail=applied.detail)

    def _reload_config(self, command: Command, payload: dict, ts: int) -> CommandApplied:
        """Re-read the config file and apply its live part; journal what changed and what waits."""
        requested = str(payload.get("path", ""))
        if self.config_path is None:
            return self.core.acknowledge(command, "rejected", "this daemon was not started from a file", ts)
        if not requested or Path(requested).resolve() != self.config_path.resolve():
            detail = f"this daemon runs {self.config_path}, not {requested or 'an unnamed file'}"
            return self.core.acknowledge(command, "rejected", detail, ts)
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            return self.core.acknowledge(command, "rejected", str(redact(str(exc))), ts)
        needs_restart = restart_required(self.config, new)
        applied = live_changes(self.config, new)
        worker_changes = reconfigure(self.core, new, ts)
        self.config = self.core.config
        self.bus.publish(
            [
                ConfigChanged(
                    ts_event=ts,
                    path=str(self.config_path),
                    version=int(payload.get("version", 0) or 0),
                    diff=str(redact(str(payload.get("diff", "")))),
                    applied=applied,
                    needs_restart=needs_restart,
                ),
                ConfigApplied(
                    ts_event=ts,
                    config_hash=new.config_hash(),
                    workers=[w.name for w in self.core.workers],
                    changes={"applied": applied, "workers": worker_changes, "needs_restart": needs_restart},
                ),
            ]
        )
        detail = f"applied {len(applied)} change(s)"
        if needs_restart:
            detail += f"; restart needed for {', '.join(needs_restart)}"
        return self.core.acknowledge(command, "applied", detail, ts)

    def _shutdown(self) -> None:
        try:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            if self.store.is_open:
                self.bus.publish(
                    [
                        RuntimeStopped(
                            ts_event=self.clock.now_ms(),
                            reason=self._stop_reason or "stopped",
                            wall_ms=self.wall_clock.now_ms(),
                        )
                    ]
                )
                self.store.flush()
                self._beat(force=True, detail=f"stopped: {self._stop_reason or 'stopped'}")
        finally:
            self.store.close()
            self.telemetry.close()
            log.info("runtime_stopped", reason=self._stop_reason, candles=self.candles_processed)

    def summary_lines(self) -> list[str]:
        return [
            f"journal:  {self.store.journal_dir}",
            f"database: {self.store.database_url_display}",
        ]
