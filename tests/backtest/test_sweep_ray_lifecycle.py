"""The sweep's use of Ray: shut down and tasks cancelled on a failing task, a failed start and Ctrl+C.

A fake `ray` module runs each task in this process when its result is asked for, so a failure or an
interruption can be placed exactly; the real cluster is exercised in test_sweep.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import desk.sweep as sweep
import main
from desk.services.feed.replay import ReplaySource
from desk.sweep import SweepSpec, SweepTaskError, run_sweep
from tests.backtest.test_sweep import START, WORKER, sweep_test_config, synthetic_csv


class FakeTaskError(Exception):
    """What ray.get raises for a task whose process failed: the original error is its `cause`."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class FakeRef:
    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call


class FakeRemoteFunction:
    def __init__(self, ray: FakeRay, function: Callable[..., Any]) -> None:
        self.ray, self.function = ray, function

    def remote(self, *args: Any) -> FakeRef:
        ref = FakeRef(lambda: self.function(*args))
        self.ray.submitted.append(ref)
        return ref


class FakeRay:
    """The part of the `ray` module the sweep uses; `fail_task`, `interrupt_wait` and `interrupt_init` place trouble."""

    def __init__(
        self, *, fail_task: int | None = None, interrupt_wait: int | None = None, interrupt_init: bool = False
    ) -> None:
        self.fail_task, self.interrupt_wait, self.interrupt_init = fail_task, interrupt_wait, interrupt_init
        self.initialized = False
        self.shutdowns = 0
        self.waits = 0
        self.submitted: list[FakeRef] = []
        self.cancelled: list[FakeRef] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **options: Any) -> None:
        self.initialized = True  # the processes are up before init returns, or is interrupted
        if self.interrupt_init:
            raise KeyboardInterrupt

    def shutdown(self) -> None:
        self.initialized = False
        self.shutdowns += 1

    def remote(self, **options: Any) -> Callable[[Callable[..., Any]], FakeRemoteFunction]:
        return lambda function: FakeRemoteFunction(self, function)

    def put(self, value: Any) -> Any:
        return value

    def wait(self, refs: list[FakeRef], num_returns: int) -> tuple[list[FakeRef], list[FakeRef]]:
        self.waits += 1
        if self.waits == self.interrupt_wait:
            raise KeyboardInterrupt
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref: FakeRef) -> Any:
        if self.submitted.index(ref) == self.fail_task:
            raise FakeTaskError(RuntimeError("worker process died"))
        return ref.call()

    def cancel(self, ref: FakeRef, force: bool) -> None:
        self.cancelled.append(ref)


SPEC = SweepSpec(WORKER, grid={"fast": [5, 8]}, folds=2, train_fraction=0.5)  # 8 tasks


@pytest.fixture
def source(tmp_path: Path) -> ReplaySource:
    return ReplaySource(synthetic_csv(tmp_path / "syn.csv", 1_000), "SYN/USD")


def test_run_sweep_when_the_fake_cluster_runs_every_task_then_it_is_shut_down_after(
    tmp_path: Path, source: ReplaySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    result = run_sweep(sweep_test_config(), [source], SPEC, tmp_path / "out")
    assert result.tasks == 8 and len(result.table) == 2
    assert fake.shutdowns == 1 and not fake.initialized and fake.cancelled == []


def test_run_sweep_when_a_task_fails_then_the_rest_are_cancelled_and_ray_shut_down(
    tmp_path: Path, source: ReplaySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(fail_task=2)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(SweepTaskError, match="fold 1 train") as caught:
        run_sweep(sweep_test_config(), [source], SPEC, tmp_path / "out")
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert set(fake.cancelled) == set(fake.submitted[3:])
    assert fake.shutdowns == 1 and not fake.initialized
    assert not (tmp_path / "out" / "sweep.csv").exists()


def test_run_all_when_interrupted_while_waiting_then_every_pending_task_is_cancelled(
    tmp_path: Path, source: ReplaySource
) -> None:
    # On a joined cluster nothing shuts the tasks down with this process: they must be cancelled.
    fake = FakeRay(interrupt_wait=3)
    config = sweep_test_config()
    tasks = sweep.plan_tasks(
        config, SPEC, [{"fast": 5}], sweep.walk_forward_windows(START, START + 999 * 60_000, 2, 0.5), tmp_path / "out"
    )
    with pytest.raises(KeyboardInterrupt):
        sweep._run_all(fake, config, WORKER, [source], tasks, None)
    assert set(fake.cancelled) == set(fake.submitted[2:]) and len(fake.cancelled) == 2


def test_run_sweep_when_ray_start_is_interrupted_then_what_started_is_shut_down(
    tmp_path: Path, source: ReplaySource, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(interrupt_init=True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep_test_config(), [source], SPEC, tmp_path / "out")
    assert fake.shutdowns == 1 and not fake.initialized


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(sweep_test_config().model_dump(mode="json")))
    return path


def sweep_cli(config_path: Path, source: ReplaySource, out: Path) -> int:
    return main.main(
        [
            *("--config", str(config_path), "--log-level", "WARNING", "sweep", "--data", f"SYN/USD={source.path}"),
            *("--worker", WORKER, "--grid", "fast=5,8", "--folds", "2", "--train-fraction", "0.5", "--out", str(out)),
        ]
    )


def test_sweep_command_when_a_worker_task_fails_then_exit_1_naming_the_run(
    tmp_path: Path,
    config_path: Path,
    source: ReplaySource,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeRay(fail_task=0)
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert sweep_cli(config_path, source, tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert "fold 0 train" in error and "worker process died" in error
    assert fake.shutdowns == 1


def test_sweep_command_when_interrupted_then_exit_130_and_ray_shut_down(
    tmp_path: Path,
    config_path: Path,
    source: ReplaySource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRay(interrupt_wait=2)
    monkeypatch.setitem(sys.modules, "ray", fake)
    assert sweep_cli(config_path, source, tmp_path / "out") == 130
    assert fake.shutdowns == 1 and not fake.initialized
    assert not (tmp_path / "out" / "sweep.csv").exists()


def test_sweep_command_when_runs_finish_then_the_progress_bar_counts_them_all(
    tmp_path: Path,
    config_path: Path,
    source: ReplaySource,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", FakeRay())
    assert sweep_cli(config_path, source, tmp_path / "out") == 0
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "8/8" in bar and "100%" in bar  # 2 param sets x 2 folds x (train, test)
