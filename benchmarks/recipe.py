"""Ray Data's documented batch-inference recipe, Parquet to Parquet: a callable class wrapping ``pipeline()``.

``read_parquet`` -> ``map_batches(Predictor, compute=ActorPoolStrategy(size=N), batch_size=64)`` ->
``write_parquet``, as in Ray's "End-to-end: Offline Batch Inference" guide, with N = cores - 1: with one actor per
core (1 CPU each) the read tasks get no CPU and the job stalls. Run as its own process (``python -m
benchmarks.recipe``) so it starts its own Ray, as a user's script would.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import ray
from transformers import pipeline

from benchmarks.baselines import PIPELINE_TASK
from benchmarks.models import MAX_LENGTH

ACTORS = max(1, (os.cpu_count() or 1) - 1)


class Predictor:
    """The recipe's callable class: one ``pipeline()`` per actor, called on each batch's texts."""

    def __init__(self, model: str, task: str) -> None:
        self.task = task
        self.pipe = pipeline(PIPELINE_TASK[task], model=model, device=-1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = list(batch["text"])
        if self.task == "classification":
            outputs = self.pipe(texts, truncation=True, max_length=MAX_LENGTH)
            batch["label"] = np.array([output["label"] for output in outputs])
            batch["score"] = np.array([output["score"] for output in outputs], dtype=np.float32)
        else:
            outputs = self.pipe(texts, tokenize_kwargs={"truncation": True, "max_length": MAX_LENGTH})
            vectors = np.stack([np.asarray(tokens[0], dtype=np.float32).mean(axis=0) for tokens in outputs])
            batch["embedding"] = list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    for name in ("--model", "--task", "--input", "--output"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    dataset = ray.data.read_parquet(args.input)
    dataset = dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": args.model, "task": args.task},
        compute=ray.data.ActorPoolStrategy(size=ACTORS),
        batch_size=64,
    )
    dataset.write_parquet(args.output)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    ray.shutdown()


if __name__ == "__main__":
    main()
