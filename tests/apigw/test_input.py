"""`apigw render` and `apigw serve` refuse what AWS (or this machine's safety) would not take:
one line, exit 2, nothing written and nothing listening."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookshift.apigw.artifacts import ApiSpec
from hookshift.errors import InputError
from tests.refusals import refusal


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"resource_path": "callback"}, "is not a path"),
        ({"stage": "prod stage!"}, "is not an API Gateway stage name"),
        ({"account_id": "1234"}, "is not an AWS account id"),
        ({"region": "seoul"}, "is not an AWS region"),
        ({"api_name": ""}, "'' is not an API name"),
        ({"role_name": "a/b"}, "'a/b' is not an IAM role name"),
        ({"role_name": "r" * 65}, "is not an IAM role name"),
        ({"api_name": "my callbacks"}, "the execution role's name 'my callbacks-sqs-send'"),
        ({"api_name": "a" * 60}, "(the API name + -sqs-send) is not an IAM role name"),
        ({"base_path": "/a b"}, "'/a b' is not a base path API Gateway maps"),
        ({"base_path": "v1/orders"}, "is not a base path API Gateway maps"),
        (
            {"domain": "hooks.example.com", "certificate_arn": "notanarn"},
            "'notanarn' is not an ACM certificate ARN",
        ),
        ({"domain": "hooks.example.com"}, "a custom domain needs its ACM certificate ARN"),
    ],
)
def test_render_refuses_names_aws_would_reject(kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(InputError, match=re.escape(says)):
        ApiSpec(queue_name="results", **kwargs)  # type: ignore[arg-type]
    assert ApiSpec(queue_name="results", region="us-gov-west-1", account_id="111122223333")
    assert ApiSpec(queue_name="results", api_name="My Callbacks", role_name="cb+send@x.y-z_1")
    assert ApiSpec(
        queue_name="results",
        domain="hooks.example.com",
        certificate_arn="arn:aws:acm:ap-northeast-2:111122223333:certificate/abcd-12",
        base_path="/v1.$_+!*'()-/",
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "no sample callback"),
        (b"\xff\xfe{}", "is not UTF-8 text (byte 1)"),
        (b'[{"a": 1}]', "sample.json: a sample callback is a JSON object, not an array"),
        (b'"callback"', "sample.json: a sample callback is a JSON object, not a string"),
        (b'{"a": 1}\n[1]\n', "sample.json:2: a sample callback is a JSON object, not an array"),
        (b'{"k":' * 5000 + b"1" + b"}" * 5000, "sample.json: nested deeper than 64 levels"),
        (b"[" * 100000 + b"]" * 100000, "sample.json: nested deeper than 64 levels"),
        (b'{"a": 1}\n' + b'{"k":' * 65 + b"1" + b"}" * 65, "sample.json:2: nested deeper than 64"),
    ],
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


def test_render_refuses_an_output_directory_that_does_not_exist_and_creates_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "dir" / "api.json"
    err = refusal(capsys, "apigw", "render", "--format", "cloudformation",
                  "--queue-name", "results", "-o", str(out))  # fmt: skip
    assert f"-o {out}: directory {out.parent} does not exist" in err
    assert not (tmp_path / "missing").exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    err = refusal(capsys, "apigw", "render", "--format", "cloudformation",
                  "--queue-name", "results", "-o", str(a_file / "api.json"))  # fmt: skip
    assert f"{a_file} is not a directory" in err
