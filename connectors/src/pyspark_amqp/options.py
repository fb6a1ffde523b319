"""Options of the ``amqp`` source and sink, validated once into frozen dataclasses.

Keys are case-insensitive (as Spark's are). An unknown key, or a value of the wrong form,
raises :class:`AmqpOptionError` naming the option and listing the valid ones.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from amqp_message_model.connection import ConnectionOptions, Endpoint, parse_endpoints


class AmqpOptionError(ValueError):
    """An option of the ``amqp`` data source is unknown, missing or malformed."""


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
    selector: str | None = None
    include_annotations: bool = False
    min_messages_per_trigger: int | None = None
    max_trigger_delay_s: float = 15 * 60.0
    mode: str = "consume"
    max_messages: int | None = None
    timeout_s: float = 60.0
    quiet_period_s: float = 1.0
    shared_log_dir: bool = True

    @property
    def browse(self) -> bool:
        return self.mode == "browse"


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
    "sharedLogDir": "true: executors read logDir themselves (shared storage); false: the driver reads each "
    "micro-batch from the log and ships it in the tasks (no shared storage needed; bound batches with "
    "maxMessagesPerTrigger) (default true)",
    "atMostOnce": "true: no durable log, accept on arrival; messages can be lost on a crash (default false)",
    "credit": "AMQP link credit per receiver: messages in flight from the broker (default 1000)",
    "receivers": "receiving links per address, each in its own process and log partition (default 1)",
    "maxMessagesPerTrigger": "upper bound on messages in one micro-batch (default: all available)",
    "maxBufferedMessages": "stop granting credit while this many logged messages wait for a micro-batch (default 1000000)",
    "failOnDataLoss": "true|false: fail when a needed offset is no longer in the log (default true)",
    "logSegmentBytes": "size at which a log segment file is rolled (default 67108864)",
    "startTimeout": "seconds to wait for the receivers to recover their logs and start (default 60)",
    "selector": "JMS/SQL-92 selector the broker applies, e.g. \"device_id = 'd3'\" (default: every message)",
    "includeAnnotations": "true: add a message_annotations column, map<string,string> (default false)",
    "minMessagesPerTrigger": "streams: wait for this many messages before a micro-batch, up to maxTriggerDelay (default: none)",
    "maxTriggerDelay": "streams: longest wait for minMessagesPerTrigger, e.g. '3s', '15m' (default 15m)",
    "mode": "batch reads: consume (take the messages off the queue, default) or browse (look, leave them)",
    "maxMessages": "batch reads: at most this many messages (default: until the receivers are quiet)",
    "timeout": "batch reads: seconds to receive before returning what came (default 60)",
    "quietPeriod": "batch reads: seconds without a new message after which the queue counts as read (default 1)",
}

STREAM_ONLY_KEYS = frozenset({"maxmessagespertrigger", "minmessagespertrigger", "maxtriggerdelay", "maxbufferedmessages"})
BATCH_ONLY_KEYS = frozenset({"mode", "maxmessages", "timeout", "quietperiod"})
MODES = ("consume", "browse")

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


def _endpoints(raw: str | None) -> tuple[Endpoint, ...]:
    if not raw:
        raise AmqpOptionError("option 'url' is required, e.g. .option('url', 'amqp://127.0.0.1:5672')")
    try:
        return parse_endpoints(raw)
    except ValueError as exc:
        raise AmqpOptionError(f"option 'url': {exc}") from None


def _connection(opts: Mapping[str, str]) -> ConnectionOptions:
    return ConnectionOptions(
        endpoints=_endpoints(opts.get("url")),
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


_UNITS_S = {
    "us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip


def _duration(opts: Mapping[str, str], key: str, default: float) -> float:
    """Seconds from Spark's duration forms ('3s', '15m', '500ms', '3 seconds'); a bare number is milliseconds, as in Spark."""
    raw = opts.get(key)
    if raw is None or raw == "":
        return default
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", raw)
    unit = match.group(2).lower() if match else ""
    if not match or (unit and unit not in _UNITS_S):
        raise AmqpOptionError(f"option {key!r} must be a duration such as '3s', '500ms' or '15m', got {raw!r}")
    return float(match.group(1)) * (_UNITS_S[unit] if unit else 1e-3)


def _check_kind(opts: Mapping[str, str], kind: str) -> None:
    """Stream-only options on a batch read (and the reverse) are mistakes worth naming."""
    if kind == "stream":
        wrong = sorted(k for k in opts if k in BATCH_ONLY_KEYS)
        if wrong:
            raise AmqpOptionError(
                f"option(s) {', '.join(wrong)} apply to batch reads (spark.read), not to streams (spark.readStream)"
            )
    elif kind == "batch":
        wrong = sorted(k for k in opts if k in STREAM_ONLY_KEYS)
        if wrong:
            raise AmqpOptionError(
                f"option(s) {', '.join(wrong)} apply to streams (spark.readStream), not to batch reads; "
                "bound a batch read with maxMessages and timeout"
            )


def parse_source_options(options: Mapping[str, str], kind: str = "any") -> SourceOptions:
    """Validate the source's options; ``kind`` is ``"stream"``, ``"batch"`` or ``"any"`` (at ``load()``, not yet known)."""
    opts = _lower(options, SOURCE_KEYS, "source")
    _check_kind(opts, kind)
    connection = _connection(opts)
    addresses = tuple(a.strip() for a in (opts.get("address") or "").split(",") if a.strip())
    if not addresses:
        raise AmqpOptionError("option 'address' is required: the address(es) to receive from, e.g. 'temperature'")
    if len(set(addresses)) != len(addresses):
        raise AmqpOptionError(f"option 'address' names an address twice: {opts['address']!r}")
    at_most_once = _bool(opts, "atmostonce", False)
    mode = (opts.get("mode") or "consume").lower()
    if mode not in MODES:
        raise AmqpOptionError(f"option 'mode' must be one of {', '.join(MODES)}, got {opts['mode']!r}")
    selector = opts.get("selector")
    if selector is not None and not selector.strip():
        raise AmqpOptionError("option 'selector' is empty: leave it out to receive every message")
    log_dir = opts.get("logdir")
    if not log_dir:
        if mode == "browse":
            log_dir = tempfile.mkdtemp(prefix="amqp-browse-")
        elif not at_most_once:
            raise AmqpOptionError(
                "option 'logDir' is required: a folder for the durable write-ahead log that makes the source lose "
                "nothing (on a cluster, on storage every executor can read). To accept possible loss instead, set "
                "atMostOnce=true."
            )
        else:
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
        selector=selector,
        include_annotations=_bool(opts, "includeannotations", False),
        min_messages_per_trigger=_int(opts, "minmessagespertrigger", None),
        max_trigger_delay_s=_duration(opts, "maxtriggerdelay", 15 * 60.0),
        mode=mode,
        max_messages=_int(opts, "maxmessages", None),
        timeout_s=_float(opts, "timeout", 60.0),
        quiet_period_s=_float(opts, "quietperiod", 1.0),
        shared_log_dir=_bool(opts, "sharedlogdir", True),
    )


def parse_sink_options(options: Mapping[str, str]) -> SinkOptions:
    opts = _lower(options, SINK_KEYS, "sink")
    return SinkOptions(
        connection=_connection(opts),
        address=opts.get("address") or None,
        max_in_flight=_int(opts, "maxinflight", 1000) or 1000,
        send_timeout_s=_float(opts, "sendtimeout", 60.0),
    )
