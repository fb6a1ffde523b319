"""The story on a cluster of hosts, once clean and once under each fault (``make cluster-test``).

Each scenario is a seeded run of 3,000 readings (20 devices, 40 readings/s, event time 5x, so a
5 s window every wall-clock second; the job's watermark, 200 s of event time, is 40 s of wall-clock
time: readings a fault delays are late by less than that, so no window loses them). The fault strikes when 1,000 readings are accepted
and the job has run a micro-batch; the run then completes, and every output is checked against
the simulator's accepted log:

- every accepted reading is in Kafka ``temperature`` (none missing);
- the windows on Kafka ``max`` and on AMQP ``max`` (as the receiver host got them) equal the
  plain-Python recomputation from the accepted readings (max, device, count);
- duplicates are counted and printed, per scenario: accepted / in Kafka / windows expected /
  windows emitted / duplicates.

Which job variant each scenario runs, and why:

- clean run: the AMQP-source job (``--no-shared-log-dir``) on both workers, its log on the
  driver host only: the path without shared storage, whose windows must equal the recomputation;
- Kafka leader killed, Spark worker host killed, bridge replica cut off from Kafka: the
  Kafka-source job (``--source kafka``), the scale-out path (bridge replicas -> Kafka cluster ->
  Spark), so the fault hits the job's own input or the executors reading it;
- Artemis live host cut off: the AMQP-source job, so the Spark source fails over to the backup
  along with the devices, the bridges and the job's AMQP sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.harness import ARTEMIS_LIVE, Cluster
from tests.cluster.conftest import SCENARIO_LINES
from tests.cluster.story import ClusterStory
from tests.faults.driver import FaultRun, run_fault
from tests.faults.story import Outcome
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

READINGS = 3_000
FAULT_AT = 1_000
SEED = 16


def scenario_line(name: str, outcome: Outcome) -> str:
    """accepted / in Kafka / windows expected / windows emitted / duplicates, for one scenario."""
    s = outcome.summary()
    return (
        f"{name:<22} accepted {outcome.accepted} ({s['accepted_resent_duplicates']} resent)"
        f" / in Kafka {outcome.kafka_readings_distinct} ({s['kafka_readings_missing']} missing)"
        f" / windows expected {len(outcome.windows_expected)}"
        f" / windows emitted AMQP {len(Outcome.distinct(outcome.amqp_results))} Kafka {len(Outcome.distinct(outcome.kafka_results))}"
        f" / duplicates: readings in Kafka {s['kafka_readings_duplicates']}, AMQP max {s['amqp_result_duplicates']},"
        f" Kafka max {s['kafka_result_duplicates']}, dropped by the job {s['job_dropped_duplicate_readings']}"
    )


RUN = FaultRun(
    readings=READINGS,
    fault_at=FAULT_AT,
    seed=SEED,
    min_windows=30,
    accepted_timeout=300,
    simulator_timeout=400,
    too_fast_hint="raise READINGS",
)


def run_scenario(
    cluster: Cluster, jars: list[str], jobs_zip: Path, name: str, variant: str, fault: Callable[[ClusterStory], None]
) -> Outcome:
    """The seeded run with ``fault`` injected mid-stream; checks the outcome and prints its scenario line."""

    def report(outcome: Outcome) -> None:
        line = scenario_line(name, outcome)
        SCENARIO_LINES.append(line)
        print("\n" + line)

    return run_fault(ClusterStory(cluster, f"{name}-{SEED}", variant, jars, jobs_zip), RUN, fault, report)


def test_clean_run(cluster: Cluster, jars: list[str], jobs_zip: Path) -> None:
    """No fault; the AMQP-source job reads on two workers that cannot see the driver's log."""

    def no_fault(story: ClusterStory) -> None:
        log_dir = story.cluster.network["spark-master"].folder / story.prefix / "amqp-log"
        assert list(log_dir.rglob("*.wal")), "the source wrote no log on the driver host"
        assert cluster.spark is not None and cluster.spark.executors_of_running_apps() == 2

    run_scenario(cluster, jars, jobs_zip, "clean", "amqp", no_fault)


