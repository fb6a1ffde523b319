"""The device model: reproducible, chunk-invariant, plausible, late events and spikes as asked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.model import ModelConfig, Reading, TemperatureModel

pytestmark = pytest.mark.unit

START = 1_764_370_000_000


def model(**kw: object) -> TemperatureModel:
    base = dict(devices=5, rate=100.0, start_ms=START, seed=42)
    base.update(kw)
    return TemperatureModel(ModelConfig(**base))  # type: ignore[arg-type]


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    assert model().take(500) == model().take(500)
    assert model().take(500) != model(seed=43).take(500)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=37), min_size=1, max_size=20))
def test_readings_do_not_depend_on_chunking(chunks: list[int]) -> None:
    m = model(late_fraction=0.2, late_by_ms=3000, spike_fraction=0.1)
    got = [r for n in chunks for r in m.take(n)]
    assert got == model(late_fraction=0.2, late_by_ms=3000, spike_fraction=0.1).take(sum(chunks))
    assert m.produced == sum(chunks)


def test_round_robin_devices_and_nominal_event_times() -> None:
    readings = model(devices=3, rate=200.0).take(7)
    assert [r.device_id for r in readings] == ["device-0", "device-1", "device-2"] * 2 + ["device-0"]
    assert [r.ts for r in readings] == [START + 5 * k for k in range(7)]


def test_temperatures_are_plausible_and_two_decimals() -> None:
    temps = np.array([r.temperature for r in model(devices=50, rate=50.0).take(50 * 600)])
    assert 5 < temps.min() and temps.max() < 35
    assert np.allclose(temps, np.round(temps, 2))


def test_devices_differ_and_walk_stays_bounded() -> None:
    readings = model(devices=4, rate=4.0).take(4 * 5000)
    per_device = {d: np.array([r.temperature for r in readings if r.device_id == d]) for d in {r.device_id for r in readings}}
    means = sorted(v.mean() for v in per_device.values())
    assert means[-1] - means[0] > 0.1
    # Mean reversion: over 5000 s the spread stays within the daily swing plus a few degrees.
    assert all(v.max() - v.min() < 16 for v in per_device.values())


def test_late_fraction_shifts_event_time_back_by_late_by() -> None:
    m = model(devices=10, late_fraction=0.3, late_by_ms=4000)
    readings = m.take(2000)
    lags = np.array([m.nominal_ts(k) - r.ts for k, r in enumerate(readings)])
    late = lags > 0
    assert set(np.unique(lags[~late])) == {0} and np.all((lags[late] >= 4000) & (lags[late] <= 4003))
    assert 0.25 < late.mean() < 0.35
    # A late reading never takes an instant at which its device has another reading.
    assert len({(r.device_id, r.ts) for r in readings}) == len(readings)
    assert any(b.ts < a.ts for a, b in zip(readings, readings[1:], strict=False)), "late readings arrive out of order"


def test_spikes_add_spike_size_to_the_same_readings() -> None:
    plain = model(devices=10).take(2000)
    spiky = model(devices=10, spike_fraction=0.05, spike_size=15.0).take(2000)
    diffs = np.array([s.temperature - p.temperature for p, s in zip(plain, spiky, strict=True)])
    spiked = np.isclose(diffs, 15.0, atol=0.011)
    assert np.all(spiked | np.isclose(diffs, 0.0))
    assert 0.03 < spiked.mean() < 0.07


def test_reading_json_is_the_contract_and_round_trips() -> None:
    r = Reading("device-3", 21.7, 1764370000123)
    assert json.loads(r.to_json()) == {"device_id": "device-3", "temperature": 21.7, "ts": 1764370000123}
    assert Reading.from_json(r.to_json().encode()) == r


@pytest.mark.parametrize(
    "kw",
    [dict(devices=0), dict(rate=0.0), dict(late_fraction=1.5), dict(spike_fraction=-0.1), dict(late_by_ms=-1)],
)
def test_invalid_config_names_the_option(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kw))):
        ModelConfig(**kw)  # type: ignore[arg-type]
