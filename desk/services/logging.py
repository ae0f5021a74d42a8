"""Structured logging: JSON lines on stderr with secrets redacted before anything is written.

`configure_logging` routes both structlog and the standard library's `logging`
(httpx, ccxt, SQLAlchemy…) through one handler, so every line on stderr is JSON
and every line passes the same redaction processor. Redaction is the last step
before rendering: nothing a caller logs — a value, a nested dict, an exception
message or traceback — reaches the stream without going through `redact`.

Two rules decide what is secret:

* a mapping key whose name contains one of `SECRET_KEY_WORDS` has its value
  replaced by `REDACTED`, whatever the value is;
* any string that contains the value of an environment variable whose NAME
  contains one of `SECRET_ENV_WORDS` (at least `MIN_SECRET_LENGTH` characters)
  has that value replaced, wherever it appears in the string.

Credentials inside URLs (`user:pass@host`, `?token=…`) are scrubbed too, since
HTTP libraries like to log the URLs they request.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from desk.core.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    SECRET_ENV_WORDS,
    SECRET_KEY_WORDS,
    _env_secrets,
    _is_secret_key,
    _redact,
    redact,
)

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_ENV_WORDS",
    "SECRET_KEY_WORDS",
    "configure_logging",
    "get_logger",
    "redact",
]

# Marks the handler we install so a second configure_logging replaces it instead of doubling every line.
_HANDLER_MARK = "_desk_json_handler"
# Their INFO lines carry full request URLs; warnings and errors still get through.
_CHATTY_HTTP_LOGGERS = ("httpx", "httpcore")
_LEADING_KEYS = ("timestamp", "level", "logger", "event")


def _redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact the whole event, turning non-JSON values into redacted strings."""
    secrets = _env_secrets()
    # The envelope first so a human scanning the stream (or `cut`) sees when/what before the details.
    keys = [key for key in _LEADING_KEYS if key in event_dict]
    keys += [key for key in event_dict if key not in _LEADING_KEYS]
    return {key: REDACTED if _is_secret_key(key) else _redact(event_dict[key], secrets, stringify=True) for key in keys}


def _parse_level(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return number


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send structlog and stdlib logging to `stream` (default: `sys.stderr`) as redacted JSON lines.

    Each line carries `timestamp` (ISO 8601, UTC), `level`, `logger` and
    `event`, plus whatever the caller bound. Calling it again replaces the
    previous set-up (level and stream) rather than adding a second handler.
    `stream` is resolved at call time, not import time, so a replaced
    `sys.stderr` (pytest's capture, a daemoniser) is honoured.
    """
    number = _parse_level(level)
    # Shared by structlog's own events and by records from stdlib loggers (foreign_pre_chain).
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # drop disabled levels before doing any work
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Module-level loggers must follow a later reconfiguration, so no caching.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact_processor,  # last before rendering: nothing reaches the stream unredacted
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(number)
    for name in _CHATTY_HTTP_LOGGERS:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger whose lines carry `logger=name`.

    Safe to call at import time: the logger is resolved lazily, so it follows
    whatever `configure_logging` later sets up (until then structlog's
    unredacted defaults apply, so the daemon configures logging first thing).
    """
    return structlog.stdlib.get_logger(name)
