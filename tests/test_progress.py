"""Progress and console output: the display's figures, the log routing, what `lakelabel run` prints off a terminal."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lakelabel.jobs.console.progress import ProgressDisplay, Snapshot, clock, render_block, render_line, step_rate
from lakelabel.jobs.console.runlog import console_filter, route_logs
from lakelabel.jobs.console.summary import StepStats
from tests.conftest import write_parquet

ROOT = Path(__file__).resolve().parent.parent


def snapshot(elapsed: float = 30.0) -> Snapshot:
    # topic: 3 batches of 100 rows, the first finished at t=10, the last at t=20 -> (300 - 100) / 10 = 20 rows/s
    topic = StepStats(name="topic", task="zero-shot-classification", rows=300, row_errors=2, batches=3)
    topic.first_batch_at, topic.first_batch_rows, topic.last_batch_at = 10.0, 100, 20.0
    # embedding: one batch so far: rows over the elapsed time, 100 / 30
    embedding = StepStats(name="embedding", task="feature-extraction", rows=100, batches=1)
    embedding.first_batch_at, embedding.first_batch_rows, embedding.last_batch_at = 25.0, 100, 25.0
    return Snapshot(elapsed=elapsed, steps=[topic, embedding], rows_total=500, shards_done=1, shards_total=5)


def test_rates_and_eta_come_from_the_step_counters() -> None:
    snap = snapshot()
    topic, embedding = snap.steps
    assert step_rate(topic, snap.elapsed) == (300 - 100) / (20.0 - 10.0)
    assert step_rate(embedding, snap.elapsed) == 100 / 30.0
    line = render_line(snap)
    assert line.startswith("progress 0:30  ")
    assert "topic 300/500 rows 20.0 rows/s ETA 0:10, 2 err" in line  # 200 rows left at 20 rows/s
    assert "embedding 100/500 rows 3.3 rows/s ETA 2:00" in line  # 400 rows left at 10/3 rows/s
    assert line.endswith("| shards 1/5 committed | 2 row errors")
    assert "\n" not in line
    assert clock(3725) == "1:02:05"


def test_finished_and_not_started_steps_read_plainly() -> None:
    snap = snapshot()
    snap.steps[0].rows = 500
    assert "topic 500/500 rows" in render_line(snap)
    assert "done" in render_line(snap)
    empty = Snapshot(elapsed=0.0, steps=[StepStats(name="topic", task="t")], rows_total=10, shards_done=0,
                     shards_total=1)  # fmt: skip
    assert "topic 0/10 rows 0.0 rows/s ETA -" in render_line(empty)


def test_line_display_writes_one_line_per_tick_and_the_last_one_at_the_end() -> None:
    stream = io.StringIO()
    snaps = iter([snapshot(10.0), snapshot(20.0), snapshot(30.0)])
    display = ProgressDisplay(lambda: next(snaps), stream=stream, live=False, interval=3600)
    display.start()
    display.tick()
    display.tick()
    display.stop()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["0:10", "0:20", "0:30"]
    assert "\x1b" not in stream.getvalue()


def test_live_display_redraws_its_block_in_place_and_writes_log_lines_above_it() -> None:
    stream = io.StringIO()
    log = logging.getLogger("lakelabel.test-live")
    log.setLevel(logging.INFO)
    display = ProgressDisplay(snapshot, stream=stream, live=True, interval=3600, log=log)
    block = render_block(snapshot())
    assert len(block) == 3
    display.start()
    display.tick()
    log.warning("a warning")
    log.info("not for the console")
    log.info("for the console", extra={"console": True})
    display.stop()
    text = stream.getvalue()
    up = f"\x1b[{len(block)}F\x1b[J"
    assert text.count(up) == 3  # cleared and redrawn for the warning, for the console line, and at the end
    assert "lakelabel.test-live: a warning" in text
    assert "for the console" in text
    assert "not for the console" not in text
    assert text.endswith("\n".join(block) + "\n")


def test_libraries_log_to_the_run_file_not_the_console(tmp_path: Path) -> None:
    library = logging.getLogger("ray.data")  # as Ray Data configures it: DEBUG, a console handler at INFO
    level = library.level
    library.setLevel(logging.DEBUG)
    console = logging.StreamHandler(io.StringIO())
    console.setLevel(logging.INFO)
    library.addHandler(console)
    try:
        with route_logs(tmp_path / "run.log", verbose=False):
            library.info("Running Dataset: progress block")
            library.error("a real failure")
            logging.getLogger("lakelabel").info("lakelabel detail")
            logging.getLogger("lakelabel.progress").info("progress 0:10  a line")
        library.info("after the run")
    finally:
        library.removeHandler(console)
        library.setLevel(level)
    shown = console.stream.getvalue()
    assert "progress block" not in shown
    assert "a real failure" in shown
    assert "after the run" in shown  # the console level is restored
    logged = (tmp_path / "run.log").read_text()
    assert "progress block" in logged
    assert "lakelabel detail" in logged
    assert "progress 0:10  a line" in logged
    assert "after the run" not in logged


def test_console_filter_keeps_warnings_and_asked_for_lines() -> None:
    quiet, verbose = console_filter(verbose=False), console_filter(verbose=True)

    def record(level: int, **extra: object) -> logging.LogRecord:
        made = logging.LogRecord("lakelabel", level, __file__, 1, "m", None, None)
        made.__dict__.update(extra)
        return made

    assert quiet.filter(record(logging.WARNING))
    assert quiet.filter(record(logging.INFO, console=True))
    assert not quiet.filter(record(logging.INFO))
    assert verbose.filter(record(logging.INFO))
    assert not verbose.filter(record(logging.DEBUG))


@pytest.fixture(scope="module")
def quiet_run(models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """`lakelabel run` as a cron job would run it: its own process, output to a pipe (not a terminal)."""
    root = tmp_path_factory.mktemp("quiet")
    for index in range(3):
        write_parquet(root / "in" / f"part-{index}.parquet", text=[f"text {index} {i}" for i in range(40)] + [None])
    job = root / "job.yaml"
    job.write_text(
        f"name: quiet\ninput: {{uri: {root / 'in'}}}\noutput: {{uri: {root / 'out'}}}\nsteps:\n"
        f"  - {{task: text-classification, model: {models['classifier']}, input: text, output: label}}\n"
        f"  - {{task: feature-extraction, model: {models['encoder']}, input: text, output: embedding}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "lakelabel", "run", str(job)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return done.stdout, root / "out"


@pytest.mark.ray
def test_run_off_a_terminal_prints_progress_lines_and_the_summary_only(quiet_run: tuple[str, Path]) -> None:
    printed, output = quiet_run
    lines = printed.splitlines()
    start = lines[0]
    assert start.startswith("lakelabel: job quiet run ")
    (log_file,) = (output / "_lakelabel" / "logs").glob("*.log")
    assert f"log: {log_file}" in start
    assert "Ray's worker logs: " in start
    progress = [line for line in lines if line.startswith("progress ")]
    assert progress, printed
    assert progress[-1].endswith("| shards 3/3 committed | 3 row errors")
    assert "label 123/123 rows" in progress[-1]
    assert "job quiet: 3 shard(s): 3 processed, 0 already done, 0 quarantined" in printed
    for noise in ("logging_progress", "Running Dataset", "Loading weights", "Started a local Ray", "it/s]"):
        assert noise not in printed
    others = [
        line for line in lines
        if not line.startswith(("lakelabel: job quiet run ", "progress ", "job quiet:", "  ", "output: "))
    ]  # fmt: skip
    assert not [line for line in others if not re.search(r"core_worker\.cc:\d+: Actor with class name", line)]
    logged = log_file.read_text()
    assert "Started a local Ray instance" in logged
    assert "Running Dataset" in logged  # Ray Data's own progress, in the file
    assert "shard part-0 committed" in logged
