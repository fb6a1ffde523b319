"""The bridge's one typed settings object, from a YAML file, the environment and CLI flags.

Precedence (highest first): CLI flags, environment (``BRIDGE_*``, plus ``KAFKA_BOOTSTRAP``),
the YAML file given with ``--config``/``BRIDGE_CONFIG``, defaults. Nested values in the
environment use ``__``: ``BRIDGE_KAFKA_PRODUCER__LINGER_MS=5`` (``_`` in a Kafka key is
written as ``.``: ``linger.ms``). Secrets are ``SecretStr`` and never appear in logs.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, Literal

from amqp_message_model.connection import redact_url
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from amqp_kafka_bridge.authorization import AclRule
from amqp_kafka_bridge.converters import Converter

Policy = Literal["redeliver", "dead-letter", "detach"]
Mechanism = Literal["ANONYMOUS", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "EXTERNAL"]
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOOPBACK = ("127.0.0.1", "::1", "localhost")

_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar("bridge_config_file", default=None)

_SECRET_WORDS = ("password", "secret", "token", "key.pem", "sasl.jaas")


class Route(BaseModel, frozen=True):
    """One forwarder route: AMQP ``address`` -> Kafka ``topic`` (``to-kafka``) or back (``to-amqp``)."""

    address: str
    topic: str
    direction: Literal["to-kafka", "to-amqp"] = "to-kafka"
    group: str | None = Field(default=None, description="consumer group for to-amqp (default: bridge-<address>)")


class BridgeSettings(BaseSettings):
    """Every knob of the bridge. Field docs are the option reference (docs/bridge.md)."""

    # hide_input_in_errors: a validation error would otherwise quote the raw input, passwords included.
    model_config = SettingsConfigDict(
        env_prefix="BRIDGE_", env_nested_delimiter="__", extra="forbid", frozen=True, hide_input_in_errors=True
    )

    mode: Literal["server", "forwarder"] = "server"
    amqp_host: str = "127.0.0.1"
    amqp_port: int = 5673
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", validation_alias=AliasChoices("kafka_bootstrap", "BRIDGE_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP")
    )
    kafka_common: dict[str, str] = Field(
        default_factory=dict,
        description="librdkafka settings for every Kafka client (security.protocol, sasl.*, ssl.*), under the per-client ones",
    )
    kafka_producer: dict[str, str] = Field(default_factory=dict, description="librdkafka producer settings passed through")
    kafka_consumer: dict[str, str] = Field(default_factory=dict, description="librdkafka consumer settings passed through")

    converter: Converter = "raw"
    key_property: str | None = Field(default=None, description="application property used as key without x-opt-bridge.key")
    max_message_bytes: int = Field(default=1024 * 1024, gt=0)
    link_credit: int = Field(default=1000, gt=0, description="max unsettled deliveries per link, both directions")
    delivery_timeout_s: float = Field(default=30.0, gt=0, description="Kafka ack deadline; then the delivery is released")
    auto_create_topics: bool = True
    native_lane: bool = Field(
        default=True,
        description="produce and settle AMQP->Kafka deliveries in the bridge's C extension (producer_lane); "
        "false, or where it is not built: confluent-kafka's Python producer",
    )
    topic_partitions: int = Field(default=1, gt=0, description="partitions of topics the bridge creates")
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    on_released: Policy = "redeliver"
    on_rejected: Policy = "dead-letter"
    dead_letter_suffix: str = ".dlq"
    max_redeliveries: int = Field(default=10, ge=0, description="then a released record follows on_rejected")

    sasl_mechanisms: list[Mechanism] = Field(
        default_factory=lambda: ["ANONYMOUS"],
        description="SASL mechanisms the listener offers (Cyrus): ANONYMOUS, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, EXTERNAL",
    )
    sasl_db_file: Path | None = Field(
        default=None, description="sasldb with the users (saslpasswd2 -c -f FILE USER); PLAIN and SCRAM check it"
    )
    sasl_config_dir: Path | None = Field(
        default=None, description="a Cyrus configuration directory of your own (instead of sasl_db_file)"
    )
    sasl_config_name: str = Field(default="amqp-kafka-bridge", description="the .conf name in sasl_config_dir")
    allow_plain_without_tls: bool = Field(
        default=False, description="offer PLAIN on a listener without TLS (passwords in clear text on the wire)"
    )
    allow_open_access: bool = Field(
        default=False,
        description="start on a non-loopback address although ANONYMOUS clients could then use (or create) any topic",
    )
    acl: list[AclRule] = Field(default_factory=list, description="authorization rules; once any exists, deny by default")
    acl_file: Path | None = Field(default=None, description="YAML list of authorization rules (added to acl)")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_key_password: SecretStr | None = None
    tls_ca_file: Path | None = Field(default=None, description="CA for client certificates (then clients must present one)")

    broker_urls: list[str] = Field(default_factory=lambda: ["amqp://127.0.0.1:5672"], description="forwarder: failover URLs")
    routes: list[Route] = Field(default_factory=list, description="forwarder routes; in server mode, address -> topic renames")
    routes_file: Path | None = None

    workers: int = Field(
        default=1,
        ge=1,
        description="server mode: worker processes; the supervisor hands each connection to the one with the fewest open; "
        "one /metrics on http_port",
    )
    drain_timeout_s: float = Field(default=10.0, ge=0)
    kafka_stats_interval_s: float = Field(
        default=5.0, ge=0, description="librdkafka statistics period for the lag and queue metrics (0: off)"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(default="json", description="stderr log lines: JSON objects or text")
    max_worker_restarts: int = Field(
        default=5, ge=0, description="--workers: restarts of a crashing worker (backoff 0.5 s doubling to 30 s) before giving up"
    )

    @field_validator("kafka_common", "kafka_producer", "kafka_consumer", mode="before")
    @classmethod
    def _dotted_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k).replace("_", ".").lower(): str(v) for k, v in value.items()}
        return value

    @field_validator("sasl_mechanisms", "broker_urls", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BridgeSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.workers > 1 and self.mode != "server":
            raise ValueError("workers > 1 is for server mode (the workers serve the AMQP port)")
        if self.mode == "server":
            self._check_authentication()
        return self

    def _check_authentication(self) -> None:
        mechanisms = set(self.sasl_mechanisms)
        if not mechanisms:
            raise ValueError("sasl_mechanisms is empty: give at least one (ANONYMOUS, PLAIN, SCRAM-SHA-256, ...)")
        own_config = self.sasl_config_dir is not None
        if mechanisms & set(PASSWORD_MECHANISMS) and self.sasl_db_file is None and not own_config:
            raise ValueError(
                f"sasl_mechanisms {sorted(mechanisms & set(PASSWORD_MECHANISMS))} need users: set sasl_db_file "
                "(make one with: python -m amqp_kafka_bridge.sasl add-user --db FILE USER) or sasl_config_dir"
            )
        if self.sasl_db_file is not None and not Path(self.sasl_db_file).is_file():
            raise ValueError(f"sasl_db_file {self.sasl_db_file} does not exist (add a user to create it)")
        if "EXTERNAL" in mechanisms and self.tls_ca_file is None:
            raise ValueError("EXTERNAL needs client certificates: set tls_ca_file (and tls_cert_file/tls_key_file)")
        if self.tls_cert_file is None and "PLAIN" in mechanisms and not self.allow_plain_without_tls:
            raise ValueError(
                "PLAIN without TLS sends passwords in clear text: set tls_cert_file/tls_key_file, "
                "use SCRAM-SHA-256, or set allow_plain_without_tls: true to accept that on purpose"
            )
        if self.amqp_host not in LOOPBACK and "ANONYMOUS" in mechanisms and not self.allow_open_access:
            if not self.all_acl():
                raise ValueError(
                    f"amqp_host {self.amqp_host} is reachable from the network, ANONYMOUS is allowed and there are no acl "
                    "rules: anyone could use every topic. Remove ANONYMOUS, add acl rules, or set allow_open_access: true "
                    "(BRIDGE_ALLOW_OPEN_ACCESS=true) to run it open on purpose"
                )
            from amqp_kafka_bridge.authorization import Authorizer

            if self.auto_create_topics and Authorizer(self.all_acl()).grants_anonymous("create"):
                raise ValueError(
                    f"amqp_host {self.amqp_host} is reachable from the network and anonymous clients may create topics: "
                    "remove create_topics from the anonymous rules, set auto_create_topics: false, "
                    "or set allow_open_access: true to allow it on purpose"
                )

    def all_acl(self) -> list[AclRule]:
        """The ``acl`` rules and those of ``acl_file``."""
        if self.acl_file is None:
            return list(self.acl)
        import yaml

        data = yaml.safe_load(Path(self.acl_file).read_text()) or []
        raw = data.get("acl", data) if isinstance(data, dict) else data
        return [*self.acl, *(AclRule.model_validate(rule) for rule in raw)]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get()
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if path is not None:
            sources += (YamlConfigSettingsSource(settings_cls, yaml_file=path),)
        return sources

    @classmethod
    def load(cls, config_file: str | Path | None = None, **overrides: Any) -> BridgeSettings:
        """Settings from ``config_file`` (YAML), the environment and ``overrides`` (CLI flags), in rising precedence."""
        token = _config_file.set(Path(config_file) if config_file else None)
        try:
            settings = cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _config_file.reset(token)
        if settings.routes_file is not None:
            settings = settings.with_routes_file(settings.routes_file)
        return settings

    def with_routes_file(self, path: Path) -> BridgeSettings:
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        raw = data.get("routes", data) if isinstance(data, dict) else data
        routes = [Route.model_validate(r) for r in raw]
        return self.model_copy(update={"routes": [*self.routes, *routes]})

    def topic_for(self, address: str) -> str:
        """The Kafka topic an AMQP address maps to (a to-kafka route, else the same name)."""
        for route in self.routes:
            if route.address == address and route.direction == "to-kafka":
                return route.topic
        return address

    def producer_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            # Measured with the hot path (interleaved, bench.bench_bridge --ab-only --linger-ms 0): p50 1.2-1.4 ms
            # with 0 vs 2.3-2.9 ms with 1 ms (any linger > 0 costs a millisecond or more), for ~10 us more CPU
            # per message in librdkafka's broker thread and no rate lost (the sender, not the bridge, is the limit).
            "linger.ms": 0,
            # One produce request in flight per broker: what arrives meanwhile goes in the next, bigger request
            # (fewer requests for librdkafka and the broker to handle). Alternated, 20,000 messages one sender:
            # bridge CPU 28.8 vs 36.8 us/msg, Kafka's 14-20 vs 17-21, rate +6 %, one-in-flight p50 the same;
            # with 4 / 32 messages in flight, p50 1.38 / 4.32 ms vs 1.59 / 4.85, p99 4.1 / 10.3 vs 4.7 / 18.7.
            # Ordering and idempotence hold at any value up to 5 (librdkafka's default).
            "max.in.flight.requests.per.connection": 1,
            "message.timeout.ms": int(self.delivery_timeout_s * 1000),
            "message.max.bytes": max(self.max_message_bytes + 64 * 1024, 1_000_000),
        }
        conf.update(self.kafka_common)
        conf.update(self.kafka_producer)
        return conf

    def consumer_config(self, group: str) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.auto_offset_reset,
            "allow.auto.create.topics": self.auto_create_topics,
        }
        conf.update(self.kafka_common)
        conf.update(self.kafka_consumer)
        return conf

    def admin_config(self) -> dict[str, Any]:
        passthrough = {k: v for k, v in self.kafka_producer.items() if k.startswith(("security.", "sasl.", "ssl."))}
        # The topic check's metadata request must not create the topic through the broker's own
        # auto.create.topics.enable: creation is the bridge's decision (auto_create_topics, acl).
        return {"bootstrap.servers": self.kafka_bootstrap, "allow.auto.create.topics": False, **self.kafka_common, **passthrough}

    def __repr__(self) -> str:
        return f"BridgeSettings({self.redacted()!r})"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict safe to log: secrets and secret-looking Kafka keys masked."""
        data = self.model_dump(mode="json")
        data["broker_urls"] = [redact_url(url) for url in self.broker_urls]
        for section in ("kafka_common", "kafka_producer", "kafka_consumer"):
            data[section] = {k: ("***" if any(w in k for w in _SECRET_WORDS) else v) for k, v in data[section].items()}
        return data
