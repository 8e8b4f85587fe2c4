"""A GPU check that fits a short slot: every operator's device path once, then text-encoder throughput on the GPU.

    python -m benchmarks.gpu [--json FILE]              # on a machine with CUDA: float32 and float16 against the CPU
    python -m benchmarks.gpu --device cpu --half bfloat16   # the same checks on a CPU (a dry run of the harness)

Needs torch, transformers, pyarrow, numpy and Pillow (what a GPU machine's image holds); no Ray, no install step.
Audio operators also need soundfile and soxr and are reported as not checked where they are missing; SpeechT5 needs
sentencepiece.

1. **Operators on the device.** Each task's operator runs once on the tests' tiny models (built here, seeded) over
   a small batch, on the CPU in float32 (the reference), then on the device in float32 and in half precision. Rows
   agree when every label, token, word and offset is equal and every float is within the tolerance (float32
   ``FLOAT32_TOLERANCE``; half precision ``HALF_TOLERANCE``: the tiny random models have near-ties, so a half
   precision label may flip, and that is reported as a count, not a failure). The exit code is non-zero when an
   operator fails on the device or float32 rows disagree.
2. **Throughput.** A MiniLM-sized encoder (the real all-MiniLM-L6-v2 when its package is installed, else the same
   shape with seeded weights and the tests' tokenizer) over the benchmark corpus: the forward pass alone over
   length-sorted batches in half precision (the limit) against the feature-extraction operator, with the GPU's
   utilisation sampled while the operator runs.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch

from benchmarks.corpus import texts as corpus_texts
from lakelabel.operators import OperatorConfig, operator_class

FLOAT32_TOLERANCE = 1e-3
HALF_TOLERANCE = 5e-2
TEXTS = [
    "John Smith works for Acme Corporation in Paris.",
    "",
    "The battery dies fast but the screen is lovely.",
    "Mary met Peter at the Globex office in Berlin on Monday.",
]


@dataclass
class Case:
    """One task: how to build its tiny model, its options, and its input column."""

    task: str
    build: Callable[[Path], dict[str, Any]]
    """Returns the step's model path and any further options (a vocoder, say)."""
    column: Callable[[], pa.Array]
    options: dict[str, Any] = field(default_factory=dict)


def _texts() -> pa.Array:
    return pa.array(TEXTS, pa.string())


def _masked() -> pa.Array:
    return pa.array(["Paris is the [MASK] of France.", "The [MASK] was late."], pa.string())


def _images() -> pa.Array:
    from tests import tiny_vision  # noqa: PLC0415 - the tests' inputs, built only when this check runs

    return pa.array(list(tiny_vision.images().values())[:4], pa.binary())


def _clips() -> pa.Array:
    from tests import tiny_audio  # noqa: PLC0415

    clips = tiny_audio.clips()
    return pa.array([clips["wav_3s"], clips["flac_7s"], clips["stereo_44k"]], pa.binary())


def _model(builder: str, name: str) -> Callable[[Path], dict[str, Any]]:
    """A builder from the tests' tiny models, by module and function name."""

    def build(root: Path) -> dict[str, Any]:
        from importlib import import_module  # noqa: PLC0415

        module, _, function = builder.partition(":")
        return {"model": str(getattr(import_module(f"tests.{module}"), function)(root / name))}

    return build


def _speecht5(root: Path) -> dict[str, Any]:
    from tests import tiny_speech  # noqa: PLC0415

    model, vocoder = tiny_speech.build_speecht5(root / "speecht5")
    return {"model": str(model), "vocoder": str(vocoder), "speaker_embeddings": tiny_speech.speaker_embedding(0)}


CASES = [
    Case("text-classification", _model("tiny_models:build_text_classifier", "classifier"), _texts),
    Case("token-classification", _model("tiny_models:build_token_classifier", "ner"), _texts),
    Case(
        "zero-shot-classification",
        _model("tiny_models:build_nli_classifier", "nli"),
        _texts,
        {"candidate_labels": ["travel", "work", "phones"]},
    ),
    Case("feature-extraction", _model("tiny_models:build_encoder", "encoder"), _texts),
    Case("fill-mask", _model("tiny_heads:build_mlm", "mlm"), _masked, {"top_k": 3}),
    Case(
        "question-answering", _model("tiny_heads:build_qa_model", "qa"), _texts, {"question": "Where does John work?"}
    ),
    Case("summarization", _model("tiny_generation:build_bart", "bart"), _texts, {"max_new_tokens": 8}),
    Case("text-generation", _model("tiny_generation:build_gpt2", "gpt2"), _texts, {"max_new_tokens": 8}),
    Case("image-classification", _model("tiny_vision:build_image_classifier", "vit"), _images),
    Case("object-detection", _model("tiny_vision:build_object_detector", "detr"), _images),
    Case("image-to-text", _model("tiny_vision:build_captioner", "captioner"), _images, {"max_new_tokens": 8}),
    Case(
        "image-text-to-text",
        _model("tiny_vlm:build_llava", "llava"),
        _images,
        {"prompt": "What is in the picture?", "max_new_tokens": 8},
    ),
    Case("automatic-speech-recognition", _model("tiny_audio:build_whisper", "whisper"), _clips, {"max_new_tokens": 8}),
    Case("automatic-speech-recognition", _model("tiny_audio:build_ctc", "ctc"), _clips),
    Case("audio-classification", _model("tiny_audio:build_audio_classifier", "audio-classifier"), _clips),
    Case("text-to-audio", _model("tiny_speech:build_vits", "vits"), _texts),
    Case("text-to-audio", _speecht5, _texts),
]


