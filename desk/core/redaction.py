"""Redaction of secrets: the one place that decides what must never be written anywhere.

Every layer uses it: the log pipeline, the journal's error texts, the control
room. Two rules decide what is secret: a mapping key whose name contains one of
`SECRET_KEY_WORDS`, and any text containing the value of an environment
variable whose NAME contains one of `SECRET_ENV_WORDS` (at least
`MIN_SECRET_LENGTH` characters). Credentials inside URLs are scrubbed too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

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
