"""A deterministic simulated crypto market: correlated symbols, regime switches, jumps.

The model, per symbol i and minute t, in log price:

    x[t, i] = drift(regime) + sigma_i * vol(regime) * (load_i * f[t] + sqrt(1 - load_i^2) * e[t, i])
              - kappa * (logp - anchor)                    # only in the "range" regime
              + market jump + idiosyncratic jump

* `f` is a market factor shared by every symbol, `e` idiosyncratic noise; the
  factor loadings put the correlation of majors at about 0.7.
* Regimes: a market-wide stress chain (calm or stressed, stressed means vol x2.5
  for every symbol at once, because crypto sell-offs are market wide) and, per
  symbol, a direction chain (trend up, trend down, range). `regime(symbol)` is
  "high_vol" while stressed, else the symbol's direction regime. Mean lengths are
  hours (see `_STRESS_MEAN_MINUTES`, `_DIRECTION_MEAN_MINUTES`).
* Jumps: market-wide jumps hit every symbol in the same direction; idiosyncratic
  ones hit one symbol. Sizes scale with the symbol's daily vol (1-3 % for BTC).
* The diffusion is scaled so that regimes plus jumps together still give each
  symbol its nominal annualised vol on average.

Determinism: every symbol has its own PCG64 stream (keyed by seed and symbol
name) and the market its own (`PCG64(seed)`), and each stream is drawn in fixed
blocks of `BLOCK_MINUTES` minutes with a fixed number of numbers per minute. The
candles therefore depend only on (seed, symbols, start_ms), and a symbol's path
does not even change when other symbols are added. `seek` regenerates the blocks
it skips (cheaply: skipped blocks are never turned into candles), so it returns
exactly what a straight run would.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from desk.core.types import MINUTE_MS, Candle, Market

__all__ = ["BLOCK_MINUTES", "REGIMES", "SimulatedMarket", "market_rules"]

# Minutes generated per RNG draw. Generation always happens in whole blocks, so the
# block size is part of the determinism contract: changing it changes every path.
BLOCK_MINUTES = 1024

MINUTES_PER_YEAR = 525_600
MINUTES_PER_DAY = 1_440

# Regime codes, as stored in the per-minute arrays; `REGIMES[code]` is the public name.
TREND_UP, TREND_DOWN, RANGE, HIGH_VOL = 0, 1, 2, 3
REGIMES: tuple[str, ...] = ("trend_up", "trend_down", "range", "high_vol")

# Stress chain: calm (0) or stressed (1). A stressed spell lasts 2 h on average and
# comes about every 14 h, so roughly 1/8 of the time is stressed.
_STRESS_MEAN_MINUTES = (14 * 60, 2 * 60)
_STRESS_VOL = 2.5

# Direction chain per symbol: trend up, trend down, range. Mean lengths in minutes,
# and where a regime goes when it ends (rows sum to 1, no self transitions): trends
# mostly stall into a range rather than reverse outright.
_DIRECTION_MEAN_MINUTES = (6 * 60, 6 * 60, 8 * 60)
_DIRECTION_NEXT = ((0.0, 0.4, 0.6), (0.4, 0.0, 0.6), (0.5, 0.5, 0.0))

# Volatility multiplier and drift sign per effective regime (indexed by regime code).
_REGIME_VOL = np.array([1.0, 1.0, 0.75, _STRESS_VOL])
_REGIME_DRIFT_SIGN = np.array([1.0, -1.0, 0.0, 0.0])
# Trend drift per minute as a fraction of the calm per-minute sigma: over a 6 h
# trend that is a move of about 1.5x the noise, visible but not free money.
_TREND_DRIFT = 0.06
# Mean reversion speed in the range regime: a deviation from the level halves in 90 minutes.
_RANGE_KAPPA = math.log(2) / 90

# Jumps per day: market-wide (all symbols) and per symbol. Size = daily sigma x
# _JUMP_SCALE x (1 + |z|), i.e. between 0.3 and about 1 daily sigma.
_MARKET_JUMPS_PER_DAY = 0.5
_IDIO_JUMPS_PER_DAY = 0.3
_JUMP_SCALE = 0.3
# E[(s (1 + |z|))^2] for standard normal z, in units of daily variance.
_JUMP_SQUARE_MEAN = _JUMP_SCALE**2 * (2.0 + 2.0 * math.sqrt(2.0 / math.pi))

# Volume is about this much quote value per minute in calm markets, boosted while stressed.
_STRESS_VOLUME = 1.5
_VOLUME_NOISE = 0.5


@dataclass(frozen=True, slots=True)
class _Profile:
    """How one base asset behaves against a USD-like quote."""

    annual_vol: float
    factor_loading: float
    usd_volume_per_minute: float


_KNOWN_PROFILES: dict[str, _Profile] = {
    "BTC": _Profile(annual_vol=0.60, factor_loading=0.90, usd_volume_per_minute=200_000.0),
    "ETH": _Profile(annual_vol=0.75, factor_loading=0.85, usd_volume_per_minute=100_000.0),
    "SOL": _Profile(annual_vol=1.00, factor_loading=0.80, usd_volume_per_minute=50_000.0),
}
_DEFAULT_PROFILE = _Profile(annual_vol=0.90, factor_loading=0.75, usd_volume_per_minute=10_000.0)

# Starting prices in USD; fiat and stablecoins included so crosses such as BTC/EUR price sensibly.
_KNOWN_USD_PRICES: dict[str, float] = {
    "BTC": 60_000.0,
    "ETH": 3_000.0,
    "SOL": 150.0,
    "USD": 1.0,
    "USDT": 1.0,
    "USDC": 1.0,
    "EUR": 1.08,
    "GBP": 1.27,
}
_USD_LIKE = frozenset({"USD", "USDT", "USDC", "EUR", "GBP"})

# Kraken's published rules for the majors: (price_decimals, amount_decimals, min_amount, min_cost).
_KRAKEN_RULES: dict[str, tuple[int, int, float, float]] = {
    "BTC/USD": (1, 8, 0.0001, 0.5),
    "ETH/USD": (2, 8, 0.002, 0.5),
    "SOL/USD": (2, 8, 0.02, 0.5),
}
_DEFAULT_AMOUNT_DECIMALS = 8
_DEFAULT_MIN_COST = 0.5
_MIN_ORDER_USD = 5.0
_PRICE_SIGNIFICANT_DIGITS = 5


def _name_fraction(name: str) -> float:
    """A stable number in [0, 1) derived from a name (Python's `hash` is salted per process)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _name_key(name: str) -> int:
    """A stable 64-bit integer derived from a name, used to key a symbol's RNG stream."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _usd_price(asset: str) -> float:
    """Starting USD price of an asset: known table, else log-uniform in [0.01, 1000) from the name."""
    known = _KNOWN_USD_PRICES.get(asset.upper())
    if known is not None:
        return known
    return 10.0 ** (-2.0 + 5.0 * _name_fraction(asset.upper()))


def _round_significant(value: float, digits: int) -> float:
    """Round a positive value to `digits` significant digits."""
    return round(value, digits - 1 - math.floor(math.log10(value)))


def _parse_symbol(symbol: str) -> tuple[str, str]:
    """Split "BASE/QUOTE"; anything else is a configuration mistake worth failing on."""
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote or "/" in quote:
        raise ValueError(f"symbol {symbol!r} is not of the form BASE/QUOTE")
    return base, quote


def market_rules(symbol: str, price: float) -> Market:
    """Derive Kraken-like exchange rules for "BASE/QUOTE" trading near `price` (in the quote currency).

    Kraken's published rules for the majors; otherwise price decimals that fit the
    price level and a minimum amount worth about 5 USD at that price. Feeds that
    know a real price (a replay) use this; the simulated market derives the same
    rules from its own starting prices.
    """
    base, quote = _parse_symbol(symbol)
    if not price > 0:
        raise ValueError(f"price for {symbol} must be positive, got {price}")
    return _derive_market(symbol, base, quote, price, base_usd=price * _usd_price(quote))


def _derive_market(symbol: str, base: str, quote: str, price: float, base_usd: float | None = None) -> Market:
    """Kraken's rules for the majors; otherwise rules that fit the price level.

    `base_usd` is the base asset's USD price for the minimum amount; by default the
    simulated market's table (a replay passes the price it actually saw).
    """
    rules = _KRAKEN_RULES.get(symbol)
    if rules is not None:
        price_decimals, amount_decimals, min_amount, min_cost = rules
    else:
        # Enough decimals to show _PRICE_SIGNIFICANT_DIGITS digits, at least one, as Kraken does.
        price_decimals = min(10, max(1, _PRICE_SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(price))))
        amount_decimals = _DEFAULT_AMOUNT_DECIMALS
        usd = _usd_price(base) if base_usd is None else base_usd
        min_amount = max(_round_significant(_MIN_ORDER_USD / usd, 1), 10.0**-amount_decimals)
        min_cost = _DEFAULT_MIN_COST
    return Market(
        symbol=symbol,
        base=base,
        quote=quote,
        amount_decimals=amount_decimals,
        price_decimals=price_decimals,
        min_amount=min_amount,
        min_cost=min_cost,
    )


def _stationary(mean_minutes: tuple[int, ...], next_regime: tuple[tuple[float, ...], ...]) -> list[float]:
    """Share of time a regime chain spends in each state.

    The chain stays in state k for a geometric time of mean `mean_minutes[k]`, then
    moves by `next_regime[k]`. Time share is proportional to the mean length times
    the stationary distribution of the move chain (nu = nu @ next_regime), which is
    solved here in plain Python rather than with LAPACK so the constants, and hence
    every candle, are bit-identical on every machine.
    """
    size = len(mean_minutes)
    # Rows of (next_regime^T - I) nu = 0, the last one replaced by sum(nu) = 1.
    system = [[next_regime[col][row] - (1.0 if row == col else 0.0) for col in range(size)] for row in range(size)]
    system[-1] = [1.0] * size
    rhs = [0.0] * (size - 1) + [1.0]
    for pivot in range(size):  # Gauss-Jordan with partial pivoting
        best = max(range(pivot, size), key=lambda row: abs(system[row][pivot]))
        system[pivot], system[best] = system[best], system[pivot]
        rhs[pivot], rhs[best] = rhs[best], rhs[pivot]
        for row in range(size):
            if row != pivot:
                factor = system[row][pivot] / system[pivot][pivot]
                system[row] = [a - factor * b for a, b in zip(system[row], system[pivot], strict=True)]
                rhs[row] -= factor * rhs[pivot]
    nu = [rhs[k] / system[k][k] for k in range(size)]
    weights = [n * m for n, m in zip(nu, mean_minutes, strict=True)]
    total = math.fsum(weights)
    return [w / total for w in weights]


_STRESS_PI = _stationary(_STRESS_MEAN_MINUTES, ((0.0, 1.0), (1.0, 0.0)))
_DIRECTION_PI = _stationary(_DIRECTION_MEAN_MINUTES, _DIRECTION_NEXT)


def _regime_variance_factor() -> float:
    """Average squared vol multiplier over the regimes' stationary mix.

    Dividing the diffusion by its square root keeps each symbol's long-run vol at
    its nominal value however the regime parameters are tuned.
    """
    calm = math.fsum(pi * float(_REGIME_VOL[k]) ** 2 for k, pi in enumerate(_DIRECTION_PI))
    return _STRESS_PI[0] * calm + _STRESS_PI[1] * float(_REGIME_VOL[HIGH_VOL]) ** 2


def _sample_index(u: float, weights: list[float]) -> int:
    """Inverse-CDF draw of an index from `weights` (summing to 1) with one uniform, so draw counts stay fixed."""
    cumulative = 0.0
    for index, weight in enumerate(weights):
        cumulative += weight
        if u < cumulative:
            return index
    return len(weights) - 1  # u within rounding of 1


# Per symbol: (opens, highs, lows, closes, volumes, regime codes), one entry per minute of a block.
_Rows = list[tuple[list[float], list[float], list[float], list[float], list[float], list[int]]]


@dataclass(slots=True)
class _Block:
    """`BLOCK_MINUTES` simulated minutes for every symbol, in raw (unrounded) form.

    Columns are symbols. Turning them into rounded Python lists costs more than the
    simulation itself, so it happens lazily: blocks that `seek` skips never pay it.
    """

    index: int
    prev_close: list[float]  # rounded close before the block: the block's first open
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray
    volume: np.ndarray
    regime: np.ndarray
    rows: _Rows | None = field(default=None)


class SimulatedMarket:
    """A deterministic, infinite, correlated multi-symbol market (implements `Feed`).

    The same (seed, symbols, start_ms) always produce the same candles. The first
    candle opens at `start_ms`; candles never run out, so `next_candles` never
    returns None.
    """

    def __init__(self, symbols: list[str], seed: int, start_ms: int) -> None:
        if not symbols:
            raise ValueError("the simulated market needs at least one symbol")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate symbols in {symbols}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if start_ms % MINUTE_MS != 0:
            raise ValueError(f"start_ms {start_ms} is not on a minute boundary")
        self._symbols = list(symbols)
        self._index = {symbol: i for i, symbol in enumerate(self._symbols)}
        self._seed = seed
        self._start_ms = start_ms

        parsed = [_parse_symbol(symbol) for symbol in self._symbols]
        start_prices = [_usd_price(base) / _usd_price(quote) for base, quote in parsed]
        self._markets = {
            symbol: _derive_market(symbol, base, quote, price)
            for symbol, (base, quote), price in zip(self._symbols, parsed, start_prices, strict=True)
        }
        # Known assets keep their character only against USD-like quotes; a cross such as
        # ETH/BTC is a different animal, so it gets the generic profile.
        profiles = [
            _KNOWN_PROFILES.get(base.upper(), _DEFAULT_PROFILE) if quote.upper() in _USD_LIKE else _DEFAULT_PROFILE
            for base, quote in parsed
        ]
        self._price_decimals = [self._markets[s].price_decimals for s in self._symbols]
        self._amount_decimals = [self._markets[s].amount_decimals for s in self._symbols]
        # One tick is the floor for any price: a rounded price of 0 would break every consumer.
        self._ticks = [10.0**-d for d in self._price_decimals]
        self._start_close = [
            max(round(p, d), t) for p, d, t in zip(start_prices, self._price_decimals, self._ticks, strict=True)
        ]
        self._start_logp = [math.log(p) for p in start_prices]

        annual_vol = np.array([p.annual_vol for p in profiles])
        nominal_minute = annual_vol / math.sqrt(MINUTES_PER_YEAR)
        jump_share = (_MARKET_JUMPS_PER_DAY + _IDIO_JUMPS_PER_DAY) * _JUMP_SQUARE_MEAN
        # Per-minute diffusion sigma in a calm trend regime, after leaving room for jumps and regimes.
        self._sigma = nominal_minute * math.sqrt((1.0 - jump_share) / _regime_variance_factor())
        self._drift = _TREND_DRIFT * self._sigma
        self._daily_sigma = annual_vol / math.sqrt(MINUTES_PER_YEAR / MINUTES_PER_DAY)
        self._loading = np.array([p.factor_loading for p in profiles])
        self._idio_weight = np.sqrt(1.0 - self._loading**2)
        # Quote value traded per minute, in the pair's quote currency.
        self._quote_volume = np.array(
            [p.usd_volume_per_minute / _usd_price(quote) for p, (_, quote) in zip(profiles, parsed, strict=True)]
        )

        stress_leave = [1.0 / m for m in _STRESS_MEAN_MINUTES]
        self._stress_leave = stress_leave
        self._direction_leave = [1.0 / m for m in _DIRECTION_MEAN_MINUTES]
        self._direction_next_cdf = [np.cumsum(row).tolist() for row in _DIRECTION_NEXT]
        self._symbol_keys = [_name_key(symbol) for symbol in self._symbols]

        self._reset()

    # ----------------------------------------------------------------- Feed API

    @property
    def symbols(self) -> list[str]:
        """The symbols served, in candle order (a copy; the list is fixed at construction)."""
        return list(self._symbols)

    def markets(self) -> dict[str, Market]:
        """Exchange rules per symbol: Kraken's for BTC/ETH/SOL against USD, derived otherwise."""
        return dict(self._markets)

    def next_candles(self) -> list[Candle]:
        """The next minute's candle for every symbol, in `symbols` order. Never exhausted."""
        minute = self._minute
        if self._block is None or minute >= (self._block.index + 1) * BLOCK_MINUTES:
            self._generate_next_block()
        block = self._block
        assert block is not None  # _generate_next_block always sets it
        rows = self._rows(block)
        j = minute - block.index * BLOCK_MINUTES
        ts = self._start_ms + minute * MINUTE_MS
        self._minute = minute + 1
        return [
            Candle(symbol, ts, opens[j], highs[j], lows[j], closes[j], volumes[j])
            for symbol, (opens, highs, lows, closes, volumes, _) in zip(self._symbols, rows, strict=True)
        ]

    def seek(self, after_ts: int) -> None:
        """Position the feed so `next_candles` returns the first minute whose open is after `after_ts`.

        Seeking forward continues from the current position; seeking back restarts
        from `start_ms`. Either way the minutes in between are regenerated, not
        skipped, which is what keeps the candles identical to a straight run.
        """
        target = 0 if after_ts < self._start_ms else (after_ts - self._start_ms) // MINUTE_MS + 1
        if target == 0:
            self._reset()
            return
        # Hold the block containing the last served minute, so price() and regime() can answer.
        target_block = (target - 1) // BLOCK_MINUTES
        if self._block is not None and self._block.index > target_block:
            self._reset()
        while self._block is None or self._block.index < target_block:
            self._generate_next_block()
        self._minute = target

    # ------------------------------------------------------------- inspection

    def regime(self, symbol: str) -> str:
        """The regime the symbol's last served candle was drawn in (before any: the starting regime).

        One of "trend_up", "trend_down", "range", "high_vol".
        """
        i = self._symbol_index(symbol)
        last = self._minute - 1
        if last < 0 or self._block is None:
            return REGIMES[self._initial_regime[i]]
        return REGIMES[self._rows(self._block)[i][5][last - self._block.index * BLOCK_MINUTES]]

    def price(self, symbol: str) -> float:
        """The symbol's last close (before any candle: the rounded starting price)."""
        i = self._symbol_index(symbol)
        last = self._minute - 1
        if last < 0 or self._block is None:
            return self._start_close[i]
        return self._rows(self._block)[i][3][last - self._block.index * BLOCK_MINUTES]

    # --------------------------------------------------------------- internals

    def _symbol_index(self, symbol: str) -> int:
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"{symbol!r} is not simulated; symbols are {self._symbols}") from None

    def _reset(self) -> None:
        """Rewind to `start_ms`: fresh RNG streams and the starting state."""
        self._market_rng = np.random.Generator(np.random.PCG64(self._seed))
        # np.random.SeedSequence mixes seed and name key, so each symbol's stream is independent
        # of which other symbols exist; its path only depends on the market stream and itself.
        self._symbol_rngs = [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence([self._seed, key]))) for key in self._symbol_keys
        ]
        # The starting regimes are drawn from the chains' stationary mix; one uniform each.
        self._stress = _sample_index(float(self._market_rng.random()), _STRESS_PI)
        self._direction = [_sample_index(float(rng.random()), _DIRECTION_PI) for rng in self._symbol_rngs]
        self._initial_regime = [HIGH_VOL if self._stress else d for d in self._direction]
        self._prev_regime = list(self._initial_regime)
        self._logp = list(self._start_logp)
        self._anchor = list(self._start_logp)
        self._last_close = list(self._start_close)
        self._block: _Block | None = None
        self._minute = 0

    def _generate_next_block(self) -> None:
        """Simulate the next `BLOCK_MINUTES` minutes for all symbols and advance the generator state."""
        size = BLOCK_MINUTES
        count = len(self._symbols)
        index = 0 if self._block is None else self._block.index + 1

        # Fixed draws per block, always in this order: that is the determinism contract.
        market_normal = self._market_rng.standard_normal((2, size))  # factor, jump size
        market_uniform = self._market_rng.random((2, size))  # stress transition, jump occurrence
        normal = np.empty((3, size, count))  # idiosyncratic noise, jump size, volume noise
        uniform = np.empty((4, size, count))  # direction transition, jump occurrence, bridge high, bridge low
        for i, rng in enumerate(self._symbol_rngs):
            normal[:, :, i] = rng.standard_normal((3, size))
            uniform[:, :, i] = rng.random((4, size))

        stressed = np.array(self._run_stress_chain(market_uniform[0].tolist()), dtype=bool)
        direction = np.column_stack(
            [self._run_direction_chain(i, uniform[0, :, i].tolist()) for i in range(count)]
        ).astype(np.int8)
        regime = np.where(stressed[:, None], np.int8(HIGH_VOL), direction)

        sigma = self._sigma[None, :] * _REGIME_VOL[regime]
        shock = self._loading * market_normal[0][:, None] + self._idio_weight * normal[0]
        market_jump = np.where(
            market_uniform[1] < _MARKET_JUMPS_PER_DAY / MINUTES_PER_DAY, self._jump_size(market_normal[1]), 0.0
        )
        idio_jump = np.where(uniform[1] < _IDIO_JUMPS_PER_DAY / MINUTES_PER_DAY, self._jump_size(normal[1]), 0.0)
        base_return = (
            self._drift[None, :] * _REGIME_DRIFT_SIGN[regime]
            + sigma * shock
            + (market_jump[:, None] + idio_jump) * self._daily_sigma[None, :]
        )

        # Read the previous block's last log price before _apply_mean_reversion moves it on.
        block_start_logp = np.array(self._logp)[None, :]
        returns, logp = self._apply_mean_reversion(base_return, regime)
        prev_logp = np.vstack([block_start_logp, logp[:-1]])
        # Brownian-bridge extremes: for a bridge ending at x with variance s^2, the maximum m
        # satisfies P(M > m) = exp(-2 m (m - x) / s^2); inverting with a uniform gives the
        # draw below, which is always >= max(0, x) (and the minimum <= min(0, x)).
        variance = sigma**2
        spread_high = np.sqrt(returns**2 - 2.0 * variance * np.log1p(-uniform[2]))
        spread_low = np.sqrt(returns**2 - 2.0 * variance * np.log1p(-uniform[3]))
        close = np.exp(logp)
        high = np.exp(prev_logp + 0.5 * (returns + spread_high))
        low = np.exp(prev_logp + 0.5 * (returns - spread_low))
        # Volume grows with the size of the move and while stressed; lognormal noise with mean 1.
        activity = 0.5 + np.abs(returns) / self._sigma[None, :]
        volume = (
            self._quote_volume[None, :]
            / close
            * activity
            * np.where(stressed[:, None], _STRESS_VOLUME, 1.0)
            * np.exp(_VOLUME_NOISE * normal[2] - 0.5 * _VOLUME_NOISE**2)
        )

        self._block = _Block(
            index=index,
            prev_close=self._last_close,
            close=close,
            high=high,
            low=low,
            volume=volume,
            regime=regime,
        )
        # Carry the state into the next block. The rounded last close is computed exactly as
        # _rows computes closes, so the next block's first open equals this block's last close.
        self._last_close = [
            max(round(float(close[-1, i]), d), t)
            for i, (d, t) in enumerate(zip(self._price_decimals, self._ticks, strict=True))
        ]
        self._prev_regime = [int(r) for r in regime[-1]]

    @staticmethod
    def _jump_size(z: np.ndarray) -> np.ndarray:
        """Signed jump size in daily sigmas: between 0.3 and ~1, sign from z."""
        return np.copysign(_JUMP_SCALE * (1.0 + np.abs(z)), z)

    def _run_stress_chain(self, uniforms: list[float]) -> list[int]:
        """Step the market-wide calm/stressed chain once per minute; returns the state per minute."""
        state = self._stress
        leave = self._stress_leave
        states = []
        for u in uniforms:
            if u < leave[state]:
                state = 1 - state
            states.append(state)
        self._stress = state
        return states

    def _run_direction_chain(self, i: int, uniforms: list[float]) -> list[int]:
        """Step symbol i's direction chain; one uniform decides both whether and where to move."""
        state = self._direction[i]
        leave = self._direction_leave
        next_cdf = self._direction_next_cdf
        states = []
        for u in uniforms:
            p = leave[state]
            if u < p:
                # Given u < p, u / p is uniform on [0, 1): reuse it to pick the next regime.
                v = u / p
                cdf = next_cdf[state]
                state = 0 if v < cdf[0] else (1 if v < cdf[1] else 2)
            states.append(state)
        self._direction[i] = state
        return states

    def _apply_mean_reversion(self, base_return: np.ndarray, regime: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add the range regime's pull towards its level and integrate log prices.

        This is the one path-dependent step, so it runs as a scalar loop; the level is
        the log price when the symbol entered the range regime.
        """
        size, count = base_return.shape
        returns = np.empty((size, count))
        logp = np.empty((size, count))
        for i in range(count):
            lp = self._logp[i]
            anchor = self._anchor[i]
            previous = self._prev_regime[i]
            xs: list[float] = []
            lps: list[float] = []
            for x, r in zip(base_return[:, i].tolist(), regime[:, i].tolist(), strict=True):
                if r == RANGE:
                    if previous != RANGE:
                        anchor = lp
                    x -= _RANGE_KAPPA * (lp - anchor)
                lp += x
                xs.append(x)
                lps.append(lp)
                previous = r
            returns[:, i] = xs
            logp[:, i] = lps
            self._logp[i] = lp
            self._anchor[i] = anchor
        return returns, logp

    def _rows(self, block: _Block) -> _Rows:
        """Rounded (opens, highs, lows, closes, volumes, regimes) per symbol, built once per block.

        Python's `round` is used, not numpy's, so prices equal `Market.round_price` of
        themselves exactly.
        """
        if block.rows is not None:
            return block.rows
        rows = []
        for i, (d, tick, ad) in enumerate(zip(self._price_decimals, self._ticks, self._amount_decimals, strict=True)):
            closes = [max(round(v, d), tick) for v in block.close[:, i].tolist()]
            opens = [block.prev_close[i], *closes[:-1]]
            highs = [max(round(v, d), o, c) for v, o, c in zip(block.high[:, i].tolist(), opens, closes, strict=True)]
            lows = [
                max(min(round(v, d), o, c), tick)
                for v, o, c in zip(block.low[:, i].tolist(), opens, closes, strict=True)
            ]
            lot = 10.0**-ad
            volumes = [max(round(v, ad), lot) for v in block.volume[:, i].tolist()]
            rows.append((opens, highs, lows, closes, volumes, block.regime[:, i].tolist()))
        block.rows = rows
        return rows
