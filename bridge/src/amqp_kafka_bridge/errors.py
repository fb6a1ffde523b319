"""The bridge's one error type: what went wrong, as the AMQP condition a peer is told (the shape of Strimzi's
``AmqpErrorConditionException``).

Whoever finds the problem (a converter, the address parser, the topic check, Kafka's refusal)
raises it with the condition and a description that names the problem; whoever settles the
delivery or closes the link turns it into a :class:`proton.Condition` without interpreting it.
"""

from __future__ import annotations

from proton import Condition

DECODE_ERROR = "amqp:decode-error"
INVALID_FIELD = "amqp:invalid-field"
INTERNAL_ERROR = "amqp:internal-error"
NOT_FOUND = "amqp:not-found"
RESOURCE_LIMIT_EXCEEDED = "amqp:resource-limit-exceeded"
MESSAGE_SIZE_EXCEEDED = "amqp:link:message-size-exceeded"


class AmqpConditionError(Exception):
    """A refusal the AMQP peer must hear about: ``condition`` (e.g. ``amqp:not-found``) and ``description``."""

    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description

    @property
    def reason(self) -> str:
        """The condition's last part (``decode-error``), a short label for metrics and logs."""
        return self.condition.rsplit(":", 1)[-1]

    def to_condition(self) -> Condition:
        """The proton ``Condition`` to put on a rejected delivery or a closed link."""
        return Condition(self.condition, self.description)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.condition!r}, {self.description!r})"
