"""`apigw render` and `apigw serve` refuse what AWS (or this machine's safety) would not take:
one line, exit 2, nothing written and nothing listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.apigw.artifacts import ApiSpec
from hookshift.cli import main
from hookshift.errors import InputError


def refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == "", err
    assert err.count("\n") == 1 and err.startswith("hookshift: error: "), err
    assert "(fix: " in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"resource_path": "callback"}, "is not a path"),
        ({"stage": "prod stage!"}, "is not an API Gateway stage name"),
        ({"account_id": "1234"}, "is not an AWS account id"),
        ({"region": "seoul"}, "is not an AWS region"),
    ],
)
def test_render_refuses_names_aws_would_reject(kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(InputError, match=says):
        ApiSpec(queue_name="results", **kwargs)  # type: ignore[arg-type]
    assert ApiSpec(queue_name="results", region="us-gov-west-1", account_id="111122223333")


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"", "no sample callback"), (b"\xff\xfe{}", "is not UTF-8 text (byte 1)")],
)
def test_a_sample_that_holds_no_callback_is_one_line_with_a_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, says: str
) -> None:
    sample = tmp_path / "sample.json"
    sample.write_bytes(content)
    out = tmp_path / "api.json"
    err = refusal(capsys, "apigw", "render", "--format", "cloudformation",
                  "--queue-name", "results", "--sample", str(sample), "-o", str(out))  # fmt: skip
    assert says in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--host", "0.0.0.0", "is not a loopback address"),
        ("--host", "192.0.2.7", "is not a loopback address"),
        ("--sqs-endpoint", "127.0.0.1:5000", "--sqs-endpoint: not a URL"),
        ("--queue-url", "https://sqs.example:99999/1/q", "--queue-url: not a URL"),
        ("--port", "99999", "is not in the range"),
    ],
)
def test_the_stage_emulator_serves_loopback_only_and_checks_its_addresses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str, says: str
) -> None:
    args = {
        "--sqs-endpoint": "http://127.0.0.1:5000",
        "--queue-url": "http://127.0.0.1:5000/123456789012/results",
        "--cert-dir": str(tmp_path / "certs"),
    } | {option: value}
    err = refusal(capsys, "apigw", "serve", *(x for kv in args.items() for x in kv))
    assert says in err
    assert not (tmp_path / "certs").exists()
