"""The listener's TLS: the server certificate, and client certificates when a CA is given."""

from __future__ import annotations

from proton import SSLDomain

from amqp_kafka_bridge.settings import BridgeSettings


def ssl_domain(settings: BridgeSettings) -> SSLDomain | None:
    """The listener's TLS domain, or None without a certificate. With ``tls_ca_file`` clients must present a certificate."""
    if settings.tls_cert_file is None:
        return None
    domain = SSLDomain(SSLDomain.MODE_SERVER)
    password = settings.tls_key_password.get_secret_value() if settings.tls_key_password else None
    domain.set_credentials(str(settings.tls_cert_file), str(settings.tls_key_file), password)
    if settings.tls_ca_file is not None:
        domain.set_trusted_ca_db(str(settings.tls_ca_file))
        domain.set_peer_authentication(SSLDomain.VERIFY_PEER, str(settings.tls_ca_file))
    else:
        domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
    return domain
