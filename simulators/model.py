"""Pure numpy model of many temperature devices, reproducible from a seed.

Readings are produced in *rounds*: one reading per device, in device order
(``device-0`` .. ``device-{n-1}``). Reading number ``k`` (0-based, over all
devices) has the nominal event time ``start_ms + floor(k * 1000 / rate)``, so
``rate`` is readings per second over all devices and the event clock runs at
wall-clock speed when the sender paces at ``rate``.

Each device's temperature is::

    base + amplitude * sin(2π (t/1 day - phase)) + walk + noise (+ spike)

with per-device ``base``, ``amplitude`` and ``phase`` drawn once from the seed,
``walk`` a mean-reverting random walk (Ornstein-Uhlenbeck, so it never drifts
away) and ``noise`` white noise. Temperatures are rounded to two decimals,
which makes ties possible on purpose (window maxima must break them
deterministically).

Late events: a fraction of readings carries an event time ``late_by_ms``
earlier than nominal (a millisecond or a few more where the device has an
on-time reading at that instant: one device never has two readings with the
same time), so they arrive after readings with later event times (out of order). With ``late_by_ms`` below the Spark job's watermark no late
reading is ever dropped by the job; above it, some are (by design).

Pitfall: the sequence depends only on the seed and the constructor arguments,
never on how many readings are asked for per call (each random stream has its
own generator and every round draws the same amount from each).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Reading:
    """One temperature reading; ``ts`` is the event time in epoch milliseconds."""

    device_id: str
    temperature: float
    ts: int

    def to_dict(self) -> dict[str, object]:
        return {"device_id": self.device_id, "temperature": self.temperature, "ts": self.ts}

    def to_json(self) -> str:
        """The message body of the temperature contract (compact JSON)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Reading:
        obj = json.loads(text)
        return cls(str(obj["device_id"]), float(obj["temperature"]), int(obj["ts"]))


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Parameters of the device fleet; all defaults give a plausible room climate."""

    devices: int = 50
    rate: float = 200.0
    start_ms: int = 0
    seed: int = 0
    base_mean: float = 20.0
    base_spread: float = 2.0
    amplitude_low: float = 2.0
    amplitude_high: float = 5.0
    noise_sd: float = 0.15
    walk_sd: float = 0.05
    walk_reversion: float = 0.02
    late_fraction: float = 0.0
    late_by_ms: int = 0
    spike_fraction: float = 0.0
    spike_size: float = 15.0

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError(f"devices must be >= 1, got {self.devices}")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        for name in ("late_fraction", "spike_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.late_by_ms < 0:
            raise ValueError(f"late_by_ms must be >= 0, got {self.late_by_ms}")
        if not 0.0 <= self.walk_reversion <= 1.0:
            raise ValueError(f"walk_reversion must be within [0, 1], got {self.walk_reversion}")


def device_id(index: int) -> str:
    """The device id of device number ``index`` (the contract's ``device-3`` form)."""
    return f"device-{index}"


class TemperatureModel:
    """Deterministic stream of :class:`Reading` for a fleet of devices.

    Not thread-safe; one instance per producer.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        n = config.devices
        # Independent streams: asking for more or fewer readings per call
        # must not change any of them.
        fleet, walk, noise, late, spike = (np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(5))
        self._base = config.base_mean + fleet.normal(0.0, config.base_spread, n)
        self._amplitude = fleet.uniform(config.amplitude_low, config.amplitude_high, n)
        # Warmest around 15:00 UTC, each device shifted by up to an hour.
        self._phase = 0.375 + fleet.uniform(-1 / 24, 1 / 24, n)
        self._walk_rng, self._noise_rng = walk, noise
        self._late_rng, self._spike_rng = late, spike
        self._walk = np.zeros(n)
        self._ids = [device_id(i) for i in range(n)]
        self._k = 0  # index of the next reading
        self._buffer: list[Reading] = []

    @property
    def produced(self) -> int:
        """How many readings :meth:`take` has returned so far."""
        return self._k - len(self._buffer)

    def nominal_ts(self, k: int) -> int:
        """Event time (epoch ms) of reading number ``k`` before any lateness."""
        return self.config.start_ms + int(k * 1000 // self.config.rate)

    def _round(self) -> list[Reading]:
        c, n = self.config, self.config.devices
        k = np.arange(self._k, self._k + n)
        ts = c.start_ms + (k * 1000 // c.rate).astype(np.int64)
        self._walk = (1.0 - c.walk_reversion) * self._walk + self._walk_rng.normal(0.0, c.walk_sd, n)
        cycle = np.sin(2 * np.pi * (ts / DAY_MS - self._phase))
        temp = self._base + self._amplitude * cycle + self._walk + self._noise_rng.normal(0.0, c.noise_sd, n)
        temp = temp + np.where(self._spike_rng.random(n) < c.spike_fraction, c.spike_size, 0.0)
        late = self._late_rng.random(n) < c.late_fraction
        out = []
        for i in range(n):
            t = int(ts[i])
            if late[i]:
                t = self._free_time(i, t - c.late_by_ms)
            out.append(Reading(self._ids[i], round(float(temp[i]), 2), t))
        self._k += n
        return out

    def _free_time(self, device: int, t: int) -> int:
        """``t``, or the closest earlier millisecond at which ``device`` has no on-time reading.

        A device measures once per instant: a late reading must not share its event time with
        another reading of the same device (consumers may treat ``(device_id, ts)`` as identity).
        """
        c, n = self.config, self.config.devices
        while True:
            around = int((t - c.start_ms) * c.rate // 1000)
            taken = any(k % n == device and self.nominal_ts(k) == t for k in range(max(0, around - n - 1), around + n + 2))
            if not taken:
                return t
            t -= 1

    def take(self, count: int) -> list[Reading]:
        """The next ``count`` readings, in send order."""
        while len(self._buffer) < count:
            self._buffer.extend(self._round())
        out, self._buffer = self._buffer[:count], self._buffer[count:]
        return out

    def __iter__(self) -> Iterator[Reading]:
        while True:
            yield from self.take(self.config.devices)
