"""Typed configuration: one YAML file, validated by pydantic models that reject unknown keys.

Every error names its key path (`workers[2].params.fast`) and what was expected.
Secrets never live here: exchange keys come from the environment or a 0600
credentials file (see README).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from desk.core.errors import ConfigError

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$")
SECRET_WORDS = ("api_key", "apikey", "secret", "password", "passphrase", "token", "private_key")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Settings(_Section):
    mode: Literal["paper", "live"] = "paper"
    exchange: str = "kraken"
    timeframe: Literal["1m"] = "1m"
    lookback: int = Field(300, ge=10, le=10_000, description="candles kept per worker")
    loop_interval_s: float = Field(1.0, gt=0, le=3600, description="wall cadence when not simulated")
    worker_timeout_ms: int = Field(250, ge=1, le=60_000)
    max_consecutive_faults: int = Field(3, ge=1, le=1000)
    starting_cash: float = Field(10_000.0, gt=0, description="paper account opening balance")
    quote_currency: str = "USD"


class SimulatedFeed(_Section):
    seed: int = 7
    speed: float = Field(60.0, ge=0, description="simulated minutes per wall second x60; 0 = as fast as possible")
    start: str = Field("2026-01-01T00:00:00Z", description="simulated clock start, ISO 8601 UTC")


class FeedConfig(_Section):
    source: Literal["simulated", "exchange", "replay"] = "simulated"
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USD", "ETH/USD", "SOL/USD"], min_length=1)
    seed_candles: int = Field(300, ge=0, le=10_000, description="history loaded before trading")
    simulated: SimulatedFeed = SimulatedFeed()

    @field_validator("symbols")
    @classmethod
    def _symbols_well_formed(cls, symbols: list[str]) -> list[str]:
        for symbol in symbols:
            if not SYMBOL_PATTERN.match(symbol):
                raise ValueError(f"symbol {symbol!r} must look like BASE/QUOTE, e.g. BTC/USD")
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be unique")
        return symbols


class RiskProfile(_Section):
    """The knobs a worker may override; unset fields fall back to the `risk` section."""

    risk_per_trade_usd: float | None = Field(None, gt=0)
    risk_per_trade_pct: float | None = Field(None, gt=0, le=0.1)
    stop_pct: float | None = Field(None, gt=0, lt=0.5)
    take_profit_r: float | None = Field(None, gt=0, le=50)
    trailing_stop_pct: float | None = Field(None, gt=0, lt=0.5)


class RiskConfig(_Section):
    risk_per_trade_usd: float | None = Field(50.0, gt=0, description="fixed USD risked per trade")
    risk_per_trade_pct: float | None = Field(None, gt=0, le=0.1, description="or a fraction of equity")
    stop_pct: float = Field(0.02, gt=0, lt=0.5, description="default stop distance below entry")
    take_profit_r: float = Field(2.0, gt=0, le=50, description="take-profit as a multiple of the stop distance")
    trailing_stop_pct: float | None = Field(None, gt=0, lt=0.5)
    max_concurrent_positions: int = Field(5, ge=1, le=1000)
    # null switches a rule off (research and benchmarks); a live desk should keep all three.
    trapdoor_pct: float | None = Field(
        0.10, gt=0, lt=1, description="no new entries once equity is this far below its high"
    )
    daily_loss_limit_pct: float | None = Field(
        0.05, gt=0, lt=1, description="no new entries for the rest of the UTC day"
    )
    max_drawdown_pct: float | None = Field(0.20, gt=0, lt=1, description="HALT; only an operator clears it")
    ml_weight: float = Field(0.0, ge=0, le=1, description="weight of the learner's score against confidence")
    retrain_every_trades: int = Field(50, ge=1)
    default_profile: str = "standard"
    profiles: dict[str, RiskProfile] = Field(default_factory=lambda: {"standard": RiskProfile()})

    @model_validator(mode="after")
    def _one_sizing_basis(self) -> RiskConfig:
        if (self.risk_per_trade_usd is None) == (self.risk_per_trade_pct is None):
            raise ValueError("set exactly one of risk_per_trade_usd and risk_per_trade_pct")
        if (
            self.trapdoor_pct is not None
            and self.max_drawdown_pct is not None
            and self.trapdoor_pct > self.max_drawdown_pct
        ):
            raise ValueError("trapdoor_pct must not exceed max_drawdown_pct (the lock comes before the halt)")
        if self.default_profile not in self.profiles:
            raise ValueError(f"default_profile {self.default_profile!r} is not one of profiles {sorted(self.profiles)}")
        return self


class FeesConfig(_Section):
    taker: float = Field(0.0026, ge=0, lt=0.05)
    maker: float = Field(0.0016, ge=0, lt=0.05)
    slippage_bps: float = Field(2.0, ge=0, le=500)
    impact_bps_per_volume_pct: float = Field(1.0, ge=0, le=10_000, description="extra bps per 1% of candle volume")
    max_volume_fraction: float = Field(
        0.25, gt=0, le=1, description="a limit order fills at most this share of a candle"
    )
    fill_at: Literal["next_open", "close"] = Field(
        "next_open", description="market orders sent at a candle's close fill at the next open, or at that close"
    )

    @model_validator(mode="after")
    def _a_sale_keeps_a_price(self) -> FeesConfig:
        # Impact counts up to a whole candle's volume (100 x the per-1 % figure); past 10,000 bps in all,
        # a large sale would be priced at nothing.
        worst = self.slippage_bps + 100 * self.impact_bps_per_volume_pct
        if worst >= 10_000:
            raise ValueError(
                f"slippage_bps + 100 x impact_bps_per_volume_pct is {worst:g} bps: a taker selling a whole "
                "candle's volume would get nothing; keep it under 10,000"
            )
        return self


class PortfolioConfig(_Section):
    sizing: Literal["fixed_risk", "pct_equity", "kelly"] = "fixed_risk"
    pct_equity: float = Field(0.10, gt=0, le=1, description="notional per trade for pct_equity sizing")
    kelly_fraction: float = Field(0.25, gt=0, le=1)
    kelly_min_trades: int = Field(20, ge=1, description="fixed-risk sizing until a worker has this many trades")
    max_allocation_per_worker: float = Field(0.25, gt=0, le=1, description="share of equity one worker may hold")
    cash_buffer: float = Field(
        0.005, ge=0, lt=0.5, description="share of cash kept back when sizing, for slippage and next-open gaps"
    )
    fees: FeesConfig = FeesConfig()


class TelemetryConfig(_Section):
    endpoint: str | None = Field(None, description="HTTP URL batches are POSTed to; unset keeps them in memory")
    batch_size: int = Field(100, ge=1, le=10_000)
    timeout_s: float = Field(2.0, gt=0, le=60)
    max_retries: int = Field(3, ge=0, le=10)


class MLConfig(_Section):
    enabled: bool = True
    min_samples: int = Field(50, ge=1)
    veto_below: float = Field(0.0, ge=0, le=1)


class StoreConfig(_Section):
    journal_dir: str = "logs/journal"
    database_url: str = "sqlite:///logs/desk.db"
    fsync: bool = Field(False, description="fsync the journal after every batch (slower, survives power loss)")


class WorkerConfig(_Section):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    symbol: str
    strategy: str
    weight: float = Field(1.0, gt=0, le=100)
    params: dict[str, Any] = Field(default_factory=dict)
    risk: RiskProfile = RiskProfile()
    enabled: bool = True

    @field_validator("strategy")
    @classmethod
    def _slug_well_formed(cls, slug: str) -> str:
        if not SLUG_PATTERN.match(slug):
            raise ValueError(f"strategy slug {slug!r} must be lower_snake_case")
        return slug


class DeskConfig(_Section):
    settings: Settings = Settings()
    feed: FeedConfig = FeedConfig()
    risk: RiskConfig = RiskConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    ml: MLConfig = MLConfig()
    store: StoreConfig = StoreConfig()
    workers: list[WorkerConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _workers_consistent(self) -> DeskConfig:
        names = [w.name for w in self.workers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"worker names must be unique; repeated: {dupes}")
        for index, worker in enumerate(self.workers):
            if worker.symbol not in self.feed.symbols:
                known = self.feed.symbols
                raise ValueError(f"workers[{index}] ({worker.name}): symbol {worker.symbol!r} is not in {known}")
        return self

    def worker(self, name: str) -> WorkerConfig:
        for worker in self.workers:
            if worker.name == name:
                return worker
        raise KeyError(name)

    def config_hash(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _find_secret_keys(node: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if any(word in str(key).lower() for word in SECRET_WORDS):
                found.append(child)
            found.extend(_find_secret_keys(value, child))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_find_secret_keys(value, f"{path}[{index}]"))
    return found


def parse_config(data: Any, source: str = "") -> DeskConfig:
    """Validate already-parsed YAML; raise ConfigError listing every problem with its key path."""
    if data is None:
        raise ConfigError([("", "the file is empty; it needs at least a `workers` list")], source)
    if not isinstance(data, dict):
        raise ConfigError([("", f"the top level must be a mapping, not {type(data).__name__}")], source)
    secrets = _find_secret_keys(data)
    if secrets:
        raise ConfigError(
            [(p, "secrets do not belong in the config file; use environment variables") for p in secrets], source
        )
    try:
        config = DeskConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key"
            elif "input" in error and error["type"] not in ("missing",) and not isinstance(error["input"], dict):
                message = f"{message} (got {error['input']!r})"
            problems.append((_key_path(tuple(error["loc"])), message))
        raise ConfigError(problems, source) from None
    from desk.strategies.registry import validate_worker_strategies  # strategies sit above config

    validate_worker_strategies(config, source)
    return config


def parse_config_text(text: str, source: str = "") -> DeskConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"invalid YAML: {where}{problem}")], source) from None
    return parse_config(data, source)


def load_config(path: str | Path) -> DeskConfig:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read config file: {exc.strerror}")], str(path)) from None
    return parse_config_text(text, str(path))
