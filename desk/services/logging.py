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
import os
import re
import sys
from collections.abc import Mapping
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_ENV_WORDS",
    "SECRET_KEY_WORDS",
    "configure_logging",
    "get_logger",
    "redact",
]

REDACTED = "***"
SECRET_KEY_WORDS = (
    "api_key",
    "apikey",
    "secret",
    "password",
    "passphrase",
    "token",
    "private_key",
    "authorization",
)
SECRET_ENV_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN")
# Shorter values ("1", "true", "kraken") would redact ordinary words all over the logs.
MIN_SECRET_LENGTH = 6

# `scheme://user:pass@host` — keep the scheme and host so the line stays useful.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
# `?token=abc` / `&api_key=abc`: the parameter name says the value is secret.
_SECRET_QUERY_PARAM = re.compile(
    r"(?P<name>[?&;][^=&;#\s]*(?:" + "|".join(SECRET_KEY_WORDS) + r")[^=&;#\s]*=)[^&;#\s]+",
    re.IGNORECASE,
)
# Marks the handler we install so a second configure_logging replaces it instead of doubling every line.
_HANDLER_MARK = "_desk_json_handler"
# Their INFO lines carry full request URLs; warnings and errors still get through.
_CHATTY_HTTP_LOGGERS = ("httpx", "httpcore")
_LEADING_KEYS = ("timestamp", "level", "logger", "event")


def _is_secret_key(key: object) -> bool:
    """True when a mapping key names a secret (`api_key`, `X-Authorization`, `db_password`…)."""
    name = str(key).lower()
    return any(word in name for word in SECRET_KEY_WORDS)


def _env_secrets() -> list[str]:
    """Values of secret-looking environment variables, longest first.

    Read on every call rather than cached: the environment can change after
    logging is configured (tests, credential reloads), and a stale cache would
    silently leak the new value. Longest first so a secret that contains
    another one is replaced whole.
    """
    values = {
        value
        for name, value in os.environ.items()
        if len(value) >= MIN_SECRET_LENGTH and any(word in name.upper() for word in SECRET_ENV_WORDS)
    }
    return sorted(values, key=len, reverse=True)


def _redact_str(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text:
        text = _URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    if "=" in text:
        text = _SECRET_QUERY_PARAM.sub(rf"\g<name>{REDACTED}", text)
    return text


def _redact(value: object, secrets: list[str], stringify: bool) -> object:
    """Walk `value`; with `stringify`, objects JSON cannot hold become redacted strings.

    `stringify` is for the log pipeline: the JSON renderer would otherwise call
    `str()` on such objects *after* redaction, and that string (an exception,
    a URL object) may well contain a secret.
    """
    if isinstance(value, str):
        return _redact_str(value, secrets)
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _is_secret_key(key) else _redact(item, secrets, stringify) for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact(item, secrets, stringify) for item in value]
        if stringify or type(value) not in (tuple, set, frozenset):
            return items  # JSON has only arrays; subclasses (namedtuples) may not rebuild from one iterable
        return type(value)(items)
    if value is None or isinstance(value, bool | int | float):
        return value
    if stringify:
        return _redact_str(str(value), secrets)
    return value


def redact(value: object) -> object:
    """Return `value` with secrets replaced by `REDACTED`; the input is never modified.

    Dicts (any mapping, returned as a dict), lists, tuples and sets are walked
    recursively; values under secret-named keys are replaced whole; strings
    have secret environment values and URL credentials replaced. Other objects
    are returned unchanged — redact `str(obj)` when you need their text, e.g.
    `redact(str(exc))` before putting an exception message in an event.
    """
    return _redact(value, _env_secrets(), stringify=False)


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
