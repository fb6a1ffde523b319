#!/bin/sh
# The windowed-max job submitted to the Spark master (docker-compose service `windowed-max`).
# Every setting comes from the environment (docker-compose.yml); see docs/deployment.md.
#
# PYTHONPATH=<archive> for the driver as well as --py-files for the executors: Spark 4.2 plans a
# Python streaming data source in a Python process the driver JVM starts without the --py-files.
set -eu
: "${SPARK_MASTER_URL:?}" "${AMQP_URL:?}" "${KAFKA_BOOTSTRAP:?}" "${SPARK_KAFKA_JARS:?}"
ARCHIVE="${PY_FILES:-/app/dist/amqp_spark_kafka.zip}"
SHARED="${SHARED_DIR:-/shared}"
export PYTHONPATH="$ARCHIVE"
exec spark-submit \
  --master "$SPARK_MASTER_URL" \
  --deploy-mode client \
  --name windowed-max \
  --conf spark.driver.host="${SPARK_DRIVER_HOST:-$(hostname)}" \
  --conf spark.driver.bindAddress=0.0.0.0 \
  --conf spark.executor.memory="${SPARK_EXECUTOR_MEMORY:-512m}" \
  --conf spark.cores.max="${SPARK_CORES_MAX:-1}" \
  --py-files "$ARCHIVE" \
  --jars "$SPARK_KAFKA_JARS" \
  /app/jobs/windowed_max.py \
  --amqp-url "$AMQP_URL" \
  --source-address "${SOURCE_ADDRESS:-temperature}" \
  --sink-address "${SINK_ADDRESS:-max}" \
  --kafka-bootstrap "$KAFKA_BOOTSTRAP" \
  --kafka-topic "${KAFKA_TOPIC:-max}" \
  --checkpoint-dir "$SHARED/checkpoints/windowed-max" \
  --log-dir "$SHARED/amqp-log/windowed-max" \
  ${MAX_MESSAGES_PER_TRIGGER:+--max-messages-per-trigger "$MAX_MESSAGES_PER_TRIGGER"} \
  "$@"
