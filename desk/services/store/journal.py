"""The journal: append-only JSONL daily files, the desk's source of truth.

One record per line, files named `YYYY-MM-DD.jsonl` by the UTC day of each
record's `ts_event`. Seqs strictly increase through the files in name order, so
reading the files in order reads the journal in order. A crash can leave at
most one torn line (the tail of the batch being written): readers skip it and
the next writer truncates it away before appending.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import structlog

from desk.core.errors import JournalError
from desk.services.store.encoding import encode_json_bytes

try:  # Unix only; elsewhere the desk runs without the single-writer guard.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal"]

_log = structlog.get_logger(__name__)

_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
_DAY_MS = 86_400_000
# How far back to look at a time for the start of a file's last line.
_TAIL_CHUNK = 64 * 1024


class Journal:
    """Append-only JSONL journal in `directory`; see the module docstring for the layout.

    Constructing a Journal touches nothing, so readers (the dashboard, `tail`)
    can open a journal a daemon is writing. The first `append` (or an explicit
    `open_for_writing`) takes an exclusive lock, repairs a torn tail and learns
    `last_seq`.
    """

    def __init__(self, directory: Path, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        # Human-readable notes about torn lines skipped or truncated; state tests can assert on.
        self.warnings: list[str] = []
        self._writable = False
        self._last_seq = 0
        self._newest_day = ""
        self._handle: BinaryIO | None = None
        self._handle_day = ""
        self._lock_fd: int | None = None
        self._day_names: dict[int, str] = {}

    # --- files -------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Return the daily files in journal order (oldest first); empty if the directory is missing."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _DAY_FILE.match(p.name))

    @property
    def last_seq(self) -> int:
        """Return the highest seq journaled (0 when empty), ignoring a torn last line."""
        if self._writable:
            return self._last_seq
        return self._scan_last_seq(repair=False)

    # --- writing -------------------------------------------------------------------------

    def open_for_writing(self) -> int:
        """Lock the journal, truncate a torn last line, learn `last_seq` and return it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._acquire_lock()
        try:
            self._last_seq = self._scan_last_seq(repair=True)
        except BaseException:
            self.close()  # do not keep the lock on a journal we refused to open
            raise
        files = self.files()
        self._newest_day = files[-1].stem if files else ""
        self._writable = True
        return self._last_seq

    def append(self, records: list[dict[str, Any]]) -> list[bytes]:
        """Write a batch: one write() per daily file touched, then flush (and fsync if configured).

        Return the bytes written, one piece per file, in seq order: whole lines
        a projection process can decode without the records being encoded again.
        The whole batch is validated and encoded before anything is written, so
        a record with a non-increasing seq or a non-finite number leaves the
        journal untouched and raises JournalError naming it.
        """
        if not records:
            return []
        if not self._writable:
            self.open_for_writing()
        last_seq = self._last_seq
        floor_day = self._newest_day
        chunks: dict[str, list[bytes]] = {}
        chunk_last_seq: dict[str, int] = {}
        encode = encode_json_bytes
        day_index: int | None = None
        day = floor_day
        lines: list[bytes] = []
        for record in records:
            seq = record.get("seq")
            if type(seq) is not int:
                raise JournalError(f"record {record.get('type')!r} has no integer seq: {seq!r}")
            if seq <= last_seq:
                raise JournalError(
                    f"seq {seq} ({record.get('type')}) is not after {last_seq}: duplicate or out of order"
                )
            ts_event = record.get("ts_event")
            if type(ts_event) is not int:
                raise JournalError(f"seq {seq} ({record.get('type')}) has no integer ts_event: {ts_event!r}")
            if ts_event // _DAY_MS != day_index:
                # The file changes only when the UTC day does: name it once per day, not per record.
                day_index = ts_event // _DAY_MS
                # A clock that goes back (a second simulated run into the same journal) must not write
                # into an older file: file order has to stay seq order, so such records join the newest day.
                day = max(self._day_name(ts_event), floor_day)
                lines = chunks.setdefault(day, [])
                floor_day = day
            try:
                lines.append(encode(record))
            except (ValueError, TypeError) as exc:
                raise JournalError(f"seq {seq} ({record.get('type')}) cannot be journaled: {exc}") from exc
            chunk_last_seq[day] = seq
            last_seq = seq
        written: list[bytes] = []
        for day, day_lines in chunks.items():
            day_lines.append(b"")  # the batch ends with a newline like every line does
            data = b"\n".join(day_lines)
            self._write(day, data)
            written.append(data)
            self._last_seq = chunk_last_seq[day]
            self._newest_day = day
        return written

    def close(self) -> None:
        """Close the open file and release the writer lock; the Journal can be reopened."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._handle_day = ""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None
        self._writable = False

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------

    def read(self, after_seq: int = 0) -> Iterator[dict[str, Any]]:
        """Yield every record with seq > `after_seq`, in order.

        A torn last line of the last file is skipped with a warning; any other
        unreadable line raises JournalError naming `file:line`.
        """
        files = self.files()
        previous_seq = 0
        loads = json.loads
        for index, path in enumerate(files):
            is_last = index == len(files) - 1
            # Catch-up usually wants only the newest records: skip whole files by their last seq.
            if after_seq > 0 and not is_last and _file_last_seq(path) <= after_seq:
                continue
            lineno = 0
            try:
                with path.open(encoding="utf-8", newline="\n") as handle:
                    for line in handle:
                        lineno += 1
                        try:
                            record = loads(line)
                        except ValueError as exc:
                            if is_last and next(handle, None) is None:
                                self._torn(path, lineno)
                                return
                            raise JournalError(f"{path}:{lineno}: invalid JSON: {exc}") from exc
                        if line[-1] != "\n":  # only the final line of a file can lack its newline
                            if is_last:
                                self._torn(path, lineno)
                                return
                            raise JournalError(f"{path}:{lineno}: line has no trailing newline")
                        seq = record.get("seq") if type(record) is dict else None
                        if type(seq) is not int or seq <= previous_seq:
                            raise JournalError(f"{path}:{lineno}: seq {seq!r} does not follow {previous_seq}")
                        previous_seq = seq
                        if seq > after_seq:
                            yield record
            except UnicodeDecodeError as exc:
                raise JournalError(f"{path}:{lineno + 1}: not UTF-8: {exc}") from exc

    # --- internals ---------------------------------------------------------------------

    def _day_name(self, ts_event: int) -> str:
        day_index = ts_event // _DAY_MS
        name = self._day_names.get(day_index)
        if name is None:
            name = datetime.fromtimestamp(day_index * _DAY_MS / 1000, UTC).strftime("%Y-%m-%d")
            self._day_names[day_index] = name
        return name

    def _write(self, day: str, data: bytes) -> None:
        try:
            if self._handle is None or self._handle_day != day:
                if self._handle is not None:
                    self._handle.close()
                path = self.directory / f"{day}.jsonl"
                is_new = not path.exists()
                self._handle = path.open("ab")
                self._handle_day = day
                if is_new and self.fsync:
                    _fsync_directory(self.directory)
            self._handle.write(data)
            self._handle.flush()
            if self.fsync:
                os.fsync(self._handle.fileno())
        except OSError as exc:
            # The file may now end in a torn line; reopening repairs it and relearns last_seq.
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            self._writable = False
            raise JournalError(f"cannot write journal file {self.directory / day}.jsonl: {exc}") from exc

    def _acquire_lock(self) -> None:
        if self._lock_fd is not None or fcntl is None:
            return
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            # Two writers would interleave seqs and break the no-duplicates guarantee.
            raise JournalError(f"journal {self.directory} is already open for writing elsewhere") from exc
        self._lock_fd = fd

    def _scan_last_seq(self, *, repair: bool) -> int:
        """Find the last seq from the tail of the newest non-empty file, truncating a torn line if `repair`."""
        files = self.files()
        for index in range(len(files) - 1, -1, -1):
            path = files[index]
            is_last = index == len(files) - 1
            with path.open("r+b" if repair and is_last else "rb") as handle:
                end = handle.seek(0, os.SEEK_END)
                if end == 0:
                    continue
                start, line = _last_line(handle, end)
                seq = _parse_seq(line)
                if seq is None and is_last:
                    lineno = _count_lines(handle, start) + 1
                    if repair:
                        # New appends must start on a clean line, or the torn one would end up mid-file.
                        handle.truncate(start)
                        self.warnings.append(f"{path.name}:{lineno}: torn last line truncated")
                        _log.warning("journal_torn_line_truncated", file=str(path), line=lineno)
                    else:
                        self._torn(path, lineno)
                    if start == 0:
                        continue
                    start, line = _last_line(handle, start)
                    seq = _parse_seq(line)
                if seq is None:
                    lineno = _count_lines(handle, start) + 1
                    raise JournalError(f"{path}:{lineno}: invalid last line, cannot learn last seq")
                return seq
        return 0

    def _torn(self, path: Path, lineno: int) -> None:
        self.warnings.append(f"{path.name}:{lineno}: torn last line skipped")
        _log.warning("journal_torn_line", file=str(path), line=lineno)


def _last_line(handle: BinaryIO, end: int) -> tuple[int, bytes]:
    """Return (offset, bytes) of the last line in handle[0:end]; a final newline belongs to that line."""
    position = end - 1
    line_start = 0
    while position > 0:
        start = max(0, position - _TAIL_CHUNK)
        handle.seek(start)
        cut = handle.read(position - start).rfind(b"\n")
        if cut >= 0:
            line_start = start + cut + 1
            break
        position = start
    handle.seek(line_start)
    return line_start, handle.read(end - line_start)


def _parse_seq(line: bytes) -> int | None:
    """Return the seq of a complete, valid journal line, or None for a torn one."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    seq = record.get("seq") if type(record) is dict else None
    return seq if type(seq) is int else None


def _file_last_seq(path: Path) -> int:
    """Return the seq on a file's last line, or -1 when it cannot be read (the full read will say why)."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        if end == 0:
            return -1
        seq = _parse_seq(_last_line(handle, end)[1])
    return -1 if seq is None else seq


def _count_lines(handle: BinaryIO, end: int) -> int:
    """Count newlines in handle[0:end]: only used to name a line in a message, so rarely."""
    handle.seek(0)
    count = 0
    remaining = end
    while remaining > 0:
        block = handle.read(min(remaining, 1 << 20))
        if not block:
            break
        count += block.count(b"\n")
        remaining -= len(block)
    return count


def _fsync_directory(directory: Path) -> None:
    # A new file survives power loss only once its directory entry is on disk too.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
