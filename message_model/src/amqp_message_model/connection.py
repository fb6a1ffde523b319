"""Broker URLs, failover, SASL and TLS as python-qpid-proton connect arguments, and URL redaction.

One connection config for every AMQP client of the project: the Spark source's receivers,
the sink's senders and the bridge's forwarder all connect through :func:`connect_kwargs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from proton import SSLDomain
from proton.reactor import Backoff

# scheme (or none at all: the lookahead stops a scheme being taken for a user), user, ":" and the rest up to the last "@"
_CREDENTIALS = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://|(?![A-Za-z][A-Za-z0-9+.-]*://))([^:/@]*):.*@")


def redact_url(url: str) -> str:
    """``url`` with the password of ``user:password@`` masked, safe for messages and logs.

    The mask reaches the last ``@``, so a password that was not percent-encoded (holding
    ``/``, ``:`` or ``@``) does not show either.
    """
    return _CREDENTIALS.sub(r"\1\2:***@", url)


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


def parse_endpoints(raw: str) -> tuple[Endpoint, ...]:
    """Comma-separated broker URLs (a bare ``host:port`` means ``amqp://``) as endpoints, in failover order.

    Raises ``ValueError`` naming the bad URL (its password redacted).
    """
    endpoints = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        parsed = urlsplit(part if "://" in part else f"amqp://{part}")
        if parsed.scheme not in ("amqp", "amqps"):
            raise ValueError(f"scheme must be amqp or amqps, got {parsed.scheme!r} in {redact_url(part)!r}")
        try:
            port = parsed.port or (5671 if parsed.scheme == "amqps" else 5672)
        except ValueError:
            raise ValueError(f"bad port in {redact_url(part)!r}") from None
        if not parsed.hostname:
            raise ValueError(f"no host in {redact_url(part)!r}")
        user = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password else None
        endpoints.append(Endpoint(parsed.scheme, parsed.hostname, port, user, password))
    if not endpoints:
        raise ValueError(f"no broker URL in {redact_url(raw)!r}")
    return tuple(endpoints)


@dataclass(frozen=True)
class ConnectionOptions:
    """Where and how to connect. Credentials given here win over those in the first URL."""

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
    max_reconnect_delay_s: float = 10.0

    @property
    def uses_tls(self) -> bool:
        return any(e.scheme == "amqps" for e in self.endpoints) or self.ssl_ca_file is not None


def ssl_domain(options: ConnectionOptions) -> SSLDomain | None:
    """The client TLS domain: the CA to trust, host name checks, and a client certificate if given."""
    if not options.uses_tls:
        return None
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    if options.ssl_ca_file:
        domain.set_trusted_ca_db(options.ssl_ca_file)
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME if options.ssl_verify_hostname else SSLDomain.VERIFY_PEER)
    if options.ssl_cert_file:
        domain.set_credentials(options.ssl_cert_file, options.ssl_key_file, options.ssl_key_password)
    return domain


# With credentials, the SASL mechanisms that use them. A broker that lists ANONYMOUS first
# (RabbitMQ's AMQP 1.0 plugin) would otherwise let proton pick it, and a wrong password
# would silently connect as the anonymous user.
CREDENTIAL_MECHANISMS = "PLAIN SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5"


def connect_kwargs(options: ConnectionOptions, reconnect: bool) -> dict[str, Any]:
    """Keyword arguments for ``Container.connect``: every endpoint for failover, credentials, TLS.

    ``reconnect=True`` retries for ever with backoff (0.1 s doubling to
    ``max_reconnect_delay_s``), cycling through the endpoints; ``False`` fails on the first
    lost connection. ``connect_timeout_s`` is also the idle timeout: a peer that sends nothing
    (a broker half started, a dead network path) is dropped after that long, and
    reconnection takes over.
    """
    first = options.endpoints[0]
    kwargs: dict[str, Any] = {
        "urls": [e.url for e in options.endpoints],
        "reconnect": Backoff(initial=0.1, factor=2, max_delay=options.max_reconnect_delay_s) if reconnect else False,
        "ssl_domain": ssl_domain(options),
        "sasl_enabled": True,
        "heartbeat": options.connect_timeout_s,
        "allow_insecure_mechs": True,
    }
    user = options.user or first.user
    password = options.password or first.password
    if user is not None:
        kwargs["user"] = user
    if password is not None:
        kwargs["password"] = password
    if options.sasl_mechanisms:
        kwargs["allowed_mechs"] = options.sasl_mechanisms
    elif user is not None:
        kwargs["allowed_mechs"] = CREDENTIAL_MECHANISMS
    return kwargs
