"""Per-link bridging logic, run on the reactor thread: AMQP->Kafka (``InboundLink``) and Kafka->AMQP (``OutboundLink``).

The proton handler only routes events here. Nothing in this module blocks: Kafka work is
handed to ``amqp_kafka_bridge.kafka_io`` and its results come back as ``on_ack``/``pump`` calls.
A link sees the bridge only through its :class:`~amqp_kafka_bridge.context.LinkContext`;
the core (``amqp_kafka_bridge.core``) starts, drains and closes it. Both link kinds share
that lifecycle: ``start`` (the topic is good), ``drain`` (no new work), ``detach`` (close
with an error the peer sees) and ``close`` (free what it holds; idempotent).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from amqp_message_model.decoding import read_plain
from confluent_kafka import KafkaError, KafkaException
from proton import Condition, Delivery, Link, Message

from amqp_kafka_bridge import hot_path
from amqp_kafka_bridge.context import LinkContext
from amqp_kafka_bridge.converters import PARTITION_ANNOTATION, KafkaRecord
from amqp_kafka_bridge.errors import DECODE_ERROR, INTERNAL_ERROR, INVALID_FIELD, MESSAGE_SIZE_EXCEEDED, AmqpConditionError
from amqp_kafka_bridge.hot_path import ACCEPTED, MODIFIED, REJECTED, RELEASED, RawDelivery
from amqp_kafka_bridge.kafka_io import Ack, ConsumerPump, SourceSpec
from amqp_kafka_bridge.metrics import observe_counts, observe_many
from amqp_kafka_bridge.offsets import OffsetTracker
from amqp_kafka_bridge.producer_lane import LaneCounts, LanePump

log = logging.getLogger("bridge.links")

# Kafka errors after which sending the same record again cannot help: reject instead of release.
_PERMANENT = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError._INVALID_ARG,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
}


def _permanent_refusal(error: KafkaError, topic: str) -> tuple[AmqpConditionError, str] | None:
    """The error to reject with (and its metric reason) when sending the record again cannot help, else None."""
    if error.code() == KafkaError._UNKNOWN_PARTITION:  # the partition annotation names no partition of the topic
        return AmqpConditionError(INVALID_FIELD, f"{PARTITION_ANNOTATION}: topic {topic} has no such partition"), "invalid-field"
    if error.code() in _PERMANENT or error.fatal():
        return AmqpConditionError(INTERNAL_ERROR, f"Kafka refused the record: {error.str()}"), "kafka"
    return None


def settle(dlv: Delivery, outcome: int, condition: Condition | None = None) -> None:
    """Give ``dlv`` (a proton ``Delivery``) its final outcome (with an error condition for ``REJECTED``) and settle it."""
    hot_path.settle(dlv._impl, outcome, condition)  # noqa: SLF001 - the wrapper's pointer (pinned by the hot path)


class _InFlight:
    """One AMQP delivery waiting for Kafka: the producer's report comes back to ``on_ack``.

    ``dlv`` is the raw delivery, referenced until it is settled (None when the sender
    pre-settled it). A plain class with slots: one is made per message.
    """

    __slots__ = ("link", "dlv", "size", "started")

    def __init__(self, link: InboundLink, dlv: RawDelivery | None, size: int, started: float) -> None:
        self.link = link
        self.dlv = dlv
        self.size = size
        self.started = started

    def on_ack(self, ack: Ack) -> None:
        self.link.on_ack(self, ack)


class InboundLink:
    """An AMQP link the bridge receives on, producing to ``topic``.

    Guarantees: a delivery is accepted only after Kafka acknowledged its record (acks=all);
    a Kafka failure releases it (retriable) or rejects it with the reason (permanent).
    Credit is given only as deliveries settle, so at most ``link_credit`` are in flight.

    Transfers arrive from the hot path (``on_raw_delivery``, raw proton-c deliveries, see
    ``amqp_kafka_bridge.hot_path``). Per delivery the work is read -> decode (plain Python for
    the common shape, ``amqp_message_model.decoding``; proton for the rest) -> convert ->
    produce, and per report settle; the credit the reports free is given back once per batch
    of reports (``flush_credit``, called by the core after it handed out a batch), not one
    ``flow`` per delivery. The message object decoded into and the labelled metrics are the
    link's own, made once.

    With the native lane (``amqp_kafka_bridge.producer_lane``) the link produces into its slot
    and the lane settles what Kafka acknowledged in C: the link hears of it as counts
    (``on_lane_counts``) and of each failure (``on_failed_report``). With the Python producer,
    each report comes back to ``on_ack``.
    """

    role = "receiver"

    def __init__(self, context: LinkContext, link: Link, topic: str) -> None:
        self.context = context
        self.link = link
        self.topic = topic
        self.name = link.name
        self.in_flight = 0
        self.closed = False
        self.ready = False
        self.draining = False
        self._owed = 0  # credit freed by settled deliveries, given back by ``flush_credit``
        self._acked = self._acked_bytes = 0  # counted into the metrics by ``flush_metrics``
        self._latencies: list[float] = []
        self._queued: list[tuple[KafkaRecord, int, int, float]] = []  # this burst's (delivery address, 0 if pre-settled)
        self._bucketed: list[tuple[float, tuple[int, ...]]] = []  # the lane's latency counts, for flush_metrics
        self._message = Message()  # decoded into for transfers read_plain leaves to proton: to_record keeps none of it
        self._receiving = hot_path.Receiving(link)
        self._raw_link = hot_path.raw_link(link)
        metrics = context.metrics
        self._messages_in = metrics.messages_in.labels(topic)
        self._bytes_in = metrics.bytes_in.labels(topic)
        producer = context.producer
        self._lane = producer if isinstance(producer, LanePump) else None
        self._slot = self._lane.open_slot(self) if self._lane is not None else -1
        self.inlet = None  # the lane's stand-in for this link, whose plain messages it converts in C (the raw converter)
        if self._lane is not None and context.converter.converts_in_c:
            settings = context.settings
            self.inlet = self._lane.inlet(
                self, self._queued, context.producing, topic, settings.key_property, settings.max_message_bytes
            )

    def start(self) -> None:
        """Topic is known good: open the credit window."""
        self.ready = True
        if not self.draining:
            self.link.flow(self.context.settings.link_credit)

    def drain(self) -> None:
        """Give no more credit; what is in flight still settles as Kafka acknowledges it."""
        self.draining = True

    def _reject(self, dlv: RawDelivery | None, error: AmqpConditionError, reason: str) -> None:
        """Reject ``dlv`` with ``error`` (None: the peer pre-settled it and it is settled already; only counted)."""
        self.context.metrics.rejected.labels(self.topic, reason).inc()
        log.info(
            "delivery rejected",
            extra={"link": self.name, "topic": self.topic, "condition": error.condition, "reason": error.description},
        )
        if dlv is None or self.closed:
            pass
        elif not hot_path.delivery_remotely_settled(dlv):
            hot_path.settle(dlv, REJECTED, error.to_condition())
        else:
            hot_path.delivery_settle(dlv)
        self._replenish(1)

    def on_raw_delivery(self, dlv: RawDelivery) -> None:
        """A delivery event on this link, from the Python collector (without the native lane's ``serve``)."""
        if hot_path.delivery_aborted(dlv):
            hot_path.delivery_settle(dlv)
            return
        data = self._receiving.take(dlv)
        if data is None:
            return  # more frames to come
        hot_path.incref(dlv)
        self.on_transfer_at(hot_path.address(dlv), data, bool(hot_path.delivery_remotely_settled(dlv)))

    def on_transfer_at(self, address: int, data: bytes, presettled: bool) -> None:
        """A whole transfer of the delivery at ``address``, which this link now holds a reference to: bridge it.

        The native lane's ``serve`` calls this straight from the collector; the reference is
        let go here unless the record is queued (then when Kafka's report settles it).
        """
        if self.closed:
            self._let_go(address, RELEASED)
            return
        context = self.context
        settings = context.settings
        if len(data) > settings.max_message_bytes:
            too_big = f"message of {len(data)} bytes exceeds the limit of {settings.max_message_bytes}"
            self._reject_at(address, AmqpConditionError(MESSAGE_SIZE_EXCEEDED, too_big), "size")
            return
        converter = context.converter
        try:
            msg = read_plain(data) if converter.reads_plain else None
            if msg is None:  # not of the plain shape: proton decodes it (and says what is wrong with it)
                msg = self._message
                msg.decode(data)
            record = converter.to_record(msg, self.topic, settings.key_property)
        except AmqpConditionError as exc:
            self._reject_at(address, exc, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - proton's decode errors have no common base
            self._reject_at(address, AmqpConditionError(DECODE_ERROR, f"undecodable message: {exc}"), "decode-error")
            return
        if presettled:  # at-most-once, as the sender asked; credit still waits for the ack
            self._let_go(address, None)
            address = 0
        if not self._queued:
            context.producing.append(self)
        self._queued.append((record, address, len(record.value or b""), time.perf_counter()))

    def _let_go(self, address: int, outcome: int | None) -> None:
        """Settle the delivery at ``address`` (with ``outcome``, or as it is) and drop this link's reference to it."""
        dlv = hot_path.delivery_at(address)
        if outcome is None:
            hot_path.delivery_settle(dlv)
        else:
            hot_path.settle(dlv, outcome)
        hot_path.decref(dlv)

    def _reject_at(self, address: int, error: AmqpConditionError, reason: str) -> None:
        dlv = hot_path.delivery_at(address)
        self._reject(dlv, error, reason)
        hot_path.decref(dlv)

    def produce_queued(self) -> None:
        """Hand the records of this burst's transfers to the producer (the core calls it when the burst ends).

        Producing them together, not as each transfer is read, lets librdkafka put the whole
        burst in one produce request: its sender thread wakes on the first record and takes
        what is queued by then. Measured, one by one: 14-85 records per request, half of
        the requests carrying one, and Kafka spent ~300 us of CPU per request.
        """
        queued = self._queued.copy()  # the same list stays: the lane's inlet appends to it
        self._queued.clear()
        self.in_flight += len(queued)
        if self._lane is None:
            produce, delivery_at = self.context.producer.produce, hot_path.delivery_at
            for record, address, size, started in queued:
                try:
                    produce(record, _InFlight(self, delivery_at(address) if address else None, size, started))
                except (BufferError, Exception) as exc:  # noqa: BLE001 - local queue full or client refused: never drop silently
                    self._refused(address, exc)
            return
        for address, exc in self._lane.lane.produce_queued(self._slot, queued):  # the whole burst in one C call
            self._refused(address, exc)

    def _refused(self, address: int, exc: Exception) -> None:
        """The producer would not take the record: reject the delivery if sending it again cannot help, else release it."""
        self.in_flight -= 1
        self.context.metrics.kafka_errors.labels("produce").inc()
        dlv = hot_path.delivery_at(address) if address else None
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        refusal = _permanent_refusal(error, self.topic) if isinstance(error, KafkaError) else None
        if refusal is not None:  # sending it again cannot help
            self._reject(dlv, *refusal)
        else:
            self.context.metrics.released.labels(self.topic).inc()
            log.warning("produce refused, delivery released", extra={"link": self.name, "topic": self.topic, "error": str(exc)})
            if dlv is not None and not self.closed:
                hot_path.settle(dlv, MODIFIED)
            self._replenish(1)
        if dlv is not None:
            hot_path.decref(dlv)

    def on_ack(self, pending: _InFlight, ack: Ack) -> None:
        """The Python producer's report of one record."""
        self.in_flight -= 1
        if ack.error is None:
            self._acked += 1
            self._acked_bytes += pending.size
            self._latencies.append(time.perf_counter() - pending.started)
        dlv = pending.dlv
        if dlv is None:
            self._owed += 1
            return
        try:
            if self.closed:
                return  # the peer went away: the unsettled delivery is gone; it resends what it never saw accepted
            if ack.error is None:
                hot_path.delivery_update(dlv, ACCEPTED)
                hot_path.delivery_settle(dlv)
                self._owed += 1
            else:
                self._not_acknowledged(dlv, ack.error)
        finally:
            hot_path.decref(dlv)

    def on_lane_counts(self, counts: LaneCounts) -> None:
        """The native lane's reports for this link since the last batch (the acknowledged deliveries are settled)."""
        self.in_flight -= counts.done
        self._owed += counts.owed
        if counts.acked:
            self._acked += counts.acked
            self._acked_bytes += counts.bytes
            self._bucketed.append((counts.latency_sum, counts.buckets))

    def on_failed_report(self, address: int, error: KafkaError) -> None:
        """The native lane's report of a record Kafka did not take (``address``: its delivery, still referenced; 0 if pre-settled)."""
        if not address:
            self._owed += 1
            return
        dlv = hot_path.delivery_at(address)
        try:
            if not self.closed:
                self._not_acknowledged(dlv, error)
        finally:
            hot_path.decref(dlv)

    def _not_acknowledged(self, dlv: RawDelivery, error: KafkaError) -> None:
        """Kafka did not take ``dlv``'s record: reject it if sending it again cannot help, else release it."""
        if (refusal := _permanent_refusal(error, self.topic)) is not None:
            self._reject(dlv, *refusal)
            return
        self.context.metrics.released.labels(self.topic).inc()
        log.warning(
            "kafka did not acknowledge in time, delivery released",
            extra={"link": self.name, "topic": self.topic, "error": error.str()},
        )
        hot_path.settle(dlv, MODIFIED)
        self._owed += 1

    def flush_credit(self) -> None:
        """Give back, in one ``flow``, the credit the reports handed out since the last call freed."""
        owed, self._owed = self._owed, 0
        if owed:
            self._replenish(owed)

    def flush_metrics(self) -> None:
        """Add what was acknowledged since the last call to the metrics (one update each, not one per message)."""
        if self._acked:
            self._messages_in.inc(self._acked)
            self._bytes_in.inc(self._acked_bytes)
            self._acked = self._acked_bytes = 0
        if self._latencies:
            latencies, self._latencies = self._latencies, []
            observe_many(self.context.metrics.latency, latencies)
        if self._bucketed:
            bucketed, self._bucketed = self._bucketed, []
            for total, buckets in bucketed:
                observe_counts(self.context.metrics.latency, enumerate(buckets), total)

    def _replenish(self, n: int) -> None:
        if not self.closed and not self.draining and self.ready:
            hot_path.link_flow(self._raw_link, n)

    def detach(self, error: AmqpConditionError) -> None:
        """Close the link with ``error`` for the peer (it resends what it never saw accepted)."""
        if not self.closed:
            _close_with(self.link, error, self.topic)
        self.close()

    def close(self, force: bool = False) -> None:
        """Stop bridging (idempotent). Records of transfers already read are still produced; later reports only update the metrics."""
        if self._queued:
            self.produce_queued()
        if self._lane is not None and not self.closed:
            self._lane.close_slot(self._slot)  # what is in flight still settles into the metrics, not the peer
        if self.inlet is not None:
            self.inlet.close()  # later transfers come to on_transfer_at, which releases them
        self.closed = True
        self.flush_metrics()

    @property
    def finished(self) -> bool:
        """Holds nothing that needs closing: the producer is the bridge's, not the link's."""
        return self.closed


_OUTCOMES = {ACCEPTED: "accepted", REJECTED: "rejected", RELEASED: "released", MODIFIED: "modified"}


@dataclass(eq=False)
class _Sent:
    record: KafkaRecord
    attempts: int = 1


@dataclass(eq=False)
class _DeadLetter:
    """A record on its way to the dead-letter topic; its offset is done once Kafka has it."""

    link: OutboundLink
    record: KafkaRecord

    def on_ack(self, ack: Ack) -> None:
        self.link.on_dead_lettered(self, ack)


class OutboundLink:
    """An AMQP link the bridge sends on, fed by a Kafka consumer.

    Guarantees: an offset is committed only when every record below it was accepted by the
    peer or written to the dead-letter topic. Released/modified and rejected deliveries
    follow ``on_released``/``on_rejected``: redeliver, dead-letter (``<topic><suffix>``),
    or detach the link (nothing past the record is committed). The consumer reads only
    while the link has credit.
    """

    role = "sender"

    def __init__(self, context: LinkContext, link: Link, spec: SourceSpec) -> None:
        self.context = context
        self.link = link
        self.spec = spec
        self.topic = spec.topic
        self.name = link.name
        self.tracker = OffsetTracker()
        self.backlog: deque[_Sent] = deque()  # records to (re)send, ahead of what the consumer brings
        self.unsettled: dict[RawDelivery, _Sent] = {}  # by raw delivery (equal and hashed by address)
        self._sending = hot_path.Sending(link)
        self._raw_link = hot_path.raw_link(link)
        self.closed = False
        self.ready = False
        self.draining = False
        self.dead_letters_pending = 0
        self._pump_closed = False
        settings = context.settings
        self.lag = context.metrics.lag_reporter(spec.group, settings.kafka_stats_interval_s)
        self.pump = ConsumerPump(
            {**settings.consumer_config(spec.group), **self.lag.config}, spec, context.records_signal, window=settings.link_credit
        )
        self._messages_out = context.metrics.messages_out.labels(self.topic)
        self._bytes_out = context.metrics.bytes_out.labels(self.topic)
        self._accepted = self._accepted_bytes = 0  # counted into the metrics by ``flush_metrics``

    @property
    def in_flight(self) -> int:
        """Deliveries the peer has not settled, plus dead-letter records Kafka has not acknowledged."""
        return len(self.unsettled) + self.dead_letters_pending

    def start(self) -> None:
        self.ready = True
        self.pump.start()
        self.send_available()

    def drain(self) -> None:
        """Send nothing more and ask the consumer for nothing more; outstanding deliveries still settle."""
        self.draining = True
        self.pump.demand = 0

    def send_available(self) -> None:
        """Send what the consumer brought while the peer gives credit; then tell the consumer how much more to read."""
        if self.closed or not self.ready:
            return
        if self.pump.error:
            self.detach(AmqpConditionError(INTERNAL_ERROR, f"Kafka consumer failed: {self.pump.error}"))
            return
        while self.pump.revoked:
            for partition in self.pump.revoked.popleft():
                self.tracker.forget(partition)
                self.backlog = deque(s for s in self.backlog if s.record.partition != partition)
        link, records, converter = self._raw_link, self.pump.records, self.context.converter
        draining, credit_of, send, unsettled = self.draining, hot_path.link_credit, self._sending.send, self.unsettled
        while credit_of(link) > 0 and not draining and (self.backlog or records):
            if self.backlog:
                sent = self.backlog.popleft()
            else:
                rec = records.popleft()
                sent = _Sent(rec)
                self.tracker.track(rec.partition, rec.offset)  # type: ignore[arg-type]
            try:
                encoded = converter.encode_message(sent.record)
            except AmqpConditionError as exc:
                self.context.metrics.rejected.labels(self.topic, "conversion").inc()
                self._follow_policy(sent, "dead-letter", exc.description)
                continue
            unsettled[send(encoded)] = sent
        self.pump.demand = max(credit_of(link) - len(self.backlog), 0) if not draining else 0
        if len(records) < self.pump.window // 2:
            self.pump.room.set()

    def on_raw_flow(self) -> None:
        """The peer gave credit (hot path)."""
        self.send_available()

    def on_raw_delivery(self, dlv: RawDelivery) -> None:
        """The peer's outcome for a delivery sent here (hot path); settled here once the peer settled it."""
        if hot_path.delivery_updated(dlv):
            outcome = _OUTCOMES.get(hot_path.delivery_remote_state(dlv))
            if outcome is not None:
                self.on_outcome(dlv, outcome)
        if hot_path.delivery_remotely_settled(dlv):
            hot_path.delivery_settle(dlv)

    def on_outcome(self, dlv: RawDelivery, outcome: str) -> None:
        """Follow the peer's ``outcome`` for ``dlv``: commit when accepted, else the link's policy."""
        sent = self.unsettled.pop(dlv, None)
        if sent is None:
            return
        rec = sent.record
        metrics, settings = self.context.metrics, self.context.settings
        if outcome == "accepted":
            self._accepted += 1
            self._accepted_bytes += len(rec.value or b"")
            self.context.unflushed.add(self)
            self._done(rec)
            return  # an acceptance frees no credit: nothing more to send until the peer flows
        if outcome == "rejected":
            metrics.peer_rejected.labels(self.topic, outcome).inc()
            cond = hot_path.remote_condition(dlv)
            self._follow_policy(sent, settings.on_rejected, f"{cond.name}: {cond.description}" if cond else "rejected by peer")
        else:
            metrics.peer_rejected.labels(self.topic, outcome).inc()
            policy = settings.on_released
            if policy == "redeliver" and sent.attempts > settings.max_redeliveries:
                policy = settings.on_rejected if settings.on_rejected != "redeliver" else "dead-letter"
            self._follow_policy(sent, policy, f"{outcome} by peer")
        self.send_available()

    def _follow_policy(self, sent: _Sent, policy: str, reason: str) -> None:
        if policy == "redeliver":
            self.context.metrics.redelivered.labels(self.topic).inc()
            sent.attempts += 1
            self.backlog.append(sent)
        elif policy == "dead-letter":
            rec = sent.record
            dlq = self.topic + self.context.settings.dead_letter_suffix
            headers = (
                *rec.headers,
                ("x-bridge-error", reason.encode()),
                ("x-bridge-source", f"{rec.topic}/{rec.partition}/{rec.offset}".encode()),
            )
            self.context.producer.produce(
                KafkaRecord(dlq, rec.value, rec.key, None, None, headers, rec.timestamp_ms), _DeadLetter(self, rec)
            )
            self.dead_letters_pending += 1
        else:
            rec = sent.record
            self.detach(
                AmqpConditionError(
                    INTERNAL_ERROR, f"record {rec.topic}/{rec.partition}/{rec.offset} {reason}; link stopped by policy"
                )
            )

    def flush_credit(self) -> None:
        """Nothing to give back: the peer gives this link its credit (the core calls it for every link it acked)."""

    def flush_metrics(self) -> None:
        """Add the acceptances since the last call to the metrics (the core calls it once per burst of events)."""
        if self._accepted:
            self._messages_out.inc(self._accepted)
            self._bytes_out.inc(self._accepted_bytes)
            self._accepted = self._accepted_bytes = 0

    def on_dead_lettered(self, dead: _DeadLetter, ack: Ack) -> None:
        self.dead_letters_pending -= 1
        if ack.error is not None:
            self.detach(AmqpConditionError(INTERNAL_ERROR, f"dead-letter write failed: {ack.error.str()}"))
            return
        self.context.metrics.dead_lettered.labels(self.topic).inc()
        self._done(dead.record)
        if self.closed and self.dead_letters_pending == 0:
            self._close_pump()

    def _done(self, rec: KafkaRecord) -> None:
        self.tracker.done(rec.partition, rec.offset)  # type: ignore[arg-type]
        moved = self.tracker.committable()
        if moved:
            self.pump.commit(moved)
            self.lag.committed(moved)

    def detach(self, error: AmqpConditionError) -> None:
        """Close the link with ``error`` for the peer; nothing past the unaccepted records is committed."""
        if self.closed:
            return
        _close_with(self.link, error, self.topic)
        self.close()

    def close(self, force: bool = False) -> None:
        """Stop sending (idempotent). The consumer commits what was accepted and leaves its group once the
        last dead-letter write is acknowledged, so that its offset is committed too; ``force`` does not wait."""
        self.closed = True
        self.flush_metrics()
        self.lag.close()  # its lag series goes with the link
        if self.dead_letters_pending == 0 or force:
            self._close_pump()

    def _close_pump(self) -> None:
        if not self._pump_closed:
            self._pump_closed = True
            self.pump.close()  # commits what the tracker handed over, then leaves the group

    @property
    def finished(self) -> bool:
        """Closed, and the consumer told to commit and leave."""
        return self.closed and self._pump_closed


def _close_with(link: Link, error: AmqpConditionError, topic: str) -> None:
    log.warning(
        "link detached", extra={"link": link.name, "topic": topic, "condition": error.condition, "reason": error.description}
    )
    link.condition = error.to_condition()
    link.close()


BridgedLink = InboundLink | OutboundLink
"""Either kind of bridged link (the core holds both in one registry)."""
