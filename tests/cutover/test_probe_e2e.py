"""Every probe failure, produced for real on the stage emulator (TLS, DNS, SQS on moto) and
diagnosed correctly; and a healthy stage and custom domain where the probe lands."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hookshift.apigw.emulator import CustomDomain, Execution, RunningStage, StageConfig
from hookshift.apigw.emulator import serve as start
from hookshift.apigw.integration import TemplateOptions
from hookshift.apigw.tls import CertSpec
from hookshift.cli import cli
from hookshift.cutover.diagnosis import Diagnosis, diagnose
from hookshift.cutover.probe import QueueSpec, run_probe
from hookshift.rehearsal.dns import DnsServer
from hookshift.rehearsal.sqs import REGION, MotoServer
from tests.refusals import refusal

pytestmark = pytest.mark.e2e

STAGE_HOST = "abc123.execute-api.ap-northeast-2.amazonaws.com"
REGIONAL = "d-xyz789.execute-api.ap-northeast-2.amazonaws.com"
DOMAIN = "hooks.example.com"


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    records = [
        f"{STAGE_HOST}=127.0.0.1",
        f"{REGIONAL}=127.0.0.1",
        f"{DOMAIN}={REGIONAL}",
        "wrong.example.com=old-lb.example.net",
        "old-lb.example.net=127.0.0.1",
        "alias.example.com=127.0.0.1",  # an alias A record: no CNAME in the answer
        "elsewhere.example.com=127.0.0.2",
    ]
    with DnsServer(records) as server:
        yield server


@pytest.fixture
def queue(moto: MotoServer) -> QueueSpec:
    url = moto.create_queue(f"probe-{uuid.uuid4().hex[:8]}")
    return QueueSpec("sqs", url, moto.endpoint, REGION)


@pytest.fixture
def base(queue: QueueSpec, moto: MotoServer, tmp_path: Path) -> StageConfig:
    return StageConfig(
        sqs_endpoint=moto.endpoint, queue_url=queue.target, region=REGION,
        custom_domains=(CustomDomain(DOMAIN, ""), CustomDomain("wrong.example.com", ""),
                        CustomDomain("alias.example.com", "")),
        cert_dir=tmp_path / "certs",
    )  # fmt: skip


@contextmanager
def serve(config: StageConfig) -> Iterator[RunningStage]:
    """The emulator, writing its execution log (JSON lines) beside its certificates."""
    assert config.cert_dir is not None
    log = config.cert_dir.parent / "execution.log"
    with start(config) as stage, log.open("a", encoding="utf-8") as out:

        def write(execution: Execution) -> None:
            out.write(execution.log_line() + "\n")
            out.flush()

        stage.set_execution_listener(write)
        yield stage


def _probe(stage: RunningStage, url: str, queue: QueueSpec, dns: DnsServer, **kw: Any) -> Diagnosis:
    assert stage.config.cert_dir is not None
    options: dict[str, Any] = {
        "resolver": dns.address, "ca_file": str(stage.ca_pem), "timeout": 2.0,
        "execution_log": str(stage.config.cert_dir.parent / "execution.log"),
    }  # fmt: skip
    options.update(kw)
    return diagnose(run_probe(url, queue=queue, **options))


def _codes(d: Diagnosis) -> list[str]:
    return [f.code for f in d.findings if f.severity != "info"]


def test_a_probe_through_the_stage_url_lands_in_the_queue(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(base) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert d.landed is True and d.ok, d.findings
    assert [f.code for f in d.findings] == ["tls-sni-required"]


def test_a_probe_through_the_custom_domain_lands_and_the_message_is_gone_after(
    base: StageConfig, queue: QueueSpec, dns: DnsServer, moto: MotoServer
) -> None:
    with serve(base) as stage:
        d = _probe(stage, stage.domain_url(DOMAIN), queue, dns)
    assert d.landed is True and d.ok, d.findings
    attrs = moto.client().get_queue_attributes(
        QueueUrl=queue.target, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"  # the synthetic message was deleted


def test_a_probe_finds_its_message_behind_the_mirror_period_s_and_leaves_those_visible(
    base: StageConfig, queue: QueueSpec, dns: DnsServer, moto: MotoServer
) -> None:
    """A queue that holds the mirror period's copies returns them ten at a time: each shown
    again at once would come back before the probe's own message."""
    client = moto.client()
    for i in range(25):
        client.send_message(QueueUrl=queue.target, MessageBody=json.dumps({"MSGID": f"m{i}"}))
    with serve(base) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert d.landed is True and d.ok, d.findings
    left = client.receive_message(
        QueueUrl=queue.target, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
    )
    assert len(left.get("Messages", [])) == 10, "the others are visible again at once"
    attrs = client.get_queue_attributes(
        QueueUrl=queue.target, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "25"  # only the probe's message was deleted


def test_wrong_stage_is_missing_authentication_token(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(base) as stage:
        d = _probe(stage, stage.invoke_url.replace("/prod/", "/dev/"), queue, dns)
    assert _codes(d) == ["missing-auth-token"]
    assert "wrong stage name or resource path" in d.findings[0].cause


def test_a_custom_domain_without_a_base_path_mapping_is_named(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    config = replace(base, custom_domains=(CustomDomain(DOMAIN, "hooks"),))
    with serve(config) as stage:
        url = stage.domain_url(DOMAIN).replace("/hooks/", "/")
        d = _probe(stage, url, queue, dns)
    assert _codes(d) == ["no-base-path-mapping"]


def test_deny_send_with_the_recommended_responses_is_access_denied(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(replace(base, deny_send=True)) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert _codes(d) == ["access-denied"]
    assert "sqs:SendMessage" in d.findings[0].cause


def test_without_the_execution_log_a_hidden_sqs_error_names_both_causes_and_the_log(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(replace(base, deny_send=True)) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns, execution_log=None)
    assert _codes(d) == ["integration-failed"]
    finding = d.findings[0]
    assert "AccessDenied" in finding.cause and "UnknownOperationException" in finding.cause
    assert "execution log for request " in finding.fix


def test_deny_send_behind_the_default_integration_response_is_the_200_trap(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(replace(base, deny_send=True, response_mode="default")) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns, execution_log=None)
    assert _codes(d) == ["accepted-not-queued"]
    assert d.landed is False
    assert "default integration response" in d.findings[0].cause


def test_behind_the_default_response_the_execution_log_names_the_hidden_error(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    config = replace(base, integration_content_type="application/json", response_mode="default")
    with serve(config) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert _codes(d) == ["accepted-not-queued", "unknown-operation"]


@pytest.mark.parametrize(
    "change",
    [
        {"integration_content_type": "application/json"},
        {"template": TemplateOptions(variant="no-action")},
    ],
    ids=["json-content-type", "no-action"],
)
def test_wrong_integration_content_type_or_no_action_is_unknown_operation(
    base: StageConfig, queue: QueueSpec, dns: DnsServer, change: dict[str, Any]
) -> None:
    with serve(replace(base, **change)) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert _codes(d) == ["unknown-operation"]


def test_a_template_without_urlencode_alters_the_body_and_is_named(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(replace(base, template=TemplateOptions(variant="no-urlencode"))) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert _codes(d) in (["body-altered"], ["access-denied"])
    assert any("$util.urlEncode" in f.fix for f in d.findings)


def test_a_content_type_without_a_mapping_template_is_415(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    config = replace(base, request_content_types=("application/x-www-form-urlencoded",))
    with serve(config) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns)
    assert _codes(d) == ["unsupported-media-type"]


def test_a_custom_domain_missing_from_dns_is_nxdomain(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(base) as stage:
        url = stage.domain_url(DOMAIN).replace(DOMAIN, "callbacks.example.com")
        d = _probe(stage, url, queue, dns)
    assert _codes(d) == ["dns-nxdomain"]
    assert dns.address in d.findings[0].cause


def test_a_custom_domain_pointing_elsewhere_is_a_wrong_target(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(base) as stage:
        d = _probe(stage, stage.domain_url("wrong.example.com"), queue, dns)
    assert "dns-wrong-target" in _codes(d)
    assert "old-lb.example.net" in d.findings[0].cause


def test_an_alias_a_record_is_verified_against_the_expected_target(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(base) as stage:
        url = stage.domain_url("alias.example.com")
        unverified = _probe(stage, url, queue, dns)
        verified = _probe(stage, url, queue, dns, expect_target=REGIONAL)
        elsewhere = _probe(stage, url, queue, dns, expect_target="elsewhere.example.com")
    assert _codes(unverified) == ["dns-alias-unverified"] and unverified.landed
    assert _codes(verified) == [] and verified.ok
    assert "dns-wrong-target" in _codes(elsewhere)


def test_a_certificate_for_other_names_is_a_san_mismatch(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    config = replace(base, cert_overrides=((DOMAIN, CertSpec(("other.example.org",))),))
    with serve(config) as stage:
        d = _probe(stage, stage.domain_url(DOMAIN), queue, dns)
    assert _codes(d) == ["tls-hostname"]
    assert "other.example.org" in d.findings[0].cause


def test_an_expired_certificate_is_named(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    now = datetime.now(UTC)
    spec = CertSpec((DOMAIN,), now - timedelta(days=90), now - timedelta(days=1))
    with serve(replace(base, cert_overrides=((DOMAIN, spec),))) as stage:
        d = _probe(stage, stage.domain_url(DOMAIN), queue, dns)
    assert _codes(d) == ["tls-expired"]


def test_a_certificate_expiring_within_30_days_warns_and_still_lands(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    now = datetime.now(UTC)
    spec = CertSpec((DOMAIN,), now - timedelta(days=80), now + timedelta(days=10))
    with serve(replace(base, cert_overrides=((DOMAIN, spec),))) as stage:
        d = _probe(stage, stage.domain_url(DOMAIN), queue, dns)
    assert _codes(d) == ["tls-expiring"]
    assert d.landed is True and d.ok


def test_a_certificate_from_an_unknown_ca_is_untrusted(
    base: StageConfig, queue: QueueSpec, dns: DnsServer
) -> None:
    with serve(base) as stage:
        d = _probe(stage, stage.invoke_url, queue, dns, ca_file=None)
    assert _codes(d) == ["tls-untrusted"]


def test_the_probe_command_prints_json_and_exits_1_on_failure(
    base: StageConfig, queue: QueueSpec, dns: DnsServer, moto: MotoServer, tmp_path: Path
) -> None:
    with serve(replace(base, deny_send=True)) as stage:
        result = CliRunner().invoke(
            cli,
            ["probe", stage.invoke_url, "--queue", f"sqs:{queue.target}",
             "--endpoint-url", moto.endpoint, "--region", REGION, "--resolver", dns.address,
             "--ca-file", str(stage.ca_pem), "--timeout", "2", "--format", "json",
             "--execution-log", str(tmp_path / "execution.log")],
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["findings"][0]["code"] == "access-denied"


def test_a_queue_in_another_region_is_refused_before_the_probe_is_sent(
    base: StageConfig,
    queue: QueueSpec,
    dns: DnsServer,
    moto: MotoServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serve(base) as stage:
        err = refusal(
            capsys, "probe", stage.invoke_url, "--queue", f"sqs:{queue.target}",
            "--endpoint-url", moto.endpoint, "--region", "us-east-1", "--resolver", dns.address,
            "--ca-file", str(stage.ca_pem), "--timeout", "2",
        )  # fmt: skip
        assert stage.executions == []  # nothing reached the stage
    assert err == (
        f"hookshift: error: {queue.target}: no such queue at --endpoint-url {moto.endpoint} in "
        f"region us-east-1 (fix: check the queue URL and the region against `aws sqs "
        f"list-queues --endpoint-url {moto.endpoint} --region us-east-1`)\n"
    )
    attributes = moto.client().get_queue_attributes(
        QueueUrl=queue.target, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"  # no synthetic callback left


def test_the_probe_command_says_landed_in_text(
    base: StageConfig, queue: QueueSpec, dns: DnsServer, moto: MotoServer
) -> None:
    with serve(base) as stage:
        result = CliRunner().invoke(
            cli,
            ["probe", stage.invoke_url, "--queue", f"sqs:{queue.target}",
             "--endpoint-url", moto.endpoint, "--region", REGION, "--resolver", dns.address,
             "--ca-file", str(stage.ca_pem)],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("landed: the probe reached the queue through https://")


def test_the_execution_log_is_read_from_cloudwatch_as_api_gateway_writes_it(
    base: StageConfig, queue: QueueSpec, dns: DnsServer, moto: MotoServer
) -> None:
    """API Gateway's execution logging writes text lines, each prefixed with the request id,
    to the log group API-Gateway-Execution-Logs_APIID/STAGE (here: moto's CloudWatch Logs)."""
    import boto3

    group = f"API-Gateway-Execution-Logs_abc123/prod-{uuid.uuid4().hex[:6]}"
    logs = boto3.client("logs", endpoint_url=moto.endpoint, region_name=REGION)
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")

    def to_cloudwatch(execution: Execution) -> None:
        rid = execution.request_id
        lines = [
            f"({rid}) Received response. Status: {execution.integration_status}, "
            "Integration latency: 2 ms",
            f"({rid}) Endpoint response body before transformations: "
            f"{execution.integration_response}",
        ]
        now = int(time.time() * 1000)
        logs.put_log_events(
            logGroupName=group, logStreamName="s",
            logEvents=[{"timestamp": now, "message": line} for line in lines],
        )  # fmt: skip

    config = replace(base, integration_content_type="application/json")
    with start(config) as stage:
        stage.set_execution_listener(to_cloudwatch)
        d = _probe(stage, stage.invoke_url, queue, dns, execution_log=f"cloudwatch:{group}")
    assert _codes(d) == ["unknown-operation"]
