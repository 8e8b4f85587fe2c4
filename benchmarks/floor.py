"""The fixed cost of any Ray Data job that loads a model once per actor: start Ray, start one actor per core that
loads the model, pass one row through each, shut Ray down. Run as its own process (``python -m benchmarks.floor``)
and timed from outside, so interpreter start and exit count too; no lakelabel code is involved.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ray

from benchmarks.baselines import Forward


class Loaded:
    """An actor that loads the tokenizer and model as the limit (a) does, and returns its batch untouched."""

    def __init__(self, model: str, task: str) -> None:
        self.forward = Forward(Path(model), task)

    def __call__(self, batch: dict) -> dict:
        return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--actors", type=int, default=os.cpu_count() or 1, help="model actors (default: one per core)")
    args = parser.parse_args()
    actors = args.actors
    ray.init(num_cpus=max(actors, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    dataset = ray.data.range(actors, override_num_blocks=actors).map_batches(
        Loaded,
        fn_constructor_kwargs={"model": args.model, "task": args.task},
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=None,
    )
    dataset.materialize()
    ray.shutdown()


if __name__ == "__main__":
    main()
