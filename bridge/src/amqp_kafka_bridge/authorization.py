"""Who may do what: per authenticated identity, the topics it may produce to or consume from, with which
consumer groups, and whether it may create topics.

The model is a list of ``AclRule`` (from the ``acl`` setting); the decision is ``Authorizer.decide``,
a pure function of the rules and the request, so it is tested without a broker. Semantics:

- No rules at all: everything is allowed (the bridge's behaviour before rules existed; the
  start-up safety checks in ``settings`` refuse that on a network address).
- Once any rule exists, everything not granted is denied.
- A rule applies to an identity when its ``principal`` equals it (a SASL user name, the
  certificate subject for EXTERNAL, ``anonymous`` for ANONYMOUS) or is ``*``.
- Topic and group patterns are shell-style (``sensors.*``, ``plant-?``); a pattern without
  wildcards is an exact name. Rules add up: any rule granting the request allows it.

Forwarder routes are the operator's own configuration and are never checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, Field

Action = Literal["produce", "consume", "create"]
ANY_PRINCIPAL = "*"


class AclRule(BaseModel, frozen=True):
    """One grant. ``consume`` needs a matching ``groups`` pattern too (``["*"]`` for any group)."""

    principal: str = Field(description="SASL user, certificate subject (EXTERNAL), 'anonymous', or '*' for anyone")
    produce: tuple[str, ...] = Field(default=(), description="topic patterns it may send to")
    consume: tuple[str, ...] = Field(default=(), description="topic patterns it may receive from")
    groups: tuple[str, ...] = Field(default=(), description="consumer group patterns it may consume with")
    create_topics: tuple[str, ...] = Field(default=(), description="topic patterns it may have the bridge create")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _matches(patterns: Iterable[str], name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


class Authorizer:
    """Decides requests against a fixed rule list. Immutable and thread-safe."""

    def __init__(self, rules: Sequence[AclRule]) -> None:
        self.rules = tuple(rules)

    @property
    def enforcing(self) -> bool:
        """True once any rule exists (deny by default)."""
        return bool(self.rules)

    def _rules_for(self, identity: str) -> list[AclRule]:
        return [rule for rule in self.rules if rule.principal in (identity, ANY_PRINCIPAL)]

    def decide(self, identity: str, action: Action, topic: str, group: str | None = None) -> Decision:
        """May ``identity`` ``produce``/``consume`` (with ``group``)/``create`` ``topic``? The reason names what is missing."""
        if not self.rules:
            return Decision(True)
        rules = self._rules_for(identity)
        if action == "produce":
            if any(_matches(rule.produce, topic) for rule in rules):
                return Decision(True)
            return Decision(False, f"{identity} may not send to topic {topic}")
        if action == "create":
            if any(_matches(rule.create_topics, topic) for rule in rules):
                return Decision(True)
            return Decision(False, f"{identity} may not create topic {topic}")
        if not any(_matches(rule.consume, topic) for rule in rules):
            return Decision(False, f"{identity} may not receive from topic {topic}")
        if group is None or any(_matches(rule.consume, topic) and _matches(rule.groups, group) for rule in rules):
            return Decision(True)
        return Decision(False, f"{identity} may not receive from topic {topic} in consumer group {group}")

    def may_create(self, identity: str, topic: str) -> bool:
        return self.decide(identity, "create", topic).allowed

    def grants_anonymous(self, action: Action) -> bool:
        """Whether any rule lets ``anonymous`` do ``action`` on some topic (for the start-up safety checks)."""
        field_name = {"produce": "produce", "consume": "consume", "create": "create_topics"}[action]
        return any(getattr(rule, field_name) for rule in self._rules_for("anonymous"))
