"""The whole story on a cluster of hosts, on one machine (``make cluster-test``).

::

    10.77.0.0/24, one Linux bridge "clu-br0"; every box is a network namespace with its own folder
    devices ──AMQP──▶ artemis-live ══replication══ artemis-backup      (clients get both URLs)
                           │  temperature (MULTICAST): queue .bridge, queue .spark
              ┌────────────┴────────────┐
           bridge1                   bridge2       two forwarder replicas sharing the .bridge queue
              └───────────┬─────────────┘
                kafka1  kafka2  kafka3              KRaft, topics RF 3, min.insync.replicas 2
                          │ temperature
                spark-master (+ driver: checkpoint on durable storage, the AMQP source's log)
                   worker1    worker2               executors; they cannot see the driver's folder
                          │
                  AMQP max + Kafka max ──▶ receiver

:mod:`cluster.hosts` makes the hosts (namespaces, bridge, private folders, faults),
:mod:`cluster.brokers` places Kafka and Artemis on them, :mod:`cluster.spark` the Spark
standalone daemons, and :mod:`cluster.harness` brings it all up and down. The scenarios
(a clean run and one fault each) are ``tests/cluster``.
"""
