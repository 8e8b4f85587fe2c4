"""Test-only operators for the fault suite; registered by the tests (``register``), never shipped in the registry.

``test-killer`` ends its own process (``os._exit``, as a native crash or the OOM killer would) on every row whose
text contains ``KILL``, and otherwise writes the text's length. With the option ``pause_file`` naming a file, each
row also takes the seconds that file holds when the actor loads (none when it is absent), so a run lives long enough
to be overlapped. A file, not an environment variable: the actors of a run attached to the tests' Ray get that
Ray's environment, not the driver's.

``python -m tests.fault_ops run JOB.yaml`` is ``lakelabel run JOB.yaml`` with these operators registered.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from lakelabel.operators.core.base import Operator

TASK = "test-killer"


class Killer(Operator):
    task = TASK
    uses_gpu = False
    batch_size = 16
    defaults: ClassVar[dict[str, Any]] = {"pause_file": ""}

    def output_type(self) -> pa.DataType:
        return pa.int64()

    def load(self) -> None:
        pause = Path(self.options["pause_file"]) if self.options["pause_file"] else None
        self.pause = float(pause.read_text()) if pause is not None and pause.exists() else 0.0

    def annotate(self, texts: list[Any]) -> pa.Array:
        for text in texts:
            if "KILL" in text:
                os._exit(1)
        time.sleep(self.pause * len(texts))
        return pa.array([len(text) for text in texts], pa.int64())


def register() -> None:
    from lakelabel.operators.registry import TASKS

    TASKS[TASK] = "tests.fault_ops:Killer"


if __name__ == "__main__":
    register()
    from lakelabel.jobs.cli import main

    sys.exit(main(sys.argv[1:]))
