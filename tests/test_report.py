"""``lakelabel report``: the figures embedded in the HTML equal DuckDB's over the same files; memory stays flat.

The outputs are synthetic (tests/synthetic_output.py: the real layout, manifest and column types, seeded values),
so a 100,000-row output with 384-float embeddings is written in seconds. The demo's own outputs are checked the same
way in tests/test_demo.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from lakelabel.jobs.cli import main
from lakelabel.jobs.report import ReportError, build_report, report_figures
from lakelabel.jobs.spec import StorageSpec
from tests import report_reference
from tests.synthetic_output import STEPS, write_output

KINDS = {
    "sentiment": "label",
    "topic": "zero-shot",
    "entities": "entities",
    "summary": "text",
    "embedding": "embedding",
}
ROOT = Path(__file__).resolve().parent.parent


def embedded(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="lakelabel-report">(.*?)</script>', html, re.S)
    assert found, "the page embeds its figures"
    return json.loads(found.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_output(tmp_path_factory.mktemp("large") / "out", rows=100_000, shard_rows=10_000)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_output(tmp_path_factory.mktemp("small") / "out", rows=10_000, shard_rows=10_000, seed=1)


def check_against_duckdb(output: Path, figures: dict) -> None:
    con = duckdb.connect()
    src = f"read_parquet('{output}/*.parquet')"
    assert figures["rows"] == con.execute(f"select count(*) from {src}").fetchone()[0]
    assert figures["rows_with_errors"] == report_reference.rows_with_errors(con, src)
    assert [step["name"] for step in figures["steps"]] == [name for name, _ in STEPS]
    for step in figures["steps"]:
        assert step["kind"] == KINDS[step["name"]]
        report_reference.assert_step_matches(step, report_reference.step_figures(con, src, step["name"], step["kind"]))
    per_file = dict(
        con.execute(f"select parse_filename(filename, true), count(*) from read_parquet('{output}/*.parquet', "
                    "filename=true) group by 1").fetchall()
    )  # fmt: skip
    assert {shard["key"]: shard["rows"] for shard in figures["throughput"]["shards"]} == per_file


def test_report_of_a_100000_row_output_equals_duckdb(large: Path, tmp_path: Path) -> None:
    files = build_report(str(large), StorageSpec(), tmp_path / "report")
    page = files.html.read_text(encoding="utf-8")
    figures = embedded(page)
    assert figures == json.loads(files.json.read_text(encoding="utf-8"))
    assert figures["rows"] == 100_000
    check_against_duckdb(large, figures)
    # one chart per label distribution and per non-empty series, plus errors by step and the two throughput charts
    charts = sum(bool(s["labels"]) + sum(1 for v in s["series"].values() if v["count"]) for s in figures["steps"]) + 3
    assert page.count("<svg") == charts
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "nothing is fetched when the page opens"
    for step in figures["steps"]:
        for message, count in step["errors"].items():
            assert f'<td>{message.replace(chr(39), "&#x27;")}</td><td class="n">{count:,}</td>' in page


def test_report_of_a_small_output_equals_duckdb(small: Path, tmp_path: Path) -> None:
    figures = report_figures(str(small), StorageSpec())
    check_against_duckdb(small, figures)


def _peak_kib(output: Path, out: Path) -> int:
    """Peak RSS of a fresh process making the report: VmHWM, the high-water mark of the process's own memory map
    (ru_maxrss would carry over the peak of the forking pytest process across exec)."""
    script = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from lakelabel.jobs.report import build_report\n"
        "from lakelabel.jobs.spec import StorageSpec\n"
        "build_report(sys.argv[1], StorageSpec(), sys.argv[2])\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', Path('/proc/self/status').read_text()).group(1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(output), str(out)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return int(done.stdout.split()[-1])


def test_peak_memory_is_flat_from_10000_to_100000_rows(small: Path, large: Path, tmp_path: Path) -> None:
    small_kib, large_kib = _peak_kib(small, tmp_path / "s"), _peak_kib(large, tmp_path / "l")
    embeddings_mib = 100_000 * 384 * 4 / 2**20  # what holding the large output's embeddings alone would add
    print(f"report peak RSS: 10,000 rows {small_kib / 1024:.0f} MiB, 100,000 rows {large_kib / 1024:.0f} MiB; "
          f"the large output's embeddings are {embeddings_mib:.0f} MiB")  # fmt: skip
    assert large_kib < 1.25 * small_kib, (small_kib, large_kib)


def test_report_command_writes_both_files_and_names_them(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["report", str(small), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'r' / 'report.html'}" in out
    assert (tmp_path / "r" / "report.json").exists()


def test_report_of_a_prefix_without_a_run_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ReportError, match="no lakelabel run has written here"):
        report_figures(str(tmp_path), StorageSpec())
    assert main(["report", str(tmp_path)]) == 2
    assert "no lakelabel run has written here" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_page_renders_in_a_headless_browser(small: Path, tmp_path: Path) -> None:
    """With a browser installed (Debian's chromium), the page renders offline with all its charts."""
    if CHROMIUM is None:
        # The embedded figures are checked by the tests above; this one is about the browser's rendering.
        pytest.skip("no headless browser installed (chromium, chromium-browser or google-chrome): page not rendered")
    files = build_report(str(small), StorageSpec(), tmp_path / "report")
    page = files.html.read_text(encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = subprocess.run(
        [CHROMIUM, *flags, profile, "--dump-dom", files.html.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "<title>lakelabel report: synthetic</title>" in dom
    assert dom.count("<svg") == page.count("<svg") > 0
    assert embedded(dom) == embedded(page)
    shot = tmp_path / "page.png"
    subprocess.run(
        [CHROMIUM, *flags, profile, f"--screenshot={shot}", "--window-size=1200,1600", files.html.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    from PIL import Image

    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 50, "the charts drew something besides the background"
