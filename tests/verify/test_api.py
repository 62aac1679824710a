"""`hookshift.verify` from Python: pull, parity and heal as calls.

What a caller can count on: the same result the command gives (the command is a layer over
these calls), nothing printed, and every failure a hookshift error carrying its exit code.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from hookshift import verify
from hookshift.cli import cli
from hookshift.errors import HookshiftError, InputError
from hookshift.rehearsal.sqs import CREDENTIALS, REGION, MotoServer
from hookshift.verify.archive import iter_archive
from tests.verify.conftest import EXPECTED, Scenario
from tests.verify.data import T0, body, nginx_line, rid, write_lines


def _cli_json(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli, ["verify", "parity", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


# -- parity ------------------------------------------------------------------------------------


def test_parity_gives_the_classes_and_verdict_the_command_gives(scenario: Scenario) -> None:
    app, queue = f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}"

    report = verify.parity(app, queue, verify.ParityOptions(grace_s=10))
    shown = _cli_json("--app", app, "--queue", queue, "--grace", "10")

    assert {k: report.counts[k] for k in EXPECTED} == EXPECTED
    assert report.counts == shown["counts"]
    assert (report.verdict, report.reason, report.key) == (
        shown["verdict"],
        shown["reason"],
        shown["key"],
    )
    assert report.missing_in_queue_keys == shown["missing_in_queue_keys"] == [rid(6)]
    assert not report.passed and report.exit_code == 1


def test_parity_prints_nothing_and_reports_each_phase_to_the_callback(
    scenario: Scenario, capfd: pytest.CaptureFixture[str]
) -> None:
    phases: list[str] = []
    verify.parity(
        f"nginx:{scenario.app_glob}", f"jsonl:{scenario.queue_file}", progress=phases.append
    )
    assert phases and phases[0] == "reading both inputs"
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("app", "queue", "options", "said"),
    [
        ("nginx:{root}/nothing-here.log", "jsonl:{queue}", {}, "nothing-here.log"),
        ("xml:{root}/p.log", "jsonl:{queue}", {}, "xml"),
        ("nginx:{app}", "jsonl:{queue}", {"since_ms": T0 + 5000, "until_ms": T0}, "--since"),
        ("nginx:{app}", "jsonl:{queue}", {"memory_limit": "lots"}, "lots"),
        ("nginx:{app}", "jsonl:{queue}", {"key": "xml:MSGID"}, "xml:MSGID"),
    ],
)
def test_bad_input_to_parity_raises_an_input_error_with_exit_code_2(
    scenario: Scenario,
    app: str,
    queue: str,
    options: dict[str, object],
    said: str,
) -> None:
    names = {"root": scenario.root, "app": scenario.app_glob, "queue": scenario.queue_file}
    with pytest.raises(InputError) as raised:
        verify.parity(
            app.format(**names),
            queue.format(**names),
            verify.ParityOptions(**options),  # type: ignore[arg-type]
        )
    assert raised.value.exit_code == 2
    assert said in raised.value.line() and "\n" not in raised.value.line()


# -- heal --------------------------------------------------------------------------------------


STAGE = "https://stage.example.test/prod"


def _report_file(scenario: Scenario) -> Path:
    """The scenario's JSON report, as `verify parity --format json --out FILE` writes it."""
    report = verify.parity(
        f"nginx:{scenario.app_glob}",
        f"jsonl:{scenario.queue_file}",
        verify.ParityOptions(redact=False, stage_urls=(STAGE,)),
    )
    path = scenario.root / "report" / "report.json"
    path.parent.mkdir()
    path.write_text(json.dumps(report.to_dict()), encoding="utf-8")
    return path


def test_heal_is_a_dry_run_by_default_and_names_what_it_would_send(scenario: Scenario) -> None:
    path = _report_file(scenario)

    result = verify.heal(path, f"{STAGE}/callback")

    assert not result.applied and result.sent == 0
    assert [item.replay_id for item in result.to_send] == [rid(6)]
    assert list(path.parent.iterdir()) == [path]  # no ledger: nothing was sent


def test_a_path_the_system_refuses_is_an_input_error_not_an_os_error(scenario: Scenario) -> None:
    path = _report_file(scenario)
    options = verify.HealOptions(ledger=path.parent)  # a directory where the ledger should be
    with pytest.raises(HookshiftError) as raised:
        verify.heal(path, f"{STAGE}/callback", options)
    assert raised.value.exit_code == 2 and str(path.parent) in raised.value.line()


def test_heal_without_a_report_raises_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        verify.heal(tmp_path / "none.json", "https://stage.example.test/prod/callback")
    assert raised.value.exit_code == 2 and "verify parity --format json" in raised.value.line()


# -- pull --------------------------------------------------------------------------------------


def test_pull_refuses_a_queue_url_that_is_not_a_url_before_making_the_archive(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError) as raised:
        verify.pull("notaurl", tmp_path / "archive")
    assert raised.value.exit_code == 2 and "--queue-url" in raised.value.line()
    assert not (tmp_path / "archive").exists()


@pytest.mark.e2e
def test_pull_from_sqs_into_an_archive_then_parity_over_it(
    moto: MotoServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    url = moto.create_queue(f"api-{uuid.uuid4().hex[:10]}")
    sqs = moto.client()
    app_lines = []
    for n in range(1, 6):
        app_lines.append(nginx_line(rid(n), T0 + n * 1000, body(n)))
        if n != 3:  # the mirror lost callback 3
            sqs.send_message(
                QueueUrl=url,
                MessageBody=body(n),
                MessageAttributes={
                    "nginx_request_id": {"DataType": "String", "StringValue": rid(n)}
                },
            )
    app = write_lines(tmp_path / "parity.log", app_lines)
    archive = tmp_path / "archive"
    heard: list[tuple[int, int | None]] = []
    options = verify.PullOptions(
        endpoint_url=moto.endpoint, region=REGION, delete=True, workers=2, wait_time_s=1
    )

    pulled = verify.pull(url, archive, options, progress=lambda *seen: heard.append(seen))

    assert (pulled.received, pulled.archived, pulled.deleted) == (4, 4, 4)
    assert heard and heard[-1][0] == 4
    assert sorted(m["Body"] for m in iter_archive(archive)) == sorted(body(n) for n in (1, 2, 4, 5))
    again = verify.pull(url, archive, options)  # the queue is empty now: nothing twice
    assert (again.received, again.archive_total) == (0, 4)

    report = verify.parity(f"nginx:{app}", f"archive:{archive}", verify.ParityOptions(grace_s=0))
    assert report.verdict == "fail"
    assert report.counts["matched"] == 4 and report.missing_in_queue_keys == [rid(3)]
    assert capfd.readouterr() == ("", "")


# -- the archive -------------------------------------------------------------------------------


def test_the_archive_reads_segments_in_order_and_leaves_out_a_line_still_being_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "segment-0002.jsonl").write_text('{"MessageId":"b"}\n{"MessageId":"c", "Bo')
    (tmp_path / "segment-0001.jsonl").write_text('{"MessageId":"a"}\n\n')
    assert [m["MessageId"] for m in iter_archive(tmp_path)] == ["a", "b"]
