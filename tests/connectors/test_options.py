"""Option parsing: case-insensitive keys, clear errors naming the option and the valid ones."""

from __future__ import annotations

import pytest
from pyspark_amqp.options import AmqpOptionError, parse_sink_options, parse_source_options
from pyspark_amqp.source import split_limit

pytestmark = pytest.mark.unit

BASE = {"url": "amqp://127.0.0.1:5672", "address": "temperature", "logDir": "/tmp/x"}


def test_defaults_and_case_insensitive_keys() -> None:
    opts = parse_source_options(
        {"URL": "amqp://h:1", "Address": "a, b", "LOGDIR": "/l", "maxmessagespertrigger": "500", "Credit": "50"}
    )
    assert [e.url for e in opts.connection.endpoints] == ["amqp://h:1"]
    assert opts.addresses == ("a", "b")
    assert (opts.max_messages_per_trigger, opts.credit, opts.receivers, opts.fail_on_data_loss) == (500, 50, 1, True)


def test_failover_urls_and_credentials_in_url() -> None:
    opts = parse_source_options({**BASE, "url": "amqps://u%40x:p%3Aw@broker-a:5671, amqp://broker-b"})
    a, b = opts.connection.endpoints
    assert (a.scheme, a.host, a.port, a.user, a.password) == ("amqps", "broker-a", 5671, "u@x", "p:w")
    assert (b.url, b.user) == ("amqp://broker-b:5672", None)
    assert opts.connection.uses_tls
    assert "p:w" not in repr(opts)  # secrets stay out of logs


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(
        AmqpOptionError,
        match=r"unknown option\(s\) for the amqp source: maxoffsetspertrigger\. Valid options: url .*maxMessagesPerTrigger",
    ) as err:
        parse_source_options({**BASE, "maxOffsetsPerTrigger": "5"})
    assert "logDir" in str(err.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "a", "logDir": "/l"}, "option 'url' is required"),
        ({"url": "http://h:1", "address": "a", "logDir": "/l"}, "scheme must be amqp or amqps"),
        ({"url": "amqp://h:notaport", "address": "a", "logDir": "/l"}, "bad port"),
        ({"url": "amqp://h", "logDir": "/l"}, "option 'address' is required"),
        ({"url": "amqp://h", "address": "a,a", "logDir": "/l"}, "names an address twice"),
        ({"url": "amqp://h", "address": "a"}, "option 'logDir' is required.*atMostOnce=true"),
        ({**BASE, "credit": "0"}, "'credit' must be at least 1"),
        ({**BASE, "credit": "lots"}, "'credit' must be a whole number"),
        ({**BASE, "failOnDataLoss": "maybe"}, "'failondataloss' must be true or false"),
        ({**BASE, "connectTimeout": "-1"}, "'connecttimeout' must be positive"),
    ],
)
def test_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(AmqpOptionError, match=message):
        parse_source_options(options)


def test_at_most_once_needs_no_log_dir() -> None:
    opts = parse_source_options({"url": "amqp://h", "address": "a", "atMostOnce": "true"})
    assert opts.at_most_once and opts.log_dir.name.startswith("amqp-source-at-most-once-")


def test_sink_options() -> None:
    opts = parse_sink_options({"url": "amqp://h", "address": "max", "maxInFlight": "10"})
    assert (opts.address, opts.max_in_flight) == ("max", 10)
    with pytest.raises(AmqpOptionError, match="unknown option.*logdir"):
        parse_sink_options({"url": "amqp://h", "logDir": "/x"})


def test_split_limit_is_proportional_and_bounded() -> None:
    assert split_limit({"a": 10, "b": 30}, 100) == {"a": 10, "b": 30}
    shares = split_limit({"a": 100, "b": 300, "c": 0}, 40)
    assert shares == {"a": 10, "b": 30, "c": 0}
    odd = split_limit({"a": 1, "b": 1, "c": 1}, 2)
    assert sum(odd.values()) == 2 and all(v <= 1 for v in odd.values())
