"""The SQL projection in a process of its own, for a backtest whose main thread belongs to the engines.

The writer (`EventStore(..., projection_process=True)`) still journals every
batch itself, first; it then hands the projector the very bytes it wrote (JSON
lines) over a pipe, and the projector decodes them with orjson and folds them
into the database with the same `Projection` the in-process store uses, one
transaction per batch received. sqlite3 and the row-building Python hold the
GIL, so a thread could not take this work off the main thread; a process can.

Start method: a fresh interpreter (`subprocess`, fork + exec of
`python -m desk.services.store.projector`), not `multiprocessing`:

* fork without exec copies a writer that may run threads (Ray's gRPC threads in
  a sweep worker, BLAS pools): a lock held by one of them at fork time stays held
  in the child forever. It also leaves the parent's heap shared copy-on-write,
  so the main thread pays a page fault for every page it touches afterwards:
  with a 580 MB heap of small objects, one pass writing to each took 1.3-2.0 s
  instead of 0.09 s while a forked child lived. Its start (6-13 ms) is no
  saving either. And the child would inherit the journal's flock and every
  other descriptor.
* multiprocessing's spawn and forkserver exec a fresh interpreter too, but both
  re-import the parent's `__main__` (the whole CLI) in the child; forkserver
  adds a long-lived server process to start one child per run.

The exec costs the writer under a millisecond (0.5 ms measured; multiprocessing's
spawn 0.7-1.4 ms, forkserver 1-36 ms); the child's ~0.25 s of imports run on the
other core while the backtest warms up, and batches sent before it is ready
wait in the pipe.

The child cannot outlive the writer: it blocks reading the pipe, whose only
write end the writer holds, so the writer's exit or death (even SIGKILL) is an
end of file that ends the child. It runs in its own session, so a Ctrl+C at the
terminal reaches only the writer, whose `close()` then lets it finish.

Protocol (parent -> child), each message an 8-byte big-endian length and a body:
the setup (JSON) first, then journal lines (a body starting with `{`), `C<seq>`
(catch up from the journal through seq), `S<token>` (answer when everything
before is projected) and `Q` (answer, then exit). The child answers `S` and `Q`
with a JSON report, and reports a failure the same way before it exits with 1.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import orjson
import structlog

from desk.core.errors import DeskError
from desk.services.store.journal import Journal
from desk.services.store.projection import Projection, ProjectionError

__all__ = ["REBUILD_BATCH", "ProjectorProcess", "project_journal"]

# Named, not __name__: run with `python -m`, the child's module is __main__.
_MODULE = "desk.services.store.projector"
_log = structlog.get_logger(_MODULE)

# Records projected per transaction when catching up or rebuilding: large enough to amortise
# the commit, small enough to keep memory flat on a journal of millions of lines.
REBUILD_BATCH = 5_000

_HEADER = struct.Struct("!Q")
_BATCH, _CATCH_UP, _SYNC, _QUIT = b"{", b"C", b"S", b"Q"
# Buffers per writev: Linux takes up to 1024, but a full pipe takes a fraction of that and
# building the list is paid for every call.
_IOV_BATCH = 64
# After finding the pipe full, how long before trying again; a child busy with a transaction
# takes far longer than that to make room.
_RETRY_S = 0.01
# Journaled bytes the writer keeps for a child that has fallen behind before it waits for it: far more
# than a backtest journals in a few seconds, far less than memory.
_MAX_BACKLOG = 256 << 20
# A 1 MiB pipe (Linux's default ceiling for an unprivileged process) holds a few seconds of a
# backtest's ordinary events, so the writer rarely waits for a child busy with a transaction.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# After the child has reported (or died), how long its exit may take before it is killed.
_EXIT_GRACE_S = 10.0
# The directory `desk` is imported from: the child must import the same code whatever its cwd.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[3])
_REBUILD_HINT = "`main.py rebuild-db` rebuilds the database from the journal"


def project_journal(journal: Journal, projection: Projection, through_seq: int | None = None) -> int:
    """Project the journal records the database lacks, up to `through_seq` if given; return how many.

    With `through_seq` the journal may be growing under a writer: every line up
    to that seq is complete, and nothing after it is parsed.
    """
    count = 0
    batch: list[dict[str, Any]] = []
    for record in journal.read(after_seq=projection.last_seq()):
        if through_seq is not None and record["seq"] > through_seq:
            break
        batch.append(record)
        if len(batch) >= REBUILD_BATCH:
            projection.project(batch)
            count += len(batch)
            batch = []
    if batch:
        projection.project(batch)
        count += len(batch)
    if count:
        _log.info("projection_caught_up", records=count, last_seq=projection.last_seq())
    return count


class ProjectorProcess:
    """The writer's handle on the projector child: send journaled bytes, sync, finish.

    Sending never raises for a dead child: the journal is the authority and the
    backtest goes on; the failure is logged once and raised by `sync` or
    `finish`, with what the child reported. Every wait is bounded by
    `timeout_s`; a child that does not answer in time is killed.
    """

    def __init__(self, database_url: str, journal_dir: Path, through_seq: int, *, timeout_s: float) -> None:
        self.journal_dir = Path(journal_dir)
        self.timeout_s = timeout_s
        # Seconds the writer spent handing bytes over (not in sync/finish), and the CPU seconds the
        # child reported using when it finished: what the bench reports.
        self.send_seconds = 0.0
        self.child_cpu_s: float | None = None
        self._failure: str | None = None
        self._token = 0
        # Framed bytes the pipe had no room for yet, oldest first, and how many bytes that is.
        self._outbox: deque[memoryview] = deque()
        self._outbox_bytes = 0
        # When a pipe found full may be tried again (see `_drain`).
        self._retry_at = 0.0
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        with contextlib.suppress(OSError):  # an older kernel or a lower ceiling: the default size still works
            fcntl.fcntl(to_child_w, _F_SETPIPE_SZ, _PIPE_SIZE)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_IMPORT_ROOT, env.get("PYTHONPATH", "")) if p)
        try:
            self._process = subprocess.Popen(
                # -P: no cwd at the head of sys.path, so a `desk` folder where we were started cannot shadow ours.
                [sys.executable, "-P", "-m", _MODULE, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # it has nothing to print; its logs go to stderr like ours
                env=env,
                start_new_session=True,
            )
        except BaseException:
            os.close(to_child_w)
            os.close(from_child_r)
            raise
        finally:
            # Only the child may hold these ends: its end of file on `to_child` is how it learns we are gone.
            os.close(to_child_r)
            os.close(from_child_w)
        self._to_child: int | None = to_child_w
        self._from_child: int | None = from_child_r
        # The writer must never block on a full pipe without a deadline.
        os.set_blocking(to_child_w, False)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        # The URL travels through the pipe, not argv: `ps` must not show a database password.
        setup = {"database_url": database_url, "journal_dir": str(journal_dir), "through_seq": through_seq}
        setup["log_level"] = level
        self._queue([orjson.dumps(setup)])
        self.pump()

    @property
    def pid(self) -> int:
        """Return the child's process id."""
        return self._process.pid

    @property
    def failed(self) -> bool:
        """Return True once the child is known to have failed or died."""
        return self._failure is not None

    @property
    def backlog(self) -> int:
        """Return how many bytes wait for room in the pipe."""
        return self._outbox_bytes

    # --- the writer's side ---------------------------------------------------------------

    def send(self, chunks: Sequence[bytes]) -> None:
        """Hand the child journal lines (whole lines, each ending in a newline) to project as one batch.

        Never waits for the child unless the backlog passed `_MAX_BACKLOG`: what
        the pipe cannot take now is kept and written by later calls.
        """
        if chunks:
            self._queue(chunks)
            self.pump()

    def catch_up(self, through_seq: int) -> None:
        """Have the child project from the journal itself, through `through_seq` (after a failed write)."""
        self._queue([_CATCH_UP + str(through_seq).encode()])
        self.pump()

    def pump(self) -> None:
        """Write as much of the backlog as the pipe takes now; wait only while it is over `_MAX_BACKLOG`."""
        if self._outbox_bytes and time.monotonic() >= self._retry_at:
            start = time.perf_counter()
            self._drain(time.monotonic() + self.timeout_s, _MAX_BACKLOG)
            self.send_seconds += time.perf_counter() - start

    def sync(self) -> int:
        """Wait until the child has projected everything sent so far; return its last projected seq."""
        self._token += 1
        self._queue([_SYNC + str(self._token).encode()])
        self._drain(time.monotonic() + self.timeout_s, 0)
        report = self._report("synced", self._token, time.monotonic() + self.timeout_s)
        if report is None:
            raise ProjectionError(self._failure_text())
        return int(report["last_seq"])

    def finish(self) -> int:
        """Let the child project everything sent, then exit; return its last seq or raise ProjectionError."""
        deadline = time.monotonic() + self.timeout_s
        try:
            self._queue([_QUIT])
            self._drain(deadline, 0)
            report = self._report("done", True, deadline)
            if report is not None:
                try:
                    code = self._process.wait(max(0.0, deadline - time.monotonic()) + _EXIT_GRACE_S)
                except subprocess.TimeoutExpired:
                    code = None
                if code != 0:
                    self._fail(f"it reported done but exited with {code!r}")
            if report is None or self._failure is not None:
                raise ProjectionError(self._failure_text())
            self.child_cpu_s = float(report.get("cpu_s", 0.0))
            return int(report["last_seq"])
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill the child if it still runs and release the pipes; idempotent."""
        if self._process.poll() is None:
            self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(_EXIT_GRACE_S)
        for fd in (self._to_child, self._from_child):
            if fd is not None:
                os.close(fd)
        self._to_child = self._from_child = None

    # --- internals ---------------------------------------------------------------------

    def _queue(self, chunks: Sequence[bytes]) -> None:
        """Frame a message into the backlog; the chunks are referenced, not joined or copied."""
        if self._failure is not None:
            return  # already logged; `sync` and `finish` raise it
        size = sum(len(chunk) for chunk in chunks)
        self._outbox.append(memoryview(_HEADER.pack(size)))
        self._outbox.extend(memoryview(chunk) for chunk in chunks if chunk)
        self._outbox_bytes += _HEADER.size + size

    def _drain(self, deadline: float, down_to: int) -> None:
        """Write the backlog until the pipe is full, then wait for room only while over `down_to` bytes."""
        outbox = self._outbox
        while self._outbox_bytes and self._failure is None and self._to_child is not None:
            views = list(itertools.islice(outbox, _IOV_BATCH))
            # A Ctrl+C raised between the write and the bookkeeping would make close() send those bytes
            # again and splice the stream: the interrupt waits until the backlog says what was written.
            with _interrupts_deferred():
                try:
                    written = os.writev(self._to_child, views)
                except BlockingIOError:
                    written = 0
                except OSError as exc:  # EPIPE: the child is gone
                    _log.debug("projection_process_pipe_broken", error=repr(exc))
                    self._fail()
                    break
                full = written < sum(len(view) for view in views)
                self._outbox_bytes -= written
                while written:
                    view = outbox[0]
                    if written >= len(view):
                        written -= len(view)
                        outbox.popleft()
                    else:
                        outbox[0] = view[written:]
                        written = 0
            if not full:
                continue
            if self._outbox_bytes <= down_to:
                # The pipe is full and the child busy: trying again at once would only cost syscalls.
                self._retry_at = time.monotonic() + _RETRY_S
                return
            if not _ready(self._to_child, select.POLLOUT, deadline):
                self._fail(f"its pipe stayed full for {self.timeout_s:g} s; killed")
                self.kill()
        if self._failure is not None:
            outbox.clear()  # nothing more will be written
            self._outbox_bytes = 0

    def _report(self, key: str, expected: object, deadline: float) -> dict[str, Any] | None:
        """Return the child's answer with `key` == `expected`; None (the failure recorded) if none came in time."""
        if self._failure is not None or self._from_child is None:
            return None
        try:
            body = _read_message(self._from_child, deadline)
        except TimeoutError:
            self._fail(f"it did not answer within {self.timeout_s:g} s; killed")
            self.kill()
            return None
        if body is None:
            self._fail()  # it closed its end: it died, and its exit status says how
            return None
        report: dict[str, Any] = orjson.loads(body)
        if report.get(key) == expected:
            return report
        if "synced" in report and (key != "synced" or report["synced"] < expected):  # type: ignore[operator]
            # The answer to an earlier sync whose wait was interrupted (a Ctrl+C): read on.
            return self._report(key, expected, deadline)
        self._fail(str(report.get("failed", f"it answered {report!r} out of turn")))
        return None

    def _fail(self, detail: str = "") -> None:
        """Record (and log) the first failure: the child's own report if it left one, else `detail` or its exit."""
        if self._failure is not None:
            return
        leftover = self._leftover_report()
        if leftover is not None and "failed" in leftover:
            detail = str(leftover["failed"])
        elif not detail:
            detail = self._exit_detail()
        self._failure = detail
        _log.error("projection_process_failed", pid=self._process.pid, error=detail)

    def _leftover_report(self) -> dict[str, Any] | None:
        """Return a report already waiting in the pipe (a child writes why it failed before it exits), else None."""
        if self._from_child is None:
            return None
        try:
            body = _read_message(self._from_child, time.monotonic())
        except (TimeoutError, OSError):
            return None
        return None if body is None else orjson.loads(body)

    def _exit_detail(self) -> str:
        try:
            code = self._process.wait(_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            return f"it died of signal {-code} ({signal.Signals(-code).name})"
        return f"it exited with status {code} without saying why"

    def _failure_text(self) -> str:
        return (
            f"the projection failed in its process (pid {self._process.pid}): {self._failure}. "
            f"The journal in {self.journal_dir} is complete; {_REBUILD_HINT}."
        )


# --- framing -------------------------------------------------------------------------------


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl+C back while the block runs and deliver it right after, as the handler in force would.

    Python runs signal handlers in the main thread between bytecodes, so swapping
    in one that only takes note works whatever other threads exist (blocking the
    signal would not: the kernel hands it to any thread that does not block it).
    Elsewhere than the main thread no handler runs, and there is nothing to defer.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, FrameType | None]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])
        elif caught and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def _ready(fd: int, event: int, deadline: float) -> bool:
    """Wait until `fd` is ready for `event` (or closed at the other end), at most until `deadline`."""
    # poll, not select: select cannot watch a descriptor numbered above 1023 (a process with many sockets).
    poller = select.poll()
    poller.register(fd, event)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


