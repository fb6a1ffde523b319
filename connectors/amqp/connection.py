"""Turn :class:`ConnectionOptions` into python-qpid-proton connect arguments (failover, SASL, TLS)."""

from __future__ import annotations

from typing import Any

from proton import SSLDomain
from proton.reactor import Backoff

from connectors.amqp.options import ConnectionOptions


def ssl_domain(options: ConnectionOptions) -> SSLDomain | None:
    if not options.uses_tls:
        return None
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    if options.ssl_ca_file:
        domain.set_trusted_ca_db(options.ssl_ca_file)
    domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME if options.ssl_verify_hostname else SSLDomain.VERIFY_PEER)
    if options.ssl_cert_file:
        domain.set_credentials(options.ssl_cert_file, options.ssl_key_file, options.ssl_key_password)
    return domain


def connect_kwargs(options: ConnectionOptions, reconnect: bool) -> dict[str, Any]:
    """Keyword arguments for ``Container.connect``: every endpoint for failover, credentials, TLS.

    ``reconnect=True`` retries for ever with backoff (0.1 s doubling to 10 s), cycling through
    the endpoints; ``False`` fails on the first lost connection (the sink: a task should fail
    fast and let Spark retry it).
    """
    first = options.endpoints[0]
    kwargs: dict[str, Any] = {
        "urls": [e.url for e in options.endpoints],
        "reconnect": Backoff(initial=0.1, factor=2, max_delay=10) if reconnect else False,
        "ssl_domain": ssl_domain(options),
        "sasl_enabled": True,
        # Idle timeout: a peer that sends nothing (a broker half started, a dead network
        # path) closes the connection after this long, and reconnection takes over.
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
    return kwargs
