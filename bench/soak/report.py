"""The soak's result: per load what was sent, accepted and arrived, each process's flatness verdict, and the report."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.soak.sampling import MB, RULE, Flatness, Sample


@dataclass(frozen=True)
class SideResult:
    """One load: what its sender sent and had accepted, and what arrived at the far end."""

    name: str
    sent: int
    accepted: int
    failed: int
    arrived: int  # distinct messages in the ingest log / records in the Kafka topic
    duplicates: int | None  # None where not checked (Kafka: counted only)
    connections: int
    errors: int
    seconds: float  # of load
    notes: str = ""  # what went wrong, if anything

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class SoakResult:
    seconds: float
    interval: float
    receivers: int
    size: int
    ingest: SideResult
    bridge: SideResult
    samples: dict[str, list[Sample]]
    flatness: dict[str, Flatness]
    log_bytes_max: int
    segment_bytes: int
    aborted: str = ""  # why the load stopped early (a process under load died), if it did

    @property
    def flat(self) -> bool:
        return all(f.flat for f in self.flatness.values())

    @property
    def complete(self) -> bool:
        """Every message sent was accepted and arrived, once."""
        return all(
            s.failed == 0 and s.accepted == s.sent and s.arrived == s.accepted and not s.duplicates
            for s in (self.ingest, self.bridge)
        )

    def report(self) -> str:
        lines = [
            f"soak: {self.seconds:.0f} s of load, {self.size}-byte bodies, {self.receivers} ingest receiver(s), "
            f"samples every {self.interval:g} s, {os.cpu_count()} cores",
        ]
        for side, where in ((self.ingest, "in the log"), (self.bridge, "in Kafka")):
            dups = f", {side.duplicates} duplicates" if side.duplicates is not None else ""
            lines.append(
                f"  {side.name:14s} sent {side.sent:>10,}  accepted {side.accepted:>10,}  failed {side.failed}  "
                f"{where} {side.arrived:>10,}{dups}  {side.rate:8,.0f} msg/s  ({side.connections} connection(s), {side.errors} errors)"
            )
            if side.notes:
                lines.append(f"    !! {side.notes}")
        lines.append(
            f"  ingest log on disk at most {self.log_bytes_max / MB:.1f} MB (segments of {self.segment_bytes / MB:g} MB, trimmed on commit)"
        )
        lines.append(
            f"  {'process':10s} {'samples':>7s} {'RSS first':>10s} {'RSS last':>10s} {'allowed':>9s} {'trend':>12s} {'fds':>9s}  verdict"
        )
        for name, f in self.flatness.items():
            lines.append(
                f"  {name:10s} {f.samples:>7d} {f.rss_first / MB:>7.1f} MB {f.rss_last / MB:>7.1f} MB {'+' + format(f.rss_allowed / MB, '.0f'):>6s} MB "
                f"{f.rss_slope * 60 / MB:>+6.2f} MB/min {f'{f.fd_min}..{f.fd_max}':>9s}  {f.reason}"
            )
        lines.append(f"  rule: {RULE}")
        if self.aborted:
            lines.append(f"  ABORTED {self.aborted}")
        lines.append(
            f"  verdict: {'flat' if self.flat else 'NOT flat'}; {'every message arrived' if self.complete else 'messages MISSING or failed'}"
        )
        return "\n".join(lines)
