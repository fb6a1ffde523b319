"""The fault-run driver on a story without processes: its order (stop always, report before the checks) and its checks.

The real runs (``test_pipeline_faults``, the cluster scenarios) take minutes each; these pin the
sequence they share in a fraction of a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from simulators.model import Reading
from tests.faults.driver import FaultRun, run_fault
from tests.faults.story import START_MS, WATERMARK_MS, Outcome, closed_windows

pytestmark = pytest.mark.unit

READINGS = [Reading(f"device-{i % 4}", 20.0 + i % 7, START_MS + 200 * i) for i in range(200)]  # 40 s of event time
RUN = FaultRun(
    readings=len(READINGS),
    fault_at=50,
    seed=1,
    min_windows=5,
    accepted_timeout=1,
    simulator_timeout=1,
    too_fast_hint="raise READINGS",
    outputs_timeout=1,
)


@dataclass
class FakeChild:
    name: str
    alive: bool = True

    @property
    def log_file(self) -> Path:
        return Path(f"{self.name}.log")

    def running(self) -> bool:
        return self.alive

    def wait(self, timeout: float) -> int:
        self.alive = False
        return 0


@dataclass
class FakeStory:
    """Every output complete unless told otherwise; records what the driver asked, in order."""

    lost_windows: int = 0
    calls: list[str] = field(default_factory=list)
    simulator: FakeChild = field(default_factory=lambda: FakeChild("simulator"))
    job: FakeChild = field(default_factory=lambda: FakeChild("job"))

    def start_all(self, count: int, seed: int) -> FakeChild:
        self.calls.append(f"start_all {count} {seed}")
        return self.simulator

    def accepted_count(self) -> int:
        return len(READINGS)

    def accepted(self) -> list[Reading]:
        return list(READINGS)

    def wait_outputs(self, accepted: list[Reading], timeout: float) -> list[dict]:
        self.calls.append("wait_outputs")
        return closed_windows(accepted, WATERMARK_MS)

    def vital_children(self) -> dict[str, FakeChild]:
        return {"job": self.job}

    def stop_all(self) -> None:
        self.calls.append("stop_all")

    def outcome(self, accepted: list[Reading], expected: list[dict]) -> Outcome:
        results = expected[self.lost_windows :]
        readings = [r.to_json().encode() for r in accepted]
        return Outcome.of(accepted, expected, readings, [json.dumps(w).encode() for w in results], results, [], 1)


def fault(story: FakeStory) -> None:
    story.calls.append("fault")


def test_a_complete_run_is_started_faulted_stopped_reported_and_passes() -> None:
    story = FakeStory()
    reported: list[Outcome] = []
    outcome = run_fault(story, RUN, fault, reported.append)
    assert story.calls == [f"start_all {len(READINGS)} 1", "fault", "wait_outputs", "stop_all"]
    assert reported == [outcome]
    assert outcome.readings_missing_in_kafka == 0 and len(outcome.windows_expected) >= RUN.min_windows


def test_a_lost_window_fails_after_the_report() -> None:
    story = FakeStory(lost_windows=1)
    reported: list[Outcome] = []
    with pytest.raises(AssertionError):
        run_fault(story, RUN, fault, reported.append)
    assert len(reported) == 1 and story.calls[-1] == "stop_all"


def test_too_few_windows_fail() -> None:
    with pytest.raises(AssertionError, match=">= 500"):
        run_fault(FakeStory(), replace(RUN, min_windows=500), fault, lambda _: None)


def test_a_vital_child_that_died_fails_by_name_and_the_story_is_still_stopped() -> None:
    story = FakeStory()

    def kill_the_job(s: FakeStory) -> None:
        s.job.alive = False

    with pytest.raises(AssertionError, match="the job died under the fault; log job.log"):
        run_fault(story, RUN, kill_the_job, lambda _: pytest.fail("reported a run that failed before its outcome"))
    assert story.calls[-1] == "stop_all"


def test_a_simulator_done_before_the_fault_names_the_fix() -> None:
    story = FakeStory()
    story.simulator.alive = False
    with pytest.raises(AssertionError, match="finished before the fault: raise READINGS"):
        run_fault(story, RUN, fault, lambda _: None)
    assert story.calls == [f"start_all {len(READINGS)} 1", "stop_all"]
