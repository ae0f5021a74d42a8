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


class ReplayDataError(DeskError):
    """A candle file cannot be replayed; the message names the file and, per problem, the row, line and column."""

    def __init__(self, source: str, problems: list[str], total: int | None = None) -> None:
        self.source = source
        self.problems = list(problems)
        # More problems may exist than are listed: the loader reports the first few only.
        self.total = max(total if total is not None else 0, len(self.problems))
        if len(self.problems) == 1 and self.total == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            more = self.total - len(self.problems)
            tail = f"\n  ... and {more} more" if more else ""
            message = f"{source}: {self.total} problems in the candle data:\n  " + "\n  ".join(self.problems) + tail
        super().__init__(message)
