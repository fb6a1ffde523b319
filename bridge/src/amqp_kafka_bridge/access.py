"""Attach-time access control: the identity a link's connection authenticated as, checked against the ``acl`` rules.

The decision itself is ``authorization.Authorizer`` (pure); this module reads the identity
from proton's transport, counts refusals and turns them into ``AccessDenied`` with the AMQP
condition ``amqp:unauthorized-access`` and a description naming the topic.
"""

from __future__ import annotations

import logging
from typing import Any

from amqp_kafka_bridge.authorization import Authorizer
from amqp_kafka_bridge.errors import AmqpConditionError
from amqp_kafka_bridge.metrics import BridgeMetrics
from amqp_kafka_bridge.settings import BridgeSettings

log = logging.getLogger("bridge.access")

UNAUTHORIZED = "amqp:unauthorized-access"


class AccessDenied(AmqpConditionError):
    """An attach the rules do not allow: detached with ``amqp:unauthorized-access`` and a description naming the topic."""

    def __init__(self, description: str) -> None:
        super().__init__(UNAUTHORIZED, description)


def identity_of(link: Any) -> str:
    """The SASL identity of ``link``'s connection: the user, the certificate subject (EXTERNAL), or ``anonymous``."""
    transport = link.connection.transport
    user = transport.user if transport is not None else None
    return user or "anonymous"


class AccessControl:
    """Checks server-mode attaches. Forwarder links never come here: the operator wrote their routes."""

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics) -> None:
        self.authorizer = Authorizer(settings.all_acl())
        self.auto_create = settings.auto_create_topics
        self.metrics = metrics

    def _refuse(self, link: Any, identity: str, direction: str, reason: str) -> AccessDenied:
        self.metrics.unauthorized.labels(direction).inc()
        log.warning("attach refused", extra={"link": link.name, "identity": identity, "reason": reason})
        return AccessDenied(reason)

    def check_produce(self, link: Any, topic: str) -> None:
        """Raise ``AccessDenied`` unless the link's identity may send to ``topic``."""
        identity = identity_of(link)
        decision = self.authorizer.decide(identity, "produce", topic)
        if not decision.allowed:
            raise self._refuse(link, identity, "to-kafka", decision.reason)

    def check_consume(self, link: Any, topic: str, group: str) -> None:
        """Raise ``AccessDenied`` unless the link's identity may receive from ``topic`` in ``group``."""
        identity = identity_of(link)
        decision = self.authorizer.decide(identity, "consume", topic, group)
        if not decision.allowed:
            raise self._refuse(link, identity, "to-amqp", decision.reason)

    def may_create(self, link: Any, topic: str) -> bool:
        """Whether attaching to a missing ``topic`` creates it: ``auto_create_topics`` and, with rules, a grant."""
        return self.auto_create and self.authorizer.may_create(identity_of(link), topic)
