"""Options of the ``amqp`` source and sink, validated once into frozen dataclasses.

Keys are case-insensitive (as Spark's are). An unknown key, or a value of the wrong form,
raises :class:`AmqpOptionError` naming the option and listing the valid ones.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit


class AmqpOptionError(ValueError):
    """An option of the ``amqp`` data source is unknown, missing or malformed."""


@dataclass(frozen=True)
class Endpoint:
    """One broker to connect to: ``amqp[s]://[user:pass@]host:port``."""

    scheme: str
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class ConnectionOptions:
    """Where and how to connect; shared by the source and the sink."""

    endpoints: tuple[Endpoint, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sasl_mechanisms: str | None = None
    ssl_ca_file: str | None = None
    ssl_cert_file: str | None = None
    ssl_key_file: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    ssl_verify_hostname: bool = True
    connect_timeout_s: float = 10.0

    @property
    def uses_tls(self) -> bool:
        return any(e.scheme == "amqps" for e in self.endpoints) or self.ssl_ca_file is not None


@dataclass(frozen=True)
class SourceOptions:
    connection: ConnectionOptions
    addresses: tuple[str, ...]
    log_dir: Path
    at_most_once: bool = False
    credit: int = 1000
    receivers: int = 1
    max_messages_per_trigger: int | None = None
    max_buffered_messages: int = 1_000_000
    fail_on_data_loss: bool = True
    log_segment_bytes: int = 64 * 1024 * 1024
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class SinkOptions:
    connection: ConnectionOptions
    address: str | None
    max_in_flight: int = 1000
    send_timeout_s: float = 60.0


_CONNECTION_KEYS = {
    "url": "amqp[s]://[user:pass@]host:port, several comma-separated for failover (required)",
    "user": "SASL user name (or put it in the url)",
    "password": "SASL password (or put it in the url)",
    "saslMechanisms": "space-separated SASL mechanisms to allow, e.g. 'PLAIN' (default: proton's choice)",
    "sslCaFile": "PEM file of the CA certificates to trust (turns TLS on)",
    "sslCertFile": "PEM client certificate (mutual TLS)",
    "sslKeyFile": "PEM private key of the client certificate",
    "sslKeyPassword": "password of sslKeyFile",
    "sslVerifyHostname": "true|false: check the broker's certificate name (default true)",
    "connectTimeout": "seconds to wait for a connection, and the idle timeout of an open one (default 10)",
}

SOURCE_KEYS = {
    **_CONNECTION_KEYS,
    "address": "address(es) to receive from, comma-separated (required)",
    "logDir": "folder of the durable write-ahead log (required unless atMostOnce=true)",
    "atMostOnce": "true: no durable log, accept on arrival; messages can be lost on a crash (default false)",
    "credit": "AMQP link credit per receiver: messages in flight from the broker (default 1000)",
    "receivers": "receiving links per address, each in its own process and log partition (default 1)",
    "maxMessagesPerTrigger": "upper bound on messages in one micro-batch (default: all available)",
    "maxBufferedMessages": "stop granting credit while this many logged messages wait for a micro-batch (default 1000000)",
    "failOnDataLoss": "true|false: fail when a needed offset is no longer in the log (default true)",
    "logSegmentBytes": "size at which a log segment file is rolled (default 67108864)",
    "startTimeout": "seconds to wait for the receivers to recover their logs and start (default 60)",
}

SINK_KEYS = {
    **_CONNECTION_KEYS,
    "address": "default target address (a per-row 'address' column wins)",
    "maxInFlight": "unsettled messages per task before waiting for the broker (default 1000)",
    "sendTimeout": "seconds a task waits for the broker to settle what it sent (default 60)",
}


_SPARK_KEYS = frozenset({"path", "checkpointlocation", "queryname"})


def _lower(options: Mapping[str, str], valid: Mapping[str, str], kind: str) -> dict[str, str]:
    # Spark passes its own keys through too; those are not the data source's options.
    opts = {k.lower(): v for k, v in options.items() if k.lower() not in _SPARK_KEYS}
    unknown = sorted(k for k in opts if k not in {v.lower() for v in valid})
    if unknown:
        listing = "; ".join(f"{k} ({doc})" for k, doc in valid.items())
        raise AmqpOptionError(f"unknown option(s) for the amqp {kind}: {', '.join(unknown)}. Valid options: {listing}")
    return opts


def _int(opts: Mapping[str, str], key: str, default: int | None, minimum: int = 1) -> int | None:
    raw = opts.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AmqpOptionError(f"option {key!r} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise AmqpOptionError(f"option {key!r} must be at least {minimum}, got {value}")
    return value


def _float(opts: Mapping[str, str], key: str, default: float) -> float:
    raw = opts.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AmqpOptionError(f"option {key!r} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise AmqpOptionError(f"option {key!r} must be positive, got {raw!r}")
    return value


def _bool(opts: Mapping[str, str], key: str, default: bool) -> bool:
    raw = opts.get(key)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise AmqpOptionError(f"option {key!r} must be true or false, got {raw!r}")


# scheme (or none at all: the lookahead stops a scheme being taken for a user), user, ":" and the rest up to the last "@"
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://|(?![A-Za-z][A-Za-z0-9+.-]*://))([^:/@]*):.*@")


def redact_url(url: str) -> str:
    """``url`` with the password of ``user:password@`` masked, safe for messages and logs.

    The mask reaches the last ``@``, so a password that was not percent-encoded (holding
    ``/``, ``:`` or ``@``) does not show either.
    """
    return _CREDENTIALS.sub(r"\1\2:***@", url)


def parse_endpoints(raw: str | None) -> tuple[Endpoint, ...]:
    if not raw:
        raise AmqpOptionError("option 'url' is required, e.g. .option('url', 'amqp://127.0.0.1:5672')")
    endpoints = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        parsed = urlsplit(part if "://" in part else f"amqp://{part}")
        if parsed.scheme not in ("amqp", "amqps"):
            raise AmqpOptionError(f"option 'url': scheme must be amqp or amqps, got {parsed.scheme!r} in {redact_url(part)!r}")
        try:
            port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
        except ValueError:
            raise AmqpOptionError(f"option 'url': bad port in {redact_url(part)!r}") from None
        if not parsed.hostname:
            raise AmqpOptionError(f"option 'url': no host in {redact_url(part)!r}")
        endpoints.append(
            Endpoint(
                parsed.scheme,
                parsed.hostname,
                port,
                unquote(parsed.username) if parsed.username else None,
                unquote(parsed.password) if parsed.password else None,
            )
        )
    if not endpoints:
        raise AmqpOptionError(f"option 'url' has no broker in it: {raw!r}")
    return tuple(endpoints)


def _connection(opts: Mapping[str, str]) -> ConnectionOptions:
    return ConnectionOptions(
        endpoints=parse_endpoints(opts.get("url")),
        user=opts.get("user"),
        password=opts.get("password"),
        sasl_mechanisms=opts.get("saslmechanisms"),
        ssl_ca_file=opts.get("sslcafile"),
        ssl_cert_file=opts.get("sslcertfile"),
        ssl_key_file=opts.get("sslkeyfile"),
        ssl_key_password=opts.get("sslkeypassword"),
        ssl_verify_hostname=_bool(opts, "sslverifyhostname", True),
        connect_timeout_s=_float(opts, "connecttimeout", 10.0),
    )


def parse_source_options(options: Mapping[str, str]) -> SourceOptions:
    opts = _lower(options, SOURCE_KEYS, "source")
    connection = _connection(opts)
    addresses = tuple(a.strip() for a in (opts.get("address") or "").split(",") if a.strip())
    if not addresses:
        raise AmqpOptionError("option 'address' is required: the address(es) to receive from, e.g. 'temperature'")
    if len(set(addresses)) != len(addresses):
        raise AmqpOptionError(f"option 'address' names an address twice: {opts['address']!r}")
    at_most_once = _bool(opts, "atmostonce", False)
    log_dir = opts.get("logdir")
    if not log_dir:
        if not at_most_once:
            raise AmqpOptionError(
                "option 'logDir' is required: a folder for the durable write-ahead log that makes the source lose "
                "nothing (on a cluster, on storage every executor can read). To accept possible loss instead, set "
                "atMostOnce=true."
            )
        log_dir = tempfile.mkdtemp(prefix="amqp-source-at-most-once-")
    return SourceOptions(
        connection=connection,
        addresses=addresses,
        log_dir=Path(log_dir),
        at_most_once=at_most_once,
        credit=_int(opts, "credit", 1000) or 1000,
        receivers=_int(opts, "receivers", 1) or 1,
        max_messages_per_trigger=_int(opts, "maxmessagespertrigger", None),
        max_buffered_messages=_int(opts, "maxbufferedmessages", 1_000_000) or 1_000_000,
        fail_on_data_loss=_bool(opts, "failondataloss", True),
        log_segment_bytes=_int(opts, "logsegmentbytes", 64 * 1024 * 1024, minimum=4096) or 64 * 1024 * 1024,
        start_timeout_s=_float(opts, "starttimeout", 60.0),
    )


def parse_sink_options(options: Mapping[str, str]) -> SinkOptions:
    opts = _lower(options, SINK_KEYS, "sink")
    return SinkOptions(
        connection=_connection(opts),
        address=opts.get("address") or None,
        max_in_flight=_int(opts, "maxinflight", 1000) or 1000,
        send_timeout_s=_float(opts, "sendtimeout", 60.0),
    )
