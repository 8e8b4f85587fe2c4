"""Daft's idiomatic batch inference, Parquet to Parquet: a stateful ``@daft.cls`` with a ``@daft.method.batch``.

``daft.read_parquet`` -> ``with_column(Model(...).predict(df["text"]))`` -> ``write_parquet`` on Daft's native
runner, as Daft's "Stateful Class UDFs" guide writes it. The class loads the tokenizer and model once per instance
and runs the same forward as the limit (a) on each batch, in the order the rows come (no length sort: a UDF sees
its batch only). Runs in its own environment (``.venv-daft``, from ``benchmarks/daft-requirements.txt``) as its own
process, timed from outside: ``.venv-daft/bin/python -m benchmarks.daft_udf --model DIR --task classification
--input IN --output OUT --batch-size 8 [--instances 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys

import daft
import pyarrow as pa
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.models import MAX_LENGTH

CLASSIFICATION = daft.DataType.struct({"label": daft.DataType.string(), "score": daft.DataType.float32()})
EMBEDDING = daft.DataType.list(daft.DataType.float32())


def model_class(batch_size: int, instances: int | None) -> type:
    """The UDF class for one configuration (Daft takes batch size and concurrency at decoration time)."""

    @daft.cls(max_concurrency=instances)
    class Model:
        def __init__(self, model: str, task: str) -> None:
            self.task = task
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            head = AutoModelForSequenceClassification if task == "classification" else AutoModel
            self.model = head.from_pretrained(model).eval()
            self.labels = self.model.config.id2label

        @daft.method.batch(return_dtype=CLASSIFICATION, batch_size=batch_size)
        def classify(self, texts: daft.Series) -> pa.Array:
            with torch.inference_mode():
                scores = self._forward(texts.to_pylist()).logits.softmax(-1)
            best, index = scores.max(-1)
            labels = [self.labels[int(i)] for i in index]
            return pa.StructArray.from_arrays(
                [pa.array(labels, pa.string()), pa.array(best.numpy(), pa.float32())], names=["label", "score"]
            )

        @daft.method.batch(return_dtype=EMBEDDING, batch_size=batch_size)
        def embed(self, texts: daft.Series) -> pa.Array:
            with torch.inference_mode():
                encoded = self._encode(texts.to_pylist())
                hidden = self.model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            return pa.array(list(vectors.numpy()), pa.list_(pa.float32()))

        def _encode(self, texts: list[str]) -> dict:
            return self.tokenizer(texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")

        def _forward(self, texts: list[str]) -> object:
            return self.model(**self._encode(texts))

    return Model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    for name in ("--model", "--task", "--input", "--output"):
        parser.add_argument(name, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--instances", type=int, help="max_concurrency of the class (default: Daft's)")
    args = parser.parse_args()
    daft.set_runner_native()
    model = model_class(args.batch_size, args.instances)(args.model, args.task)
    frame = daft.read_parquet(f"{args.input.rstrip('/')}/*.parquet")
    if args.task == "classification":
        frame = frame.with_column("label", model.classify(frame["text"]))
    else:
        frame = frame.with_column("embedding", model.embed(frame["text"]))
    frame.write_parquet(args.output)
    sys.stdout.flush()
    # Daft 0.7's native runner can abort while the interpreter finalises ("PyGILState_Release ... must be current"),
    # after the output is written; leave without finalising so a finished run exits 0.
    os._exit(0)


if __name__ == "__main__":
    main()
