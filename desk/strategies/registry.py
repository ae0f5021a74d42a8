"""Load strategies by slug: `desk/strategies/<slug>.py` exposing `<Slug>Strategy`."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

import desk.strategies as strategies_package
from desk.core.errors import ConfigError, StrategyLoadError
from desk.strategies.base import Strategy

if TYPE_CHECKING:
    from desk.config import DeskConfig

# Modules in the package that are not strategies.
_NOT_STRATEGIES = frozenset({"base", "registry", "indicators"})


def class_name_for(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("_")) + "Strategy"


def available_slugs() -> list[str]:
    """Every module in desk/strategies that is a strategy, sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(strategies_package.__path__)
        if info.name not in _NOT_STRATEGIES and not info.name.startswith("_")
    )


def strategy_class(slug: str) -> type[Strategy]:
    if slug not in available_slugs():
        raise StrategyLoadError(f"unknown strategy {slug!r}; available: {', '.join(available_slugs())}")
    module = importlib.import_module(f"desk.strategies.{slug}")
    cls = getattr(module, class_name_for(slug), None)
    if cls is None:
        raise StrategyLoadError(f"desk/strategies/{slug}.py does not define {class_name_for(slug)}")
    return cls


def build_strategy(slug: str, params: dict[str, Any]) -> Strategy:
    """Instantiate a strategy from its slug and raw params (validated by its Params model)."""
    cls = strategy_class(slug)
    return cls(cls.Params.model_validate(params))


def validate_worker_strategies(config: DeskConfig, source: str = "") -> None:
    """Check every worker's slug and params; raise one ConfigError listing all problems."""
    problems: list[tuple[str, str]] = []
    for index, worker in enumerate(config.workers):
        path = f"workers[{index}]"
        try:
            cls = strategy_class(worker.strategy)
        except StrategyLoadError as exc:
            problems.append((f"{path}.strategy", str(exc)))
            continue
        try:
            cls.Params.model_validate(worker.params)
        except ValidationError as exc:
            for error in exc.errors():
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
                message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append((f"{path}.params{loc}", f"{message} (worker {worker.name})"))
    if problems:
        raise ConfigError(problems, source)