def _run(case: Case, model: dict[str, Any], column: pa.Array, *, device: str, dtype: str) -> list[Any]:
    options = {**case.options, **{key: value for key, value in model.items() if key != "model"}}
    config = OperatorConfig(model=model["model"], input="x", output="out", options=options, device=device, dtype=dtype)
    operator = operator_class(case.task)(config)
    operator.setup()
    table = pa.table({"x": column})
    preparer = operator.preparer()
    if preparer is not None:
        preparer.setup()
        table = preparer(table)
    out = operator(table)
    return list(zip(out.column("out").to_pylist(), out.column("lakelabel_errors").to_pylist(), strict=True))


def _agree(reference: Any, value: Any, tolerance: float) -> tuple[bool, float]:
    """Whether two outputs agree (non-floats equal, floats within ``tolerance``) and the largest float gap."""
    if isinstance(reference, float) and isinstance(value, float):
        gap = abs(reference - value) if math.isfinite(reference) and math.isfinite(value) else math.inf
        return gap <= tolerance, gap
    if isinstance(reference, bytes) and isinstance(value, bytes):  # encoded audio: compare the decoded samples
        return _audio_agree(reference, value, tolerance)
    if isinstance(reference, dict) and isinstance(value, dict) and reference.keys() == value.keys():
        pairs = [(reference[key], value[key]) for key in reference]
    elif isinstance(reference, list | tuple) and isinstance(value, list | tuple) and len(reference) == len(value):
        pairs = list(zip(reference, value, strict=True))
    else:
        return reference == value, 0.0
    agree, widest = True, 0.0
    for left, right in pairs:
        same, gap = _agree(left, right, tolerance)
        agree, widest = agree and same, max(widest, gap)
    return agree, widest


def _audio_agree(reference: bytes, value: bytes, tolerance: float) -> tuple[bool, float]:
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import soundfile as sf  # noqa: PLC0415

    left, _ = sf.read(io.BytesIO(reference), dtype="float32")
    right, _ = sf.read(io.BytesIO(value), dtype="float32")
    if left.shape != right.shape:
        return False, math.inf
    gap = float(np.abs(left - right).max()) if left.size else 0.0
    return gap <= tolerance, gap


def check_operators(work: Path, *, device: str, half: str) -> list[dict[str, Any]]:
    """Part 1: each case on the CPU (float32) and on ``device`` in float32 and ``half``."""
    found = []
    for case in CASES:
        entry: dict[str, Any] = {"task": case.task}
        try:
            model = case.build(work)
            column = case.column()
            entry["model"] = Path(model["model"]).name
            reference = _run(case, model, column, device="cpu", dtype="float32")
        except ImportError as exc:
            entry["status"] = f"not checked: {exc}"
            found.append(entry)
            print(f"{case.task}: {entry['status']}", flush=True)
            continue
        for dtype, tolerance in (("float32", FLOAT32_TOLERANCE), (half, HALF_TOLERANCE)):
            try:
                rows = _run(case, model, column, device=device, dtype=dtype)
            except Exception as exc:  # noqa: BLE001 - reported per task and dtype, the check goes on
                entry[dtype] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            results = [_agree(want, got, tolerance) for want, got in zip(reference, rows, strict=True)]
            entry[dtype] = {
                "rows": len(rows),
                "agree": sum(same for same, _ in results),
                "largest_gap": max((gap for _, gap in results), default=0.0),
            }
        entry["status"] = _status(entry, half)
        found.append(entry)
        print(f"{case.task} ({entry['model']}): {entry['status']}", flush=True)
    return found


def _status(entry: dict[str, Any], half: str) -> str:
    parts = []
    for dtype in ("float32", half):
        result = entry[dtype]
        if "error" in result:
            parts.append(f"{dtype} FAILED ({result['error'][:200]})")
        else:
            parts.append(
                f"{dtype} {result['agree']}/{result['rows']} rows agree (largest gap {result['largest_gap']:.2g})"
            )
    return "; ".join(parts)


