"""Soak: a bounded run at a high rate, sampling the memory and open files of the processes under load.

    python -m bench.soak [--seconds 300] [--receivers 2] [--size 100] [--rate 0] [--churn 1000]

Two loads run side by side for ``--seconds``:

* source ingest: a sender process feeds an Artemis address; ``--receivers`` ingest processes
  of the amqp source (``connectors/src/pyspark_amqp/ingest.py``, configured through the source's own
  options) receive, log, fsync and accept. A thread here plays the Spark query on every
  trigger: plan what is durable (``set_planned``), read it from the log, commit (``trim``), so
  the log stays bounded. The sender runs at most ``--backlog`` messages ahead of what the
  query read: a closed loop, as fast as the slowest stage, with no backlog piling up anywhere.
* bridge: two sender processes feed ``python -m amqp_kafka_bridge`` (server mode) -> one Kafka topic, each
  with at most ``--window`` unsettled: one on a single long-lived connection, one on a new
  connection every ``--churn`` messages (send them, drain, close, reconnect, attach: what leaks
  per connection or link shows within minutes). Kafka keeps what it gets.

Every ``--interval`` s the RSS (``VmRSS``) and open fd count of the bridge and of each ingest
process are sampled; :func:`flatness` gives the verdict (the test uses the same rule). At the
end every accepted message is counted where it should be: in the ingest log (each message id
once) and in the Kafka topic. Uses AMQP_URL/KAFKA_BOOTSTRAP when set, else private services.

Modules: ``load`` (the sender processes), ``sampling`` (RSS/fd samples and the flatness rule),
``arrivals`` (where the accepted messages went), ``report`` (the result and its report),
``driver`` (``run``: start, load, wind down, count) and ``cli`` (``main``).
"""

from bench.soak.cli import main
from bench.soak.driver import run
from bench.soak.report import SideResult, SoakResult
from bench.soak.sampling import MB, MIN_SAMPLES, RULE, Flatness, Sample, Sampler, flatness

__all__ = ["MB", "MIN_SAMPLES", "RULE", "Flatness", "Sample", "Sampler", "SideResult", "SoakResult", "flatness", "main", "run"]
