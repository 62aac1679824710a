"""The cut-over's evidence calls verify in this process: no ``python -m hookshift`` child, no
options rebuilt as a command line, no error read back from the last line of stderr."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hookshift.cli import cli
from hookshift.cutover import evidence
from hookshift.cutover.settings import Settings
from hookshift.errors import OperationError
from tests.verify import conftest as parity_samples
from tests.verify.conftest import Scenario, t

SOURCE = Path(evidence.__file__)
scenario = parity_samples.scenario  # the parity tests' files, with an answer for each class


def test_evidence_starts_no_process() -> None:
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"), str(SOURCE))
    imported = {
        alias.name.partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").partition(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not imported & {"subprocess", "multiprocessing", "runpy"}, imported
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert "-m" not in strings and not any(s == "--format" for s in strings)
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not attributes & {"executable", "system", "popen", "spawnv", "execv"}, attributes


def _window(scenario: Scenario) -> tuple[float, float]:
    return (t(0) / 1000, t(15) / 1000)


def test_parity_evidence_is_what_verify_parity_reports_over_the_stage_window(
    scenario: Scenario,
) -> None:
    since, until = _window(scenario)
    settings = Settings(
        parity_log=scenario.app_glob,
        queue=f"jsonl:{scenario.queue_file}",
        min_events=5,
        parity_grace=0,
    )

    found = evidence.parity(settings, since, until)

    shown = CliRunner().invoke(
        cli,
        ["verify", "parity", "--app", f"nginx:{scenario.app_glob}",
         "--queue", f"jsonl:{scenario.queue_file}", "--since", str(since), "--until", str(until),
         "--min-events", "5", "--grace", "0", "--format", "json"],
    )  # fmt: skip
    assert found == evidence.parity_evidence(json.loads(shown.stdout), since, until)
    assert found.verdict == "fail" and found.missing_in_queue and found.mismatched == 1
    assert (found.window_start, found.window_end) == (since, until)


def test_a_parity_that_cannot_run_is_an_operation_error_naming_verify(
    scenario: Scenario, tmp_path: Path
) -> None:
    since, until = _window(scenario)
    settings = Settings(parity_log=str(tmp_path / "no-such.log"), queue=f"jsonl:{tmp_path}")
    with pytest.raises(OperationError) as raised:
        evidence.parity(settings, since, until)
    line = raised.value.line()
    assert line.startswith("verify parity failed: ") and "no-such.log" in line
    assert "\n" not in line


def test_the_drain_counts_what_the_archive_holds(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "segment-000001.jsonl").write_text(
        "".join(json.dumps({"MessageId": m, "Body": "{}"}) + "\n" for m in ("a", "b", "a")),
        encoding="utf-8",
    )
    assert evidence._archive_ids(archive) == {"a", "b"}
    assert evidence._archive_ids(tmp_path / "none") == set()
