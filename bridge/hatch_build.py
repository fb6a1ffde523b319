"""Builds the bridge's native produce lane (``src/amqp_kafka_bridge/_lane.c``, ``_plain_record.c``) into the wheel, and in place for editable installs.

The extension needs only a C compiler and Python's headers: it finds librdkafka and proton-c
in the running process (see ``_lane.c``). Without a compiler the wheel is built without it and
the bridge uses confluent-kafka's Python producer (``producer_lane.load`` says so at start);
``AMQP_KAFKA_BRIDGE_REQUIRE_LANE=1`` makes that an error instead. The flags are fixed and carry
no paths or debug information, so two builds of the same tree, wherever it is, give the same bytes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class LaneBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source = Path(self.root) / "src" / "amqp_kafka_bridge" / "_lane.c"
        built = source.with_name("_lane" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
        compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        command = [
            *compiler,
            "-O2",
            "-g0",
            "-shared",
            "-fPIC",
            "-std=gnu11",
            f"-I{sysconfig.get_paths()['include']}",
            source.name,  # relative (run in its folder): no path of this machine in the object
            "_plain_record.c",
            "-o",
            built.name,
            "-ldl",
            "-lpthread",
        ]
        try:
            subprocess.run(command, check=True, cwd=source.parent)
        except (OSError, subprocess.CalledProcessError) as exc:
            if os.environ.get("AMQP_KAFKA_BRIDGE_REQUIRE_LANE") == "1":
                raise
            self.app.display_warning(f"the native produce lane was not built ({exc}); the bridge will use the Python producer")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from the source tree, where it was just built
            build_data["force_include"][str(built)] = f"amqp_kafka_bridge/{built.name}"
