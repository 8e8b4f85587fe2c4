"""Test-only operators for the fault suite; registered by the tests (``register``), never shipped in the registry.

``test-killer`` ends its own process (``os._exit``, as a native crash or the OOM killer would) on every row whose
text contains ``KILL``, and otherwise writes the text's length. With ``FAULT_OPS_SLEEP`` set in the environment
each row also takes that many seconds, so a run lives long enough to be overlapped.

``python -m tests.fault_ops run JOB.yaml`` is ``lakelabel run JOB.yaml`` with these operators registered.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pyarrow as pa

from lakelabel.operators.core.base import Operator

TASK = "test-killer"


class Killer(Operator):
    task = TASK
    uses_gpu = False
    batch_size = 16

    def output_type(self) -> pa.DataType:
        return pa.int64()

    def load(self) -> None:
        self.pause = float(os.environ.get("FAULT_OPS_SLEEP") or 0)

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
