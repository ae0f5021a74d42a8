"""The projection process under a Ctrl+C, a failed start and another `desk` package in the working directory."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from desk.backtest import BacktestError, run_backtest
from desk.core import events as ev
from desk.services.feed.replay import ReplayFeed
from desk.services.store import projector
from desk.services.store.store import EventStore
from tests.backtest.test_fast_forward import busy_config, market_files
from tests.services.store.store_samples import mini_session, records, sample_event

MakeStore = Callable[..., EventStore]


def projector_children() -> list[int]:
    """Pids of live projection processes this test process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(stat[1]) == os.getpid() and stat[0] not in ("Z", "X") and b"desk.services.store.projector" in cmdline:
            found.append(int(entry.name))
    return found


def test_run_backtest_when_it_refuses_an_override_after_opening_the_store_then_no_projection_process_is_left(
    tmp_path: Path,
) -> None:
    # run_backtest opens the store (starting the child) before its try/finally; a BacktestError raised
    # between the two (an override for an unknown worker) never closes it.
    before = set(projector_children())
    sources = market_files(tmp_path, 200, {})
    try:
        with pytest.raises(BacktestError, match="unknown worker"):
            run_backtest(
                busy_config(), ReplayFeed(sources), sources, tmp_path / "out", strategy_overrides={"nobody": object()}
            )
        time.sleep(1.0)
        left = set(projector_children()) - before
        assert not left, f"projection processes still running after the failed run: {sorted(left)}"
    finally:
        for pid in set(projector_children()) - before:  # only the ones this test started
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_close_when_a_ctrl_c_lands_right_after_a_pipe_write_then_the_child_still_projects_everything(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real SIGINT sent the moment os.writev returns: unless it is held back until _drain has
    # accounted for the bytes written, close() writes them again and the child's framing breaks.
    store = make_store(projection_process=True)  # no lag: the flush sends at once
    store.open()
    store.wait_projected()
    real_writev = os.writev
    fired: list[int] = []

    def writev_then_ctrl_c(fd: int, buffers: list[memoryview]) -> int:
        written = real_writev(fd, buffers)
        if not fired and written < sum(len(b) for b in buffers):  # the pipe filled up mid-message
            fired.append(written)
            os.kill(os.getpid(), signal.SIGINT)
        return written

    monkeypatch.setattr(projector.os, "writev", writev_then_ctrl_c)
    events = [sample_event(ev.OrderCancelled, seq) for seq in range(1, 12_001)]  # ~2.5 MB: more than the pipe
    store.append(records(events))
    with pytest.raises(KeyboardInterrupt):
        store.flush()
    assert fired

    store.close()  # what backtest.py's finally does after a Ctrl+C

    assert store.projection.last_seq() == len(events)


def test_close_when_a_ctrl_c_interrupted_wait_projected_then_close_does_not_read_the_stale_answer(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl+C while sync() waits for the child's answer leaves that answer in the pipe; finish() then
    # reads it as the answer to its quit, calls it "out of turn", raises and kills the healthy child.
    events = mini_session()
    store = make_store(projection_process=True)
    store.open()
    store.append(records(events[:5]))
    store.flush()
    real_read = projector._read_message
    interrupted: list[bool] = []

    def ctrl_c_once(fd: int, deadline: float) -> bytes | None:
        if not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt  # as poll() raises it when SIGINT arrives during the wait
        return real_read(fd, deadline)

    monkeypatch.setattr(projector, "_read_message", ctrl_c_once)
    with pytest.raises(KeyboardInterrupt):
        store.wait_projected()
    store.append(records(events[5:]))
    store.flush()

    store.close()

    assert store.projection.last_seq() == len(events)


def test_close_when_the_cwd_holds_another_desk_package_then_the_child_still_imports_this_one(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # projector.py says the child imports the same code "whatever its cwd", via PYTHONPATH; but
    # `python -m` puts the cwd in front of PYTHONPATH, so another checkout in the cwd wins.
    other = tmp_path / "other-checkout"
    (other / "desk").mkdir(parents=True)
    (other / "desk" / "__init__.py").write_text("raise ImportError('an older checkout of desk')\n")
    monkeypatch.chdir(other)
    events = mini_session()
    store = make_store(projection_process=True)
    store.open()
    store.append(records(events))
    store.flush()

    store.close()

    assert store.projection.last_seq() == len(events)
