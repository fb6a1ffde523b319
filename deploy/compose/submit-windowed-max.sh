#!/bin/sh
# The windowed-max job submitted to the Spark master (docker-compose service `windowed-max`).
# Every setting comes from the environment (docker-compose.yml); see docs/deployment.md.
#
# The connector is installed in the image (driver and worker); --py-files ships the job's own code.
# No PYTHONPATH: Spark hands the driver's PYTHONPATH to the executors' Python workers as well.
set -eu
: "${SPARK_MASTER_URL:?}" "${AMQP_URL:?}" "${KAFKA_BOOTSTRAP:?}" "${SPARK_KAFKA_JARS:?}"
ARCHIVE="${PY_FILES:-/app/dist/jobs.zip}"
SHARED="${SHARED_DIR:-/shared}"
unset PYTHONPATH
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
