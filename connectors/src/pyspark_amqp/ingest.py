"""The receiving side of the source: one process per log partition, AMQP link -> log -> accept.

Each ingest process holds one receiving link with a bounded credit window, appends every
delivery's raw AMQP bytes to its log partition, hands the written batch to a sync thread,
and accepts the deliveries only when that thread reports them durable (it comes back to the
proton reactor thread through an :class:`EventInjector`; the reactor itself never blocks
on the disk). Credit is granted again as deliveries are accepted, and withheld while more
than ``max_buffered_messages`` logged records wait for Spark to plan them in a batch: a slow query
pushes back onto the broker, not into memory.

Connection loss and crashes: proton reconnects with backoff, through every failover URL.
Deliveries written to the log but not accepted when the connection dropped (or the process
died) cannot be accepted any more, and the broker redelivers them. Those records are always
a suffix of the log no longer than the credit window (an accept lost on the wire adds at
most another window), so the ingest process remembers the digests of the last two windows (of the bare message: the header and annotations a broker changes
on redelivery are left out) and accepts a redelivered message that matches one without
logging it again. The log therefore holds each accepted message once. (Messages are
matched as a multiset for two minutes. Pitfall: a *new* message identical in properties and
body to one of the last 2 x ``credit`` logged ones, arriving in those two minutes, is taken for
a redelivery; give messages a message-id or a timestamp, as the simulator's readings have.)

What the link asks for, the broker must grant: a ``selector`` goes out as the standard
selector source filter and ``browse`` as distribution mode copy, and an attach that does
not echo them back (or a refusal such as Artemis's ``amqp:invalid-field``) stops the
process with the reason in its status instead of receiving everything. Browsed copies
are settled on arrival (nothing is taken); a batch read's ``max_messages`` caps the
credit granted so that no more than that many are taken.

The process runs separately from Spark's driver-side reader so that several receivers use
several cores (the proton event loop is CPU-bound near 20k small messages/s per process).
It exits by itself if its parent dies.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqp_message_model.connection import ConnectionOptions, connect_kwargs
from amqp_message_model.sections import bare_message_digest
from proton import Delivery, Terminus
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, Copy, EventInjector, Selector

from pyspark_amqp.wal import LogWriter, SyncTicket, read_committed, read_range, segments

log = logging.getLogger("pyspark_amqp.ingest")
_CTX = mp.get_context("spawn")
_ERROR_BYTES = 1024
SELECTOR_FILTER = "apache.org:selector-filter:string"


@dataclass(frozen=True)
class IngestSpec:
    """What one ingest process receives and where it logs it (picklable)."""

    connection: ConnectionOptions
    address: str
    log_folder: Path
    credit: int
    max_buffered_messages: int
    at_most_once: bool
    segment_bytes: int
    link_name: str
    selector: str | None = None  # JMS selector, sent as the standard source filter
    browse: bool = False  # distribution-mode copy: look without taking (nothing is accepted away)
    max_messages: int | None = None  # stop granting credit once this many were logged (batch reads)

    @property
    def settles_on_arrival(self) -> bool:
        """No accept-after-log: the log is not the guarantee (at-most-once) or nothing is taken (browse)."""
        return self.at_most_once or self.browse


class IngestStatus:
    """Shared-memory counters between an ingest process and the reader on the driver."""

    def __init__(self) -> None:
        self.durable = _CTX.Value("q", 0, lock=False)  # offsets below this are durable (and accepted)
        # Offsets below this are in a micro-batch Spark has planned. Back-pressure counts from
        # here, not from commit: Spark commits batch N only when it plans batch N+1, which
        # needs new data, so waiting on commit could starve both sides.
        self.planned = _CTX.Value("q", 0, lock=False)
        self.deduplicated = _CTX.Value("q", 0, lock=False)  # redeliveries matched to a logged record
        self.attached = _CTX.Event()
        self.refused = _CTX.Event()  # the broker refused (or ignored) what the link asked for: retrying cannot help
        self.stop = _CTX.Event()
        self._error = _CTX.Array("c", _ERROR_BYTES, lock=True)

    @property
    def error(self) -> str:
        return self._error.value.decode("utf-8", "replace")

    @error.setter
    def error(self, text: str) -> None:
        self._error.value = text.encode("utf-8", "replace")[: _ERROR_BYTES - 1]


class _Syncer(threading.Thread):
    """Makes flushed batches durable in order, then reports them to the reactor.

    Only log tickets cross to this thread, never proton objects: a ``Delivery`` whose last
    reference drops here would change proton's reference counts off the reactor thread (seen
    as a receiver whose head delivery was settled but never advanced, and once as a crash).
    """

    def __init__(self, injector: EventInjector, fsync: bool) -> None:
        super().__init__(name="amqp-log-sync", daemon=True)
        self.jobs: queue.SimpleQueue[tuple[SyncTicket, int] | None] = queue.SimpleQueue()
        self.injector = injector
        self.fsync = fsync

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            ticket, generation = job
            ticket.sync(self.fsync)
            self.injector.trigger(ApplicationEvent("durable", subject=(ticket.upto, generation)))


class _Tick:
    def __init__(self, handler: IngestHandler, what: str) -> None:
        self.handler = handler
        self.what = what

    def on_timer_task(self, event: Any) -> None:
        getattr(self.handler, self.what)(event)


class IngestHandler(MessagingHandler):
    """Receives raw deliveries on one link; no business logic beyond log-then-accept."""

    def __init__(
        self,
        spec: IngestSpec,
        status: IngestStatus,
        writer: LogWriter,
        parent_pid: int,
        uncertain: dict[bytes, int] | None = None,
    ) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=False)
        self.spec = spec
        self.status = status
        self.writer = writer
        self.parent_pid = parent_pid
        self.injector = EventInjector()
        self.syncer = _Syncer(self.injector, fsync=not spec.settles_on_arrival)
        self.unsynced: list[Delivery] = []
        self.syncing: dict[int, tuple[list[Delivery], list[bytes]]] = {}  # by the log offset its flush ends at
        self.flush_scheduled = False
        self.generation = 0
        self.in_flight = 0  # received (credit used) but not yet accepted
        self.logged = 0  # records this process appended to the log
        self.withheld = 0  # credit owed but withheld for back-pressure
        self.conn: Any = None
        self.receiver: Any = None
        self.receiver_name = ""
        self.stopping = False
        # digest -> count of logged records whose acceptance may not have reached the broker
        self.uncertain: dict[bytes, int] = dict(uncertain or {})
        self.uncertain_until = time.monotonic() + 120.0
        self.unsynced_payloads: list[bytes] = []
        # Accepts just sent may be lost with the connection (a broker crash before it stored
        # them): the last two credit windows of accepted messages count as uncertain then.
        self.recently_accepted: collections.deque[bytes] = collections.deque(maxlen=2 * spec.credit)

    # --- lifecycle -------------------------------------------------------------------
    def on_start(self, event: Any) -> None:
        self.container = event.container
        self.container.selectable(self.injector)
        self.syncer.start()
        self.conn = self.container.connect(**connect_kwargs(self.spec.connection, reconnect=True))
        self.container.schedule(0.2, _Tick(self, "on_watchdog"))

    def on_connection_opened(self, event: Any) -> None:
        # A new link on every (re)connection: proton would re-attach the old one, but with the
        # old connection's credit state, which the broker no longer honours.
        self._attach()

    def _attach(self) -> None:
        if self.stopping:
            return
        self.receiver_name = f"{self.spec.link_name}-{self.generation}"
        options: list[Any] = []
        if self.spec.selector:
            options.append(Selector(self.spec.selector))
        if self.spec.browse:
            options.append(Copy())
        self.receiver = self.container.create_receiver(self.conn, self.spec.address, name=self.receiver_name, options=options)

    def _unhonoured(self, link: Any) -> str | None:
        """What the broker's attach did not echo of what this link asked for (a broker that ignores a
        filter would otherwise deliver every message)."""
        source = link.remote_source
        if self.spec.selector:
            echoed = _filters(source)
            if not any(getattr(v, "descriptor", None) == SELECTOR_FILTER for v in echoed.values()):
                return f"the broker ignored the selector filter {self.spec.selector!r} (its attach did not echo it)"
        if self.spec.browse and source.distribution_mode != Terminus.DIST_MODE_COPY:
            return "the broker does not browse this address (its attach did not echo distribution-mode copy)"
        return None

    def on_link_opened(self, event: Any) -> None:
        if event.link.is_receiver and event.link.name == self.receiver_name:
            if event.link.remote_source.address is None:
                return  # an attach without a source: the broker refuses, its detach says why
            problem = self._unhonoured(event.link)
            if problem is not None:
                self._refuse(problem)
                return
            self.in_flight = 0
            self.withheld = 0
            self._grant(self.spec.credit - self.receiver.credit)
            self.status.error = ""
            self.status.attached.set()

    def on_disconnected(self, event: Any) -> None:
        self._forget_link()

    def _forget_link(self) -> None:
        """Deliveries of a lost link can no longer be settled; the broker redelivers them."""
        self.on_flush(None)  # the last batch goes to the log under the old generation: remembered, not accepted
        self._remember_uncertain(list(self.recently_accepted))
        self.recently_accepted.clear()
        self.generation += 1
        self.in_flight = 0
        self.withheld = 0
        if self.receiver is not None:
            self.receiver.close()
            self.receiver = None

    def _remember_uncertain(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            digest = bare_message_digest(payload)
            self.uncertain[digest] = self.uncertain.get(digest, 0) + 1
        self.uncertain_until = time.monotonic() + 120.0

    def _is_redelivery_of_logged(self, payload: bytes) -> bool:
        if not self.uncertain:
            return False
        if time.monotonic() > self.uncertain_until:
            self.uncertain.clear()
            return False
        digest = bare_message_digest(payload)
        left = self.uncertain.get(digest, 0)
        if not left:
            return False
        if left == 1:
            del self.uncertain[digest]
        else:
            self.uncertain[digest] = left - 1
        if not self.uncertain:
            log.info(
                "amqp source %s: matched every redelivered message to its logged copy (%d so far)",
                self.spec.address,
                self.status.deduplicated.value + 1,
            )
        return True

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        self.status.error = f"{cond.name}: {cond.description}" if cond else "connection lost"
        log.warning("amqp source %s: %s (reconnecting)", self.spec.address, self.status.error)

    def on_connection_error(self, event: Any) -> None:
        cond = event.connection.remote_condition
        self.status.error = f"{cond.name}: {cond.description}" if cond else "connection closed by the broker"

    def _refuse(self, reason: str) -> None:
        """Give up for good: the driver fails the read with ``reason`` instead of waiting for an attach."""
        self.status.error = reason
        self.status.refused.set()
        log.error("amqp source %s: %s", self.spec.address, reason)
        self.shutdown()

    def on_link_error(self, event: Any) -> None:
        cond = event.link.remote_condition
        self.status.error = f"{cond.name}: {cond.description}" if cond else "link closed by the broker"
        if cond is not None and self.spec.selector and _is_filter_refusal(cond.name, cond.description or ""):
            self._refuse(f"the broker refused the selector {self.spec.selector!r}: {self.status.error}")
            return
        log.warning("amqp source %s: %s (re-attaching in 1 s)", self.spec.address, self.status.error)
        event.link.close()
        if event.link.name == self.receiver_name:
            self._forget_link()
            if not self.stopping:
                self.container.schedule(1.0, _Tick(self, "on_reattach"))

    def on_reattach(self, event: Any) -> None:
        if self.receiver is None:
            self._attach()

    # --- data path ---------------------------------------------------------------------
    def on_delivery(self, event: Any) -> None:
        delivery = event.delivery
        link = event.link
        if not link.is_receiver or not delivery.readable or delivery.partial:
            return
        if delivery.aborted:
            delivery.settle()
            link.advance()
            return
        payload = link.recv(delivery.pending)
        link.advance()
        if self._is_redelivery_of_logged(payload):
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
            self.status.deduplicated.value += 1
            self._grant(1)
            return
        self.writer.append(int(time.time() * 1000), payload)
        self.logged += 1
        self.in_flight += 1
        if self.spec.settles_on_arrival:
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
            self.in_flight -= 1
        else:
            self.unsynced.append(delivery)
            self.unsynced_payloads.append(payload)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.container.schedule(0, _Tick(self, "on_flush"))

    def on_flush(self, event: Any) -> None:
        self.flush_scheduled = False
        ticket = self.writer.flush()
        if ticket is not None:
            batch, self.unsynced = self.unsynced, []
            payloads, self.unsynced_payloads = self.unsynced_payloads, []
            self.syncing[ticket.upto] = (batch, payloads)
            self.syncer.jobs.put((ticket, self.generation))

    def on_durable(self, event: Any) -> None:
        upto, generation = event.subject
        deliveries, payloads = self.syncing.pop(upto, ([], []))
        self.status.durable.value = upto
        if self.spec.settles_on_arrival:
            if self.receiver is not None:
                self._grant(self.spec.credit - self.receiver.credit)
            return
        if generation != self.generation:
            self._remember_uncertain(payloads)
            return
        for delivery in deliveries:
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
        self.recently_accepted.extend(payloads)
        self.in_flight -= len(deliveries)
        self._grant(len(deliveries))

    def _grant(self, count: int) -> None:
        count += self.withheld
        self.withheld = 0
        if count <= 0 or self.receiver is None:
            return
        if self.spec.max_messages is not None:
            count = min(count, self.spec.max_messages - self.logged - self.receiver.credit)
            if count <= 0:
                return
        buffered = self.status.durable.value - self.status.planned.value
        if buffered >= self.spec.max_buffered_messages:
            self.withheld = count
            return
        self.receiver.flow(count)

    def on_watchdog(self, event: Any) -> None:
        if self.status.stop.is_set() or os.getppid() != self.parent_pid:
            self.shutdown()
            return
        if self.withheld:
            self._grant(0)
        self.container.schedule(0.2, _Tick(self, "on_watchdog"))

    def shutdown(self) -> None:
        """Stop receiving, make the last batch durable and accept it, then close."""
        self.stopping = True
        if self.receiver is not None:
            self.receiver.close()
        ticket = self.writer.flush()
        self.syncer.jobs.put(None)
        self.syncer.join(10)
        if ticket is not None:
            ticket.sync(not self.spec.settles_on_arrival)
            self.status.durable.value = ticket.upto
            if not self.spec.settles_on_arrival:
                for delivery in self.unsynced:
                    delivery.update(Delivery.ACCEPTED)
                    delivery.settle()
        self.unsynced = []
        self.unsynced_payloads = []
        if self.conn is not None:
            self.conn.close()
        self.injector.close()
        self.container.stop()


def _filters(terminus: Any) -> dict[Any, Any]:
    """The filter map of a terminus as the peer sent it (empty if none)."""
    data = terminus.filter
    if data is None:
        return {}
    data.rewind()
    if data.next() is None:
        return {}
    value = data.get_object()
    return value if isinstance(value, dict) else {}


def _is_filter_refusal(name: str, description: str) -> bool:
    """A broker's refusal of the link's filter (Artemis: ``amqp:invalid-field`` "Invalid filter")."""
    text = description.lower()
    return name in ("amqp:invalid-field", "amqp:not-implemented") or "filter" in text or "selector" in text


def run_ingest(spec: IngestSpec, status: IngestStatus, parent_pid: int) -> None:
    """Entry point of an ingest process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    writer = LogWriter(spec.log_folder, spec.segment_bytes).open()
    status.planned.value = read_committed(spec.log_folder)
    status.durable.value = writer.next_offset
    uncertain = uncertain_tail(writer, spec)
    log.info(
        "amqp source %s: log recovered at offset %d; %d records may await a redelivery",
        spec.address,
        writer.next_offset,
        sum(uncertain.values()),
    )
    try:
        Container(IngestHandler(spec, status, writer, parent_pid, uncertain)).run()
    finally:
        writer.close()