def _read_message(fd: int, deadline: float) -> bytes | None:
    """Read one message from `fd` (the writer's side, small reports), None at end of file."""
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        return None
    return _read_exactly(fd, _HEADER.unpack(header)[0], deadline)


def _read_exactly(fd: int, size: int, deadline: float) -> bytes | None:
    data = b""
    while len(data) < size:
        # A deadline already past still polls once: a report that is there is read.
        if not _ready(fd, select.POLLIN, deadline):
            raise TimeoutError
        piece = os.read(fd, size - len(data))
        if not piece:
            return None  # end of file, also mid-message: the other side is gone
        data += piece
    return data


# --- the child -----------------------------------------------------------------------------


def _reply(fd: int, report: dict[str, Any]) -> None:
    body = orjson.dumps(report)
    os.write(fd, _HEADER.pack(len(body)) + body)  # a few dozen bytes: one atomic write


def _receive(inbox: BinaryIO) -> bytes | None:
    """Read the writer's next message; None at end of file (the writer is gone, maybe mid-message)."""
    header = inbox.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    body = inbox.read(size)
    return body if len(body) == size else None


def _serve(inbox: BinaryIO, outbox: int) -> int:
    setup_bytes = _receive(inbox)
    if setup_bytes is None:
        return 0
    setup = orjson.loads(setup_bytes)
    from desk.services.logging import configure_logging

    try:
        configure_logging(setup["log_level"])
    except ValueError:  # a custom level the writer uses has no name here
        configure_logging("WARNING")
    journal = Journal(Path(setup["journal_dir"]))
    projection = Projection(setup["database_url"])
    try:
        through_seq = int(setup["through_seq"])
        # What `EventStore.open` does in process: another schema, or a database made from another journal.
        if projection.needs_rebuild() or projection.last_seq() > through_seq:
            _log.warning("projection_rebuild_on_open", projection_seq=projection.last_seq(), journal_seq=through_seq)
            projection.drop_and_create()
        project_journal(journal, projection, through_seq)
        loads = orjson.loads
        while True:
            message = _receive(inbox)
            if message is None:
                # The writer died without `close()`: what arrived is projected; the journal has the rest.
                _log.warning("projection_process_orphaned", last_seq=projection.last_seq())
                return 0
            kind = message[:1]
            if kind == _BATCH:
                lines = message.split(b"\n")
                lines.pop()  # every line ends in a newline: the last piece is empty
                projection.project([loads(line) for line in lines])
            elif kind == _CATCH_UP:
                project_journal(journal, projection, int(message[1:]))
            elif kind == _SYNC:
                _reply(outbox, {"synced": int(message[1:]), "last_seq": projection.last_seq()})
            elif kind == _QUIT:
                # Closed before the report: "done" means the database is released, its WAL checkpointed.
                projection.close()
                _reply(outbox, {"done": True, "last_seq": projection.last_seq(), "cpu_s": time.process_time()})
                return 0
            else:
                raise ProjectionError(f"unknown message {message[:16]!r} from the writer")
    finally:
        projection.close()


def main(argv: Sequence[str]) -> int:
    """Run the projector on the pipe descriptors named in `argv`; return the exit status."""
    # The writer decides when to stop: its close() after a Ctrl+C still lets us finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox_fd, outbox = int(argv[0]), int(argv[1])
    with open(inbox_fd, "rb", buffering=_PIPE_SIZE) as inbox:
        try:
            return _serve(inbox, outbox)
        except Exception as exc:
            text = str(exc) if isinstance(exc, DeskError) else repr(exc)
            with contextlib.suppress(OSError):
                _reply(outbox, {"failed": text})
            _log.error("projection_process_error", error=text)
            return 1


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stderr.flush()
    # Everything is closed and reported: skip the interpreter's teardown (tens of ms of module
    # clean-up) that the writer's close() would otherwise sit waiting for.
    os._exit(status)