def test_spark_worker_host_killed(cluster: Cluster, jars: list[str], jobs_zip: Path) -> None:
    """worker1 loses power (its worker, executor and Python workers SIGKILLed); Spark reruns its tasks on worker2."""
    spark = cluster.spark
    assert spark is not None

    def fault(story: ClusterStory) -> None:
        assert spark.executors_of_running_apps() == 2
        cluster.network["worker1"].kill()
        wait_for(lambda: spark.alive_workers() == 1, 120, "the master to drop the dead worker")
        batches = story.job_batches()
        wait_for(lambda: story.job_batches() >= batches + 5, 240, "the job to go on without worker1")
        spark.start_worker("worker1")  # the host comes back; the application gets its second executor again
        spark.wait_workers(2, 120)
        wait_for(lambda: spark.executors_of_running_apps() == 2, 120, "a new executor on the restarted worker")

    run_scenario(cluster, jars, jobs_zip, "spark-worker-killed", "kafka", fault)


def test_kafka_leader_killed(cluster: Cluster, jars: list[str], jobs_zip: Path) -> None:
    """The Kafka node leading the most ``temperature`` partitions is SIGKILLed; others take over; it restarts and catches up."""
    kafka = cluster.kafka
    assert kafka is not None

    def fault(story: ClusterStory) -> None:
        leaders = kafka.partition_leaders(story.topic)
        victim = max(set(leaders.values()), key=list(leaders.values()).count)
        before = story.kafka_count(story.topic)
        kafka.kill(victim)
        moved = kafka.wait_leaders(story.topic, excluding=[victim], timeout=90)
        assert victim not in moved.values()
        # With one node of three down, acks=all still succeeds (min.insync.replicas=2): the stream goes on.
        wait_for(lambda: story.kafka_count(story.topic) > before + 200, 120, "readings on Kafka without the old leader")
        kafka.start_node(victim)
        kafka.wait_registered([victim], timeout=120)
        kafka.wait_in_sync(story.topic, victim, timeout=180)

    run_scenario(cluster, jars, jobs_zip, "kafka-leader-killed", "kafka", fault)


PARTITION_S = 20.0


def test_bridge_replica_loses_kafka(cluster: Cluster, jars: list[str], jobs_zip: Path) -> None:
    """bridge1's host loses its routes to every Kafka node for 20 s; bridge2 carries the stream meanwhile."""
    bridge_host = cluster.network["bridge1"]
    assert cluster.kafka is not None
    kafka_addresses = [spec.host for spec in cluster.kafka.specs]

    def fault(story: ClusterStory) -> None:
        before = story.kafka_count(story.topic)
        bridge_host.block(kafka_addresses)
        try:
            # The partition's length is the fault itself; there is no signal to wait for.
            time.sleep(PARTITION_S)
            during = story.kafka_count(story.topic) - before
        finally:
            bridge_host.unblock(kafka_addresses)
        assert during > 0, "nothing reached Kafka while bridge1 was cut off: bridge2 did not carry the stream"
        assert story.children["bridge1"].running(), "bridge1 died of the partition"

    run_scenario(cluster, jars, jobs_zip, "bridge-loses-kafka", "kafka", fault)


def test_artemis_live_host_cut_off(cluster: Cluster, jars: list[str], jobs_zip: Path) -> None:
    """artemis-live's host is cut off the network; the backup takes over; every client fails over to it.

    A replicated pair cannot tell a cut network from a crash: once the backup is active, the
    isolated live is fenced (SIGKILLed, as an operator or a lock manager would) before its
    network returns, or both would serve. Last in this file: the pair stays on its backup.
    """
    pair = cluster.artemis
    assert pair is not None
    live = cluster.network[ARTEMIS_LIVE]

    def fault(story: ClusterStory) -> None:
        pair.mark_failover()
        live.cut()
        try:
            pair.wait_backup_active(timeout=120)
            pair.primary.kill()
        finally:
            live.restore()
        before = story.accepted_count()
        wait_for(lambda: story.accepted_count() > before + 200, 180, "the devices publishing to the backup")

    run_scenario(cluster, jars, jobs_zip, "artemis-live-cut-off", "amqp", fault)
