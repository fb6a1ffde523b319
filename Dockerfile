# One image for this project's own parts: the bridge, the simulators, the result receiver, the
# spark-submit driver of the windowed-max job, the Spark worker (its executors must run the
# same Python and python-qpid-proton as the driver) and Jupyter.
#
#   docker build -t amqp-spark-kafka .
#   docker compose up          # see docker-compose.yml and docs/deployment.md

# ---- build: wheels, including python-qpid-proton compiled against OpenSSL (TLS), and this project's ----
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev libffi-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt jupyterlab==4.6.6
# Each distribution's LICENSE links to ../LICENSE.
COPY LICENSE .
COPY message_model message_model
COPY connectors connectors
COPY bridge bridge
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./message_model ./connectors ./bridge

# ---- runtime ----
# bookworm: it has OpenJDK 17 (Spark 4.2 runs on 17 and 21).
FROM python:3.11-slim-bookworm
# Java for spark-submit and the Spark worker (pyspark's spark-class); libssl for proton's TLS;
# procps because Spark's scripts call ps; tini reaps the JVM's children and forwards signals.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless libssl3 procps tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
COPY requirements.txt /tmp/requirements.txt
# The project's wheels are installed like any user installs them: the executors of the Spark
# worker (same image) find the connector here, so the job ships only its own code (jobs.zip).
RUN pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements.txt jupyterlab==4.6.6 \
    amqp-message-model pyspark-amqp amqp-kafka-bridge \
 && rm -rf /wheels \
 && python -c 'import proton, sys; sys.exit(0 if proton.SSL.present() else "python-qpid-proton was built without TLS")'

ENV PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PROJECT_CACHE=/opt/project-cache \
    PYSPARK_PYTHON=python \
    SPARK_HOME=/usr/local/lib/python3.11/site-packages/pyspark
# Spark's Kafka connector for the same Spark version as pyspark (requirements.txt), in the
# image so that a running job needs no Maven; kafka-clients and commons-pool2 as
# services/maven/spark-kafka.pom.xml resolves them. tests/deploy checks the versions agree.
ARG SPARK_VERSION=4.2.0
ARG KAFKA_CLIENTS_VERSION=3.9.2
ARG COMMONS_POOL2_VERSION=2.13.1
ARG MAVEN=https://repo1.maven.org/maven2
ADD ${MAVEN}/org/apache/spark/spark-sql-kafka-0-10_2.13/${SPARK_VERSION}/spark-sql-kafka-0-10_2.13-${SPARK_VERSION}.jar \
    ${MAVEN}/org/apache/spark/spark-token-provider-kafka-0-10_2.13/${SPARK_VERSION}/spark-token-provider-kafka-0-10_2.13-${SPARK_VERSION}.jar \
    ${MAVEN}/org/apache/kafka/kafka-clients/${KAFKA_CLIENTS_VERSION}/kafka-clients-${KAFKA_CLIENTS_VERSION}.jar \
    ${MAVEN}/org/apache/commons/commons-pool2/${COMMONS_POOL2_VERSION}/commons-pool2-${COMMONS_POOL2_VERSION}.jar \
    /opt/spark-kafka/
ENV SPARK_KAFKA_JARS=/opt/spark-kafka/spark-sql-kafka-0-10_2.13-${SPARK_VERSION}.jar,/opt/spark-kafka/spark-token-provider-kafka-0-10_2.13-${SPARK_VERSION}.jar,/opt/spark-kafka/kafka-clients-${KAFKA_CLIENTS_VERSION}.jar,/opt/spark-kafka/commons-pool2-${COMMONS_POOL2_VERSION}.jar

WORKDIR /app
COPY . /app
# The job's own code, shipped to the executors with --py-files (docs/deployment.md).
RUN python -m deploy.package --jobs-only --out-dir /app/dist
ENTRYPOINT ["tini", "--"]
CMD ["amqp-kafka-bridge"]
