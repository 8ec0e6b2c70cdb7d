"""The runner's reading of results for any arena: JSON (with or without a status) and regex modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm.experiment.manifest import Manifest
from swarm.experiment.runner import RunOutcome, RunStatus, build_command, read_outcome
from swarm.models import Direction


def manifest(result: str, **run: object) -> Manifest:
    return Manifest.model_validate({
        "arena": {"name": "x", "editable": ["f.py"]},
        "metric": {"name": "score", "direction": "maximize"},
        "run": {"command": ["{python}", "bench.py", "--seed", "{seed}", "--out", "{out}"], "result": result, **run},
        "profiles": {"cpu": {"budget_s": 1, "timeout_s": 5}},
    })


def test_regex_mode_reads_the_metric_from_the_log(tmp_path: Path) -> None:
    m = manifest("regex", metric_regex=r"^throughput: ([0-9.]+)$")
    log = tmp_path / "run.log"
    log.write_text("warming up\nthroughput: 12.5\nthroughput: 13.75\nbye\n")
    out = read_outcome(m, 0, tmp_path / "missing.json", log, 1.0)
    assert out.status == "ok" and out.metric == 12.5  # the first match


def test_the_manifest_direction_is_the_one_gain() -> None:
    d = manifest("json").metric.direction
    assert d is Direction.MAXIMIZE
    assert d.gain(12.5, 13.0) == 0.5 and d.gain(13.0, 12.5) == -0.5  # maximize: higher is better
    assert Direction.MINIMIZE.gain(1.5, 1.25) == 0.25 and Direction.MINIMIZE.gain(1.25, 1.5) == -0.25


def test_regex_mode_without_a_match_or_with_a_failure_is_a_crash(tmp_path: Path) -> None:
    m = manifest("regex", metric_regex=r"^throughput: ([0-9.]+)$")
    log = tmp_path / "run.log"
    log.write_text("Traceback: boom\n")
    out = read_outcome(m, 0, tmp_path / "none.json", log, 1.0)
    assert out.status == "crash" and "no finite score" in out.error
    log.write_text("throughput: 3.0\n")
    out = read_outcome(m, 1, tmp_path / "none.json", log, 1.0)
    assert out.status == "crash" and out.metric is None and "exit code 1" in out.error


def test_json_mode_status_and_non_finite_metrics(tmp_path: Path) -> None:
    m = manifest("json", metric_key="score")
    res, log = tmp_path / "r.json", tmp_path / "run.log"
    log.write_text("")
    res.write_text(json.dumps({"score": 2.0, "steps": 7}))
    out = read_outcome(m, 0, res, log, 1.0)
    assert out.status == "ok" and out.metric == 2.0 and out.fields["steps"] == 7
    res.write_text(json.dumps({"status": "invalid", "score": None, "error": "peeked at the future"}))
    out = read_outcome(m, 0, res, log, 1.0)
    assert out.status is RunStatus.INVALID and out.error == "peeked at the future"
    res.write_text('{"score": NaN}')
    out = read_outcome(m, 0, res, log, 1.0)
    assert out.status == "crash" and out.metric is None
    res.write_text(json.dumps({"status": "weird", "score": 1.0}))
    assert read_outcome(m, 0, res, log, 1.0).status is RunStatus.CRASH  # a made-up status is a crash


def test_run_outcome_status_is_the_enum_and_compares_as_text() -> None:
    out = RunOutcome("ok", 1.0, 0.1)  # as a simulated runner builds it
    assert out.status is RunStatus.OK and out.status == "ok" and f"{out.status}" == "ok"
    with pytest.raises(ValueError):
        RunOutcome("okay", 1.0, 0.1)


def test_command_placeholders(tmp_path: Path) -> None:
    cmd = build_command(manifest("json"), seed=3, out=tmp_path / "o.json", budget_s=1, profile="cpu", device="cpu")
    assert cmd[1:] == ["bench.py", "--seed", "3", "--out", str(tmp_path / "o.json")]
