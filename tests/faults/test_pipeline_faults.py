"""Faults under the whole story: 20,000 readings through simulator -> Artemis -> job + bridge -> AMQP/Kafka.

Each test starts the demo's processes (the windowed-max job under spark-submit, the bridge
forwarder, the simulator), injects one fault when about a third of the readings are
accepted, recovers, and then checks every output against the simulator's accepted log:

- every accepted reading is in Kafka (via the bridge), none missing;
- the windows on AMQP ``max`` and on Kafka ``max`` equal a plain-Python recomputation from the
  accepted readings, i.e. the result of a run without the fault (max, device and count of every
  window the watermark closed);
- duplicates where a stage is only at-least-once (the simulator resending an unconfirmed
  reading, the bridge, the result sinks on a replayed batch) are counted and printed, not
  hidden; the job drops readings repeated verbatim, so counts stay exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from services import ServiceSettings
from services.artemis import ArtemisService
from services.fetch import fetch_artemis
from tests.faults import netns
from tests.faults.driver import FaultRun, run_fault
from tests.faults.story import Outcome, Story
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

READINGS = 20_000
RATE = 2_000.0
FAULT_AT = READINGS * 3 // 10


RUN = FaultRun(
    readings=READINGS,
    fault_at=FAULT_AT,
    seed=11,
    min_windows=15,
    accepted_timeout=120,
    simulator_timeout=240,
    too_fast_hint="raise READINGS or lower RATE",
)


def run_story(
    root: Path, amqp_url: str, kafka_bootstrap: str, jars: list[str], prefix: str, fault: Callable[[Story], None]
) -> Outcome:
    """The story with ``fault`` injected mid-stream; returns what reached the outputs (already checked)."""
    story = Story(root, amqp_url, kafka_bootstrap, jars, prefix, RATE)
    return run_fault(story, RUN, fault, report=lambda outcome: print(f"\n{prefix}: " + json.dumps(outcome.summary())))


@pytest.fixture
def jars(spark_kafka_jars: tuple[Path, ...]) -> list[str]:
    return [str(p) for p in spark_kafka_jars]


def _needs_local(local_services: object | None) -> object:
    if local_services is None:
        pytest.skip("kills and restarts the brokers: needs the test session's own services (unset AMQP_URL/KAFKA_BOOTSTRAP)")
    return local_services


@pytest.mark.parametrize("broker", ["kafka", "artemis"])
def test_broker_sigkill(
    broker: str, local_services, amqp_url: str, kafka_bootstrap: str, jars: list[str], unique_name, tmp_path: Path
) -> None:
    """SIGKILL of Kafka or Artemis (each keeps its data on disk), seen by the bridge, then a restart."""
    service = getattr(_needs_local(local_services), broker)

    def fault(story: Story) -> None:
        service.kill()
        wait_for(lambda: story.bridge_readiness() == 503, 30, f"the bridge to report {broker} down on /readyz")
        service.start()
        service.wait_ready(90)

    outcome = run_story(tmp_path, amqp_url, kafka_bootstrap, jars, unique_name(f"{broker}-kill"), fault)
    assert outcome.job_runs == 1


def test_spark_driver_sigkill(amqp_url: str, kafka_bootstrap: str, jars: list[str], unique_name, tmp_path: Path) -> None:
    def fault(story: Story) -> None:
        story.kill("job")
        story.start_job()

    outcome = run_story(tmp_path, amqp_url, kafka_bootstrap, jars, unique_name("driver-kill"), fault)
    assert outcome.job_runs == 2


def test_bridge_sigkill(amqp_url: str, kafka_bootstrap: str, jars: list[str], unique_name, tmp_path: Path) -> None:
    def fault(story: Story) -> None:
        story.kill("bridge")
        story.start_bridge()

    run_story(tmp_path, amqp_url, kafka_bootstrap, jars, unique_name("bridge-kill"), fault)


@pytest.fixture(scope="module")
def partitionable_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArtemisService, netns.HostLink]]:
    """An Artemis of its own in a network namespace, behind a link the test can cut."""
    reason = netns.available()
    if reason:
        pytest.skip(f"network stall test: {reason}")
    with netns.host_link() as link:
        root = tmp_path_factory.mktemp("netns-broker")
        settings = replace(ServiceSettings.from_env(), host=link.address, amqp_port=5672, run_dir=root, netns=link.name)
        broker = ArtemisService(settings, fetch_artemis(settings))
        broker.start()
        try:
            broker.wait_ready(90)
            yield broker, link
        finally:
            broker.stop()


STALL_S = 15.0


def test_network_stall_of_the_broker(
    partitionable_broker: tuple[ArtemisService, netns.HostLink],
    kafka_bootstrap: str,
    jars: list[str],
    unique_name,
    tmp_path: Path,
) -> None:
    """The broker's link goes silent for 15 s (longer than every client's idle timeout), then comes back."""
    broker, link = partitionable_broker

    def fault(story: Story) -> None:
        link.cut()
        try:
            wait_for(lambda: story.bridge_readiness() == 503, 30, "the bridge to notice the silent broker (heartbeat)")
            # The stall's length is the fault itself (no signal to wait for): long enough for the
            # source's idle timeout (10 s) to drop its connection too.
            time.sleep(STALL_S)
        finally:
            link.restore()

    run_story(tmp_path, broker.url, kafka_bootstrap, jars, unique_name("stall"), fault)