def uncertain_tail(writer: LogWriter, spec: IngestSpec) -> dict[bytes, int]:
    """Digests of the records a crash may have left unaccepted (or whose accept was lost): the last two credit windows."""
    if spec.settles_on_arrival:
        return {}
    end = writer.next_offset
    start = max(0, end - 2 * spec.credit)
    digests: dict[bytes, int] = {}
    kept = segments(spec.log_folder)  # committed records count too: Spark may read a record before its accept
    start = max(start, min(kept[0][0] if kept else end, end))
    try:
        for record in read_range(spec.log_folder, start, end):
            digest = bare_message_digest(record.payload)
            digests[digest] = digests.get(digest, 0) + 1
    except Exception as err:  # noqa: BLE001 - a damaged tail only costs the de-duplication
        log.warning("amqp source %s: cannot read the log tail for de-duplication: %s", spec.address, err)
    return digests


class IngestProcess:
    """The driver's handle on one ingest process."""

    def __init__(self, spec: IngestSpec) -> None:
        self.spec = spec
        self.status = IngestStatus()
        self.process = _CTX.Process(
            target=run_ingest, args=(spec, self.status, os.getpid()), name=f"amqp-ingest-{spec.link_name}", daemon=True
        )

    def start(self) -> None:
        self.process.start()

    def wait_attached(self, timeout: float) -> None:
        """Wait until the link is attached; raise naming the broker's last error if it is not in time."""
        deadline = time.monotonic() + timeout
        while not self.status.attached.wait(0.1):
            if self.status.refused.is_set():
                raise ConnectionRefusedError(f"amqp source {self.spec.address!r}: {self.status.error}")
            if not self.process.is_alive():
                raise RuntimeError(f"the AMQP receiver for {self.spec.address!r} exited (code {self.process.exitcode})")
            if time.monotonic() > deadline:
                urls = ", ".join(e.url for e in self.spec.connection.endpoints)
                raise ConnectionError(
                    f"could not attach a receiver to address {self.spec.address!r} at {urls} within {timeout:.0f}s: "
                    f"{self.status.error or 'no answer'}. Check the url, credentials (user/password) and TLS options."
                )

    def restarted(self, timeout: float) -> IngestProcess:
        """A new process for the same partition (after this one died), started and attached."""
        fresh = IngestProcess(self.spec)
        fresh.status.planned.value = self.status.planned.value
        fresh.start()
        fresh.wait_attached(timeout)
        return fresh

    @property
    def durable(self) -> int:
        return self.status.durable.value

    def set_planned(self, offset: int) -> None:
        self.status.planned.value = max(self.status.planned.value, offset)

    def stop(self, timeout: float = 15.0) -> None:
        self.status.stop.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