def _encoder(work: Path) -> tuple[str, str]:
    """The real MiniLM when installed, else a seeded model of its shape with the tests' tokenizer."""
    try:
        from benchmarks.models import minilm  # noqa: PLC0415

        return str(minilm()), "all-MiniLM-L6-v2"
    except ImportError:
        pass
    from transformers import BertConfig, BertModel  # noqa: PLC0415

    from tests import tiny_models  # noqa: PLC0415

    path = work / "minilm-shaped"
    tokenizer = tiny_models.build_tokenizer(model_max_length=256)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path), "a MiniLM-shaped encoder (seeded weights, the tests' tokenizer)"


class Utilisation:
    """GPU utilisation (percent) sampled every 0.2 s while in the ``with`` block, through nvidia-smi."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._smi = shutil.which("nvidia-smi")

    def __enter__(self) -> Utilisation:
        if self._smi:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _sample(self) -> None:
        query = [str(self._smi), "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=0"]
        while not self._stop.wait(0.2):
            done = subprocess.run(query, capture_output=True, text=True, check=False)  # noqa: S603
            if done.returncode == 0 and done.stdout.strip():
                self.samples.append(float(done.stdout.strip().splitlines()[0]))

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def throughput(work: Path, *, device: str, rows: int) -> dict[str, Any]:
    """Part 2: the feature-extraction operator against the forward pass alone, both on ``device``."""
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    from lakelabel.operators.core.text_batching import GPU_TOKEN_BUDGET, length_sorted_chunks  # noqa: PLC0415

    path, what = _encoder(work)
    texts = corpus_texts(rows)
    target = torch.device(device)
    dtype = torch.float16 if target.type == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=dtype).to(target).eval()

    def limit() -> float:
        start = time.perf_counter()
        ids = tokenizer(texts, truncation=True, max_length=256)["input_ids"]
        with torch.inference_mode():
            for chunk in length_sorted_chunks([len(row) for row in ids], token_budget=GPU_TOKEN_BUDGET):
                padded = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt").to(target)
                hidden = model(**padded).last_hidden_state
                mask = padded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                ((hidden * mask).sum(1) / mask.sum(1)).float().cpu()
        if target.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    limit()  # warm-up: kernels chosen, memory pools filled
    limit_seconds = min(limit() for _ in range(2))
    operator = operator_class("feature-extraction")(
        OperatorConfig(model=path, input="text", output="embedding", options={"max_length": 256}, device=device)
    )
    operator.setup()
    batches = [pa.table({"text": pa.array(texts[i : i + 1024], pa.string())}) for i in range(0, rows, 1024)]
    operator(batches[0])  # warm-up
    with Utilisation() as busy:
        start = time.perf_counter()
        for batch in batches:
            operator(batch)
        operator_seconds = time.perf_counter() - start
    result = {
        "model": what,
        "rows": rows,
        "limit_rows_per_s": round(rows / limit_seconds, 1),
        "operator_rows_per_s": round(rows / operator_seconds, 1),
        "ratio": round(limit_seconds / operator_seconds, 3),
        "gpu_utilisation_percent": busy.mean(),
    }
    busy_text = "n/a" if result["gpu_utilisation_percent"] is None else f"{result['gpu_utilisation_percent']:.0f}%"
    print(
        f"throughput ({what}, {rows} texts): limit {result['limit_rows_per_s']} rows/s, operator "
        f"{result['operator_rows_per_s']} rows/s ({result['ratio']:.2f}x), GPU busy {busy_text}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Run both parts; exit 1 when an operator failed on the device or its float32 rows disagree."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--half", default="float16", choices=["float16", "bfloat16"])
    parser.add_argument("--rows", type=int, default=20_000, help="texts in the throughput part")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; --device cpu runs the same checks on the CPU")
    work = Path(tempfile.mkdtemp(prefix="lakelabel-gpu-"))
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device: {args.device} ({name}), torch {torch.__version__}", flush=True)
    report: dict[str, Any] = {"device": name, "torch": torch.__version__}
    report["operators"] = check_operators(work, device=args.device, half=args.half)
    if not args.skip_throughput:
        report["throughput"] = throughput(work, device=args.device, rows=args.rows)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    bad = [
        entry["task"]
        for entry in report["operators"]
        if "float32" in entry and ("error" in entry["float32"] or entry["float32"]["agree"] < entry["float32"]["rows"])
    ]
    bad += [entry["task"] for entry in report["operators"] if "error" in entry.get(args.half, {})]
    if bad:
        print(f"failed: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
