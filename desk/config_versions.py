"""Versioned config saves: validate, back up, replace atomically, diff with secrets redacted.

`ConfigHistory` keeps every content the config file has had in
`<config dir>/.history/<stem>.<version><suffix>` (for `configs/config.yaml`:
`configs/.history/config.3.yaml`). Version numbers only ever increase and each
names one file content, so the `version` a `reload_config` command carries (and
the daemon journals in `ConfigChanged`) says exactly which text was loaded.

A save:

1. validates the new text with the same models the daemon uses
   (`desk.config.parse_config_text`), which also refuses secret-looking keys;
   on failure it raises `ConfigError` and touches nothing;
2. backs up the file as it is on disk now, unless the newest version already
   holds that text (a hand edit made outside the dashboard gets its own version);
3. records the new text as the next version and replaces the file atomically
   (temp file in the same directory, fsync, `os.replace`, fsync the directory).

`restart_required` and `live_changes` split the key paths that differ between
two configs into what the running daemon can apply between loop iterations and
what only takes effect after a restart.
"""

from __future__ import annotations

import difflib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desk.config import DeskConfig, parse_config_text
from desk.core.errors import DeskError
from desk.services.logging import REDACTED, SECRET_KEY_WORDS, redact

try:  # POSIX only; without it concurrent saves are not serialised (the daemon targets Linux)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "HISTORY_DIR",
    "ConfigConflictError",
    "ConfigHistory",
    "SavedVersion",
    "VersionInfo",
    "changed_paths",
    "live_changes",
    "redact_text",
    "restart_required",
]

HISTORY_DIR = ".history"

