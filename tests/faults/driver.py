"""One fault run, the same on one host and on the cluster of hosts: start, fault mid-stream, recover, check.

The single-host fault tests (:class:`~tests.faults.story.Story`) and the cluster scenarios
(:class:`~tests.cluster.story.ClusterStory`) run the same sequence and hold their outputs to
the same checks; :func:`run_fault` is that sequence, once. What differs between the two is
either the story's own (how it starts, which children must survive) or a number of its
:class:`FaultRun`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from demo.children import Child
from simulators.model import Reading
from tests.faults.story import Outcome
from tests.waiting import wait_for


class FaultStory(Protocol):
    """What :func:`run_fault` needs of a story: its processes, the accepted log and the outputs."""

    def start_all(self, count: int, seed: int) -> Child:
        """Start the pipeline, the simulator of ``count`` readings last; return the simulator."""
        ...

    def accepted_count(self) -> int:
        """Readings the broker accepted so far (cheap: polled until the fault)."""
        ...

    def accepted(self) -> list[Reading]:
        """Every reading the broker accepted: the ground truth."""
        ...

    def wait_outputs(self, accepted: list[Reading], timeout: float) -> list[dict]:
        """Wait until every output is complete; return the closed windows expected."""
        ...

    def vital_children(self) -> dict[str, Child]:
        """The children the fault must not kill, by the name a failure reports."""
        ...

    def stop_all(self) -> None:
        """Stop every child, whatever state the run left them in."""
        ...

    def outcome(self, accepted: list[Reading], expected: list[dict]) -> Outcome:
        """What reached each output (called after :meth:`stop_all`)."""
        ...


@dataclass(frozen=True)
class FaultRun:
    """The numbers of one kind of run: sized so the fault strikes mid-stream and enough windows close."""

    readings: int
    fault_at: int  # accepted readings before the fault
    seed: int
    min_windows: int  # closed windows the run must produce, or it proves little
    accepted_timeout: float  # for ``fault_at`` accepted readings
    simulator_timeout: float  # for the simulator to finish after the fault
    too_fast_hint: str  # what to change when the simulator finishes before the fault
    outputs_timeout: float = 300.0


S = TypeVar("S", bound=FaultStory)


def run_fault(story: S, run: FaultRun, fault: Callable[[S], None], report: Callable[[Outcome], None]) -> Outcome:
    """Run ``story`` with ``fault`` injected mid-stream, stop it, ``report`` the outcome, then check it.

    The checks: every accepted reading in Kafka, none missing; the windows on AMQP and on Kafka
    ``max`` equal the recomputation from the accepted readings; nothing malformed. ``report``
    comes first so a failing run still shows its counts.
    """
    try:
        simulator = story.start_all(run.readings, run.seed)
        wait_for(
            lambda: story.accepted_count() >= run.fault_at or not simulator.running(),
            run.accepted_timeout,
            f"{run.fault_at} accepted readings",
        )
        assert simulator.running(), f"the simulator finished before the fault: {run.too_fast_hint}"
        fault(story)
        assert simulator.wait(run.simulator_timeout) == 0, f"the simulator failed; log {simulator.log_file}"
        accepted = story.accepted()
        assert len(set(accepted)) == run.readings
        expected = story.wait_outputs(accepted, timeout=run.outputs_timeout)
        for name, child in story.vital_children().items():
            assert child.running(), f"the {name} died under the fault; log {child.log_file}"
    finally:
        story.stop_all()
    outcome = story.outcome(accepted, expected)
    report(outcome)
    assert outcome.readings_missing_in_kafka == 0
    assert outcome.kafka_readings_distinct == run.readings
    assert Outcome.distinct(outcome.amqp_results) == expected
    assert Outcome.distinct(outcome.kafka_results) == expected
    assert outcome.job_malformed == 0
    assert len(expected) >= run.min_windows
    return outcome
