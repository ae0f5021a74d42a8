"""Apply a new config to a running trading core between loop iterations.

Workers, risk, portfolio sizing and the learner switches change live; what the
running services were built from (mode, exchange, feed, store, telemetry,
fees at the broker) waits for a restart and is reported as such.
"""

from __future__ import annotations

from desk.config import DeskConfig, WorkerConfig
from desk.core.events import Event, WorkerStateChanged
from desk.engines.trading import TradingCore
from desk.engines.worker import Worker, WorkerStatus

# What the running services were built from; desk.config_versions.restart_required names the keys.
RESTART_SECTIONS = ("settings", "feed", "store", "telemetry")


def reconfigure(core: TradingCore, new: DeskConfig, ts: int) -> list[str]:
    """Apply the live part of `new` to `core`; return one line per worker change made."""
    old = core.config
    applied: list[str] = []
    # Keep what needs a restart as it is running now; take everything else from the new file.
    effective = new.model_copy(
        update={
            **{section: getattr(old, section) for section in RESTART_SECTIONS},
            "portfolio": new.portfolio.model_copy(update={"fees": old.portfolio.fees}),
        }
    )
    core.config = effective
    core.risk.config = effective.risk
    core.portfolio.config = effective.portfolio
    core.learner.configure(effective.ml, effective.risk)
    applied += _reconfigure_workers(core, old.workers, effective.workers, ts)
    return applied


def _reconfigure_workers(core: TradingCore, old: list[WorkerConfig], new: list[WorkerConfig], ts: int) -> list[str]:
    applied: list[str] = []
    before = {w.name: w for w in old}
    after = {w.name: w for w in new}
    for name in before.keys() - after.keys():
        worker = core.worker(name)
        if worker is not None and core.execution.has_position(name):
            core.close_position(name, "worker removed from config", ts)
        applied.append(f"workers.{name}: removed")
    workers: list[Worker] = []
    for config in new:
        current = core.worker(config.name)
        previous = before.get(config.name)
        if current is None or previous is None:
            worker = _fresh_worker(core, config)
            applied.append(f"workers.{config.name}: added ({config.strategy} on {config.symbol})")
        elif (previous.strategy, previous.symbol, previous.params) != (config.strategy, config.symbol, config.params):
            worker = _fresh_worker(core, config)
            worker.status = current.status if config.enabled else WorkerStatus.DISABLED
            applied.append(f"workers.{config.name}: strategy or params changed, re-warmed")
        else:
            worker = current
            worker.config = config
            if previous != config:
                applied.append(f"workers.{config.name}: weight/risk/enabled updated")
        workers.append(worker)
    core.replace_workers(workers)
    for config in new:
        worker = core.worker(config.name)
        assert worker is not None
        previous = before.get(config.name)
        if previous is not None and previous.enabled != config.enabled:
            core.bus.publish(_enabled_change(worker, config.enabled, ts))
    return applied


def _fresh_worker(core: TradingCore, config: WorkerConfig) -> Worker:
    worker = Worker(config, core.config.settings.lookback, core.config.settings.max_consecutive_faults)
    worker.seed(core.recent.get(config.symbol, ()))
    return worker


def _enabled_change(worker: Worker, enabled: bool, ts: int) -> list[Event]:
    state = WorkerStatus.ACTIVE if enabled else WorkerStatus.DISABLED
    reason = "enabled in config" if enabled else "disabled in config"
    return [WorkerStateChanged(ts_event=ts, worker=worker.name, symbol=worker.symbol, state=state.value, reason=reason)]
