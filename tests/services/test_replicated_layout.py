"""``python -m services up --kafka-nodes N --artemis-ha``: where each replicated service listens and keeps its state."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from services.__main__ import main
from services.replicated import artemis_pair, cluster_nodes_on_disk, kafka_node_specs
from services.settings import ServiceSettings


@pytest.mark.unit
def test_ports_count_up_from_the_usual_ones(tmp_path: Path) -> None:
    settings = replace(ServiceSettings(), run_dir=tmp_path)
    specs = kafka_node_specs(settings, 3)
    assert [(s.node_id, s.port, s.controller_port) for s in specs] == [(1, 9092, 9093), (2, 9094, 9095), (3, 9096, 9097)]
    assert [s.folder for s in specs] == [tmp_path / "kafka-cluster" / f"kafka-{i}" for i in (1, 2, 3)]
    pair = artemis_pair(settings, tmp_path)
    assert pair.url == "amqp://127.0.0.1:5672,amqp://127.0.0.1:5674"  # 5673 stays the bridge's
    assert pair.backup.instance == tmp_path / "artemis-ha" / "artemis-backup" / "artemis"
    assert cluster_nodes_on_disk(settings) == 0


@pytest.mark.unit
def test_impossible_choices_are_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit):
        main(["up", "--kafka-nodes", "0"])
    assert "--kafka-nodes must be at least 1, got 0" in capsys.readouterr().err
    monkeypatch.setenv("BROKER", "rabbitmq")
    with pytest.raises(SystemExit):
        main(["up", "--artemis-ha"])
    assert "--artemis-ha needs BROKER=artemis, not rabbitmq" in capsys.readouterr().err