# A YAML / JSON key that names a secret, where a key can stand: at the start of a line (after the indent,
# a list dash, or a `#` when it is commented out) or inside a flow mapping after `{` or `,`. Its value runs
# to the end of a quoted string or to a separator. Prose in comments ("No secrets here: …") is left alone.
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>(?:^[ \t]*(?:#[ \t]*)?(?:-[ \t]+)?|[{,][ \t]*)[\"']?[\w.-]*(?:"
    + "|".join(re.escape(w) for w in SECRET_KEY_WORDS)
    + r")[\w.-]*[\"']?[ \t]*:[ \t]*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,}\]#]+)",
    re.IGNORECASE | re.MULTILINE,
)


class ConfigConflictError(DeskError):
    """The file changed on disk since the editor loaded it; saving would overwrite someone else's edit."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One stored version of the config file."""

    version: int
    saved_wall_ms: int  # the backup file's mtime: when that content was saved
    size_bytes: int
    path: Path


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """The outcome of a save or rollback."""

    version: int  # the version now in the config file
    previous_version: int | None  # the version holding the text it replaced (None: there was no file)
    diff: str  # unified diff old -> new, secrets redacted
    config: DeskConfig  # the validated new config
    changed: bool  # False when the new text equals the old one (nothing was written)


def redact_text(text: str) -> str:
    """Return `text` with secret-looking values removed, for display and for the journal.

    Two rules: the value of a YAML / JSON key that names a secret (`api_key: …`,
    `{"token": …}`, also when commented out) is replaced whatever it is, and
    `desk.services.logging.redact` replaces values of secret environment
    variables and credentials inside URLs (`postgresql://user:pw@host`).
    """
    masked = _SECRET_ASSIGNMENT.sub(lambda m: m.group("key") + REDACTED, text)
    result = redact(masked)
    return result if isinstance(result, str) else masked


class ConfigHistory:
    """Save, list, read and roll back versions of one config file."""

    def __init__(self, config_path: Path | str) -> None:
        # Resolve symlinks so an atomic replace rewrites the real file rather than swapping out the link.
        self.config_path = Path(config_path).resolve()
        self.history_dir = self.config_path.parent / HISTORY_DIR
        suffix = self.config_path.suffix or ".yaml"
        self._stem = self.config_path.stem if self.config_path.suffix else self.config_path.name
        self._suffix = suffix
        self._version_name = re.compile(rf"^{re.escape(self._stem)}\.(\d+){re.escape(suffix)}$")

    # --- reading ---------------------------------------------------------------------------

    def current_text(self) -> str:
        """Return the config file's text as it is on disk now ("" when there is no file)."""
        try:
            return self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def versions(self) -> list[VersionInfo]:
        """Return every stored version, oldest first."""
        if not self.history_dir.is_dir():
            return []
        found: list[VersionInfo] = []
        for entry in self.history_dir.iterdir():
            match = self._version_name.match(entry.name)
            if match is None or not entry.is_file():
                continue
            stat = entry.stat()
            found.append(VersionInfo(int(match.group(1)), stat.st_mtime_ns // 1_000_000, stat.st_size, entry))
        return sorted(found, key=lambda info: info.version)

    def latest_version(self) -> int | None:
        """Return the highest stored version number, or None when there is no history yet."""
        versions = self.versions()
        return versions[-1].version if versions else None

    def current_version(self) -> int | None:
        """Return the newest version whose text is what the file holds now, or None if none is."""
        current = self.current_text()
        for info in reversed(self.versions()):
            if info.path.read_text(encoding="utf-8") == current:
                return info.version
        return None

    def read(self, version: int) -> str:
        """Return the text of one stored version; KeyError if there is no such version."""
        path = self._version_path(version)
        if not path.is_file():
            raise KeyError(f"no version {version} of {self.config_path.name}")
        return path.read_text(encoding="utf-8")

    # --- writing ---------------------------------------------------------------------------

    def save(self, new_text: str, *, expected_current: str | None = None) -> SavedVersion:
        """Validate `new_text`, back up the file, then replace it atomically.

        Raises `ConfigError` (the file untouched) when the text is not a valid
        config, and `ConfigConflictError` when `expected_current` is given and
        the file no longer holds it (another session saved in between).
        """
        config = parse_config_text(new_text, str(self.config_path))
        with self._locked():
            old_text = self.current_text()
            if expected_current is not None and old_text != expected_current:
                raise ConfigConflictError(
                    f"{self.config_path} changed on disk since it was loaded; reload the page and edit again"
                )
            versions = self.versions()
            latest = versions[-1] if versions else None
            latest_text = latest.path.read_text(encoding="utf-8") if latest else None
            exists = self.config_path.exists()
            previous_version = latest.version if latest and exists else None
            next_version = (latest.version if latest else 0) + 1
            if exists and old_text != latest_text:
                # The file holds text no version has (first save, or a hand edit): keep it first.
                self._write_version(next_version, old_text)
                previous_version = next_version
                next_version += 1
            if exists and new_text == old_text and previous_version is not None:
                return SavedVersion(previous_version, previous_version, "", config, changed=False)
            self._write_version(next_version, new_text)
            _write_atomic(self.config_path, new_text, mode=_file_mode(self.config_path))
        return SavedVersion(next_version, previous_version, self.diff(old_text, new_text), config, changed=True)

    def rollback(self, version: int) -> SavedVersion:
        """Make `version` the current config again; validated, backed up and replaced like `save`."""
        return self.save(self.read(version))

    def diff(self, old_text: str, new_text: str) -> str:
        """Return a unified diff old -> new with secret-looking values redacted."""
        lines = difflib.unified_diff(
            redact_text(old_text).splitlines(keepends=True),
            redact_text(new_text).splitlines(keepends=True),
            fromfile=f"{self.config_path.name} (before)",
            tofile=f"{self.config_path.name} (after)",
        )
        # A last line without a newline would glue itself to the next diff line.
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    # --- internals -------------------------------------------------------------------------

    def _version_path(self, version: int) -> Path:
        return self.history_dir / f"{self._stem}.{version}{self._suffix}"

    def _write_version(self, version: int, text: str) -> None:
        path = self._version_path(version)
        if path.exists():  # versions are immutable: a collision means the lock was bypassed
            raise ConfigConflictError(f"version {version} of {self.config_path.name} already exists")
        _write_atomic(path, text, mode=_file_mode(self.config_path))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise saves across sessions and processes (two dashboard tabs, the CLI)."""
        self.history_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            yield
            return
        fd = os.open(self.history_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _file_mode(path: Path) -> int:
    """Keep the file's permissions across a replace (mkstemp would make it 0600)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def _write_atomic(path: Path, text: str, *, mode: int) -> None:
    """Replace `path` with `text` so a reader sees the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself: without it a power cut can bring back the old directory entry."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


# --- what a change needs --------------------------------------------------------------------

# Changes the daemon applies between loop iterations. Everything else needs a restart: a key
# that is not known to be safe to swap under a running loop is treated as needing one.
_LIVE_SECTIONS = ("risk", "portfolio", "ml")
# The broker was built with the fees; the daemon rebuilds a worker whose strategy or symbol changes.
_RESTART_INSIDE_LIVE = ("portfolio.fees",)
_LIVE_WORKER_FIELDS = ("enabled", "params", "risk", "weight", "strategy", "symbol")


def changed_paths(old: DeskConfig, new: DeskConfig) -> list[str]:
    """Return every key path whose value differs, workers keyed by name (`workers[eth-rsi].params.period`).

    Workers are matched by name, so reordering them is not a change; a worker
    added or removed appears as `workers[<name>]`. Lists other than `workers`
    (`feed.symbols`) count as one value.
    """
    old_data, new_data = old.model_dump(mode="json"), new.model_dump(mode="json")
    paths: list[str] = []
    for section in old_data:
        if section == "workers":
            paths.extend(_worker_changes(old_data["workers"], new_data["workers"]))
        else:
            paths.extend(_leaf_changes(old_data[section], new_data[section], section))
    return paths


def restart_required(old: DeskConfig, new: DeskConfig) -> list[str]:
    """Return the changed key paths that take effect only after a daemon restart.

    settings.*, feed.*, store.*, telemetry.* and portfolio.fees are built once
    at start, and so is any key not known to be safe to apply live.
    """
    return [path for path in changed_paths(old, new) if not _is_live(path)]


def live_changes(old: DeskConfig, new: DeskConfig) -> list[str]:
    """Return the changed key paths the daemon applies without a restart.

    Workers added, removed, enabled/disabled, or with a new strategy, symbol,
    params, risk overrides or weight; risk.*, portfolio.* but its fees, and ml.*.
    """
    return [path for path in changed_paths(old, new) if _is_live(path)]


def _is_live(path: str) -> bool:
    if path.startswith(_RESTART_INSIDE_LIVE):
        return False
    if path.split(".", 1)[0].split("[", 1)[0] in _LIVE_SECTIONS:
        return True
    match = re.match(r"^workers\[[^\]]+\](?:\.(?P<field>\w+))?", path)
    if match is None:
        return False
    field = match.group("field")
    return field is None or field in _LIVE_WORKER_FIELDS  # None: the whole worker was added or removed


def _worker_changes(old_workers: list[dict[str, Any]], new_workers: list[dict[str, Any]]) -> list[str]:
    old_by_name = {w["name"]: w for w in old_workers}
    new_by_name = {w["name"]: w for w in new_workers}
    paths: list[str] = []
    for name in [*old_by_name, *(n for n in new_by_name if n not in old_by_name)]:
        prefix = f"workers[{name}]"
        if name not in new_by_name or name not in old_by_name:
            paths.append(prefix)
            continue
        for field in old_by_name[name]:
            if field != "name":
                paths.extend(_leaf_changes(old_by_name[name][field], new_by_name[name].get(field), f"{prefix}.{field}"))
    return paths


def _leaf_changes(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(k for k in new if k not in old)]
        return [p for key in keys for p in _leaf_changes(old.get(key), new.get(key), f"{path}.{key}")]
    return [] if old == new else [path]
