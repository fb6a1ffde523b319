"""``python -m demo``: the whole story on one machine, started and stopped by one command.

Simulated devices -> Artemis ``temperature`` -> the Spark windowed-max job -> AMQP ``max``
(printed live by the result receiver) and Kafka ``max``; the bridge forwards ``temperature``
to the Kafka topic ``temperature``. Modules: :mod:`demo.settings` (one frozen settings
object), :mod:`demo.topology` (broker address fan-out, Kafka topics), :mod:`demo.children`
(child processes in their own process groups), :mod:`demo.commands` (their command lines),
:mod:`demo.kafka_tally` (counting what reached Kafka), :mod:`demo.run` (the orchestration).
"""
