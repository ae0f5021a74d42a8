"""Errors the desk raises on purpose; each names what was wrong."""

from __future__ import annotations


class DeskError(Exception):
    """Base for every error the desk raises deliberately."""


class ConfigError(DeskError):
    """The configuration is invalid; `problems` lists (key path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{path}: {message}" if path else message for path, message in problems]
        where = f"{source}: " if source else ""
        super().__init__(where + "invalid configuration\n  " + "\n  ".join(lines))


class StrategyLoadError(DeskError):
    """A strategy slug does not name a loadable strategy."""


class JournalError(DeskError):
    """The journal cannot be read or written."""


class BrokerError(DeskError):
    """The broker failed in a way the caller must handle."""
