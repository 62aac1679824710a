"""Every failure in the seed, reproduced on real processes, then fixed by hookshift's output.

"Seed-style" configs are written by hand the way the seed's author wrote them (``location =
/mirror_api_gw { internal; resolver ...; proxy_pass https://HOST/dev$request_uri; }``);
"hookshift's config" is what ``hookshift mirror apply`` makes of the same sample config. The
stage is the API Gateway emulator over TLS (SNI required, as on AWS), resolved through the
stack's own DNS, with SQS on moto.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from hookshift.apigw.integration import TemplateOptions
from hookshift.rehearsal.load import make_callbacks
from hookshift.rehearsal.stack import Stack
from tests.e2e.conftest import (
    MakeStack,
    error_log_line,
    executions,
    parity_records,
    post,
    queue_bodies,
)

pytestmark = pytest.mark.e2e

# The callback location copies each request to the seed's internal location.
SEED_MIRROR_IN_LOCATION = "        mirror /mirror_api_gw;\n        mirror_request_body on;\n"


def seed_mirror_location(*directives: str) -> str:
    """The seed's ``location = /mirror_api_gw`` with `directives` before its ``proxy_pass``."""
    body = "".join(f"        {d}\n" for d in ("internal;", *directives))
    return (
        "\n    location = /mirror_api_gw {\n"
        f"{body}"
        "        proxy_pass https://@STAGE_HOST@:@STAGE_PORT@/@STAGE_NAME@$request_uri;\n"
        "    }\n"
    )


def seed_stack(make_stack: MakeStack, *directives: str) -> Stack:
    return make_stack(
        mirror="none",
        extra_location=SEED_MIRROR_IN_LOCATION,
        extra_server=seed_mirror_location(*directives),
    )


def doctor_codes(stack: Stack, severity: str = "error") -> set[str]:
    """What ``hookshift doctor`` says of the stack's nginx config, before any traffic."""
    assert stack.config is not None
    argv = ["doctor", "--config", str(stack.config.main), "--format", "json"]
    done = subprocess.run(
        [sys.executable, "-m", "hookshift", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(done.stdout)["findings"]
    return {f["code"] for f in findings if f["severity"] == severity}


def assert_delivered_intact(stack: Stack, run_id: str, count: int = 5) -> None:
    """Callbacks sent to nginx arrive in SQS with the vendor's exact bytes, app untouched."""
    callbacks = make_callbacks(count, run_id=run_id)
    results = post(stack, stack.nginx_url, callbacks)
    assert [r.status for r in results] == [200] * count
    bodies = queue_bodies(stack, count)
    assert sorted(b.encode("utf-8") for b in bodies) == sorted(c.body for c in callbacks)


def test_seed_mirror_without_resolver_logs_no_resolver_defined_and_sqs_gets_nothing(
    make_stack: MakeStack,
) -> None:
    stack = seed_stack(make_stack)
    results = post(stack, stack.nginx_url, make_callbacks(1, run_id="nores"))

    line = error_log_line(stack, r"no resolver defined to resolve")
    assert stack.options.stage_host in line
    assert stack.nginx is not None and stack.nginx.test().returncode == 0  # nginx -t: fine
    assert "proxy-pass-no-resolver" in doctor_codes(stack)  # doctor: not fine
    assert [r.status for r in results] == [200]  # the vendor and the app never notice
    assert len(stack.app_bodies()) == 1
    assert stack.stage_executions() == []
    assert stack.queue_depth() == 0


def test_seed_mirror_with_an_unanswering_resolver_logs_could_not_be_resolved(
    make_stack: MakeStack,
) -> None:
    stack = seed_stack(make_stack, "resolver @DNS@ valid=10s;", "resolver_timeout 1s;")
    assert stack.dns is not None
    stack.dns.blackhole = True  # the internal DNS the seed's author first had: no answer
    post(stack, stack.nginx_url, make_callbacks(1, run_id="blackhole"))

    line = error_log_line(stack, r"could not be resolved \(110: Operation timed out\)")
    assert stack.options.stage_host in line
    assert stack.queue_depth() == 0


def test_seed_mirror_without_sni_fails_the_tls_handshake_and_sqs_gets_nothing(
    make_stack: MakeStack,
) -> None:
    stack = seed_stack(make_stack, "resolver @DNS@ valid=10s;")
    results = post(stack, stack.nginx_url, make_callbacks(1, run_id="nosni"))

    line = error_log_line(stack, r"SSL_do_handshake\(\) failed")
    assert "handshake failure" in line
    assert "proxy-ssl-no-sni" in doctor_codes(stack)
    assert [r.status for r in results] == [200]
    assert stack.stage_executions() == []
    assert stack.queue_depth() == 0


def test_hookshift_mirror_delivers_what_the_seed_config_lost_byte_for_byte(
    hookshift_stack: Stack,
) -> None:
    assert_delivered_intact(hookshift_stack, "fixed")
    assert hookshift_stack.nginx is not None
    log = hookshift_stack.nginx.error_log()
    assert "no resolver defined" not in log
    assert "SSL_do_handshake() failed" not in log
    assert doctor_codes(hookshift_stack) == set()


def test_the_nginx_request_id_is_the_same_in_the_parity_log_the_app_and_the_queue(
    hookshift_stack: Stack,
) -> None:
    callbacks = make_callbacks(3, run_id="rid")
    post(hookshift_stack, hookshift_stack.nginx_url, callbacks)
    hookshift_stack.wait_for_queue(3, timeout=15)
    messages = hookshift_stack.drain_queue()
    by_body = {r["body"]: r["request_id"] for r in parity_records(hookshift_stack.parity_log)}
    assert len(messages) == 3
    for message in messages:
        attributes = message["MessageAttributes"]
        assert attributes["nginx_request_id"]["StringValue"] == by_body[message["Body"]]
        assert attributes["apigw_request_id"]["StringValue"]
    # the app got the same id (--request-id-to-app): one key across nginx, the app and SQS
    app_ids = {r["body"]: r["request_id"] for r in parity_records(hookshift_stack.app_ledger)}
    for message in messages:
        nginx_id = message["MessageAttributes"]["nginx_request_id"]["StringValue"]
        assert app_ids[message["Body"]] == nginx_id


@pytest.mark.parametrize(
    "stage",
    [
        pytest.param({"integration_content_type": "application/json"}, id="json-content-type"),
        pytest.param({"template": TemplateOptions(variant="no-action")}, id="no-action"),
    ],
)
def test_wrong_integration_gives_unknown_operation_exception_and_no_message(
    make_stack: MakeStack, stage: dict[str, object]
) -> None:
    stack = make_stack(stage=stage)
    post(stack, stack.nginx_url, make_callbacks(1, run_id="unknownop"))

    [execution] = executions(stack, 1)
    assert execution.integration_status == 404
    assert "<UnknownOperationException/>" in (execution.integration_response or "")
    assert stack.queue_depth() == 0


def test_body_without_urlencode_is_broken_or_refused_where_it_has_special_characters(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(stage={"template": TemplateOptions(variant="no-urlencode")})
    callbacks = make_callbacks(5, run_id="noenc")
    post(stack, stack.nginx_url, callbacks)
    executions(stack, len(callbacks))
    arrived = {b.encode("utf-8") for b in queue_bodies(stack, len(callbacks))}

    # "&" ends MessageBody in the form, "+" turns into a space (and "%XX" would be decoded)
    special = [c for c in callbacks if any(ch in c.fields["USERDATA"] for ch in "&+")]
    plain = [c for c in callbacks if not any(ch in c.body.decode("utf-8") for ch in "&+%")]
    assert special and plain, "the sample set must have values with and without & +"
    for callback in special:
        assert callback.body not in arrived, callback.fields["USERDATA"]
    for callback in plain:  # the same path is fine for a body without them
        assert callback.body in arrived


def test_body_with_urlencode_arrives_byte_for_byte_with_korean_and_special_characters(
    hookshift_stack: Stack,
) -> None:
    callbacks = make_callbacks(10, run_id="enc")
    text = b"".join(c.body for c in callbacks).decode("utf-8")
    assert all(ch in text for ch in "&+%=") and "배송" in text
    post(hookshift_stack, hookshift_stack.nginx_url, callbacks)
    bodies = queue_bodies(hookshift_stack, len(callbacks))
    assert sorted(b.encode("utf-8") for b in bodies) == sorted(c.body for c in callbacks)


@pytest.mark.parametrize(
    ("response_mode", "vendor_sees"),
    [("default", {200}), ("recommended", set(range(500, 600)))],
)
def test_access_denied_is_hidden_by_the_default_integration_response_not_the_recommended(
    make_stack: MakeStack, response_mode: str, vendor_sees: set[int]
) -> None:
    stack = make_stack(stage={"deny_send": True, "response_mode": response_mode})
    # the vendor after the switch: straight to API Gateway, no nginx in between
    [result] = post(stack, stack.custom_domain_callback_url, make_callbacks(1, run_id="deny"))

    assert result.status in vendor_sees
    [execution] = executions(stack, 1)
    assert execution.integration_status == 403
    assert "AccessDenied" in (execution.integration_response or "")
    assert stack.queue_depth() == 0


def test_the_same_callback_through_the_stage_url_and_the_custom_domain_lands_in_sqs(
    hookshift_stack: Stack,
) -> None:
    callbacks = make_callbacks(2, run_id="direct")
    first = post(hookshift_stack, hookshift_stack.stage_callback_url, callbacks[:1])
    second = post(hookshift_stack, hookshift_stack.custom_domain_callback_url, callbacks[1:])
    assert [r.status for r in first + second] == [200, 200]
    bodies = queue_bodies(hookshift_stack, 2)
    assert sorted(json.loads(b)["CMSGID"] for b in bodies) == sorted(c.key for c in callbacks)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[1, 2]", "application/json"),
        (b"MSGID=1&RESULT=7000", "application/x-www-form-urlencoded"),
    ],
    ids=["json-array", "form"],
)
def test_the_rehearsal_stage_refuses_what_the_deployed_api_refuses(
    hookshift_stack: Stack, body: bytes, content_type: str
) -> None:
    """The rehearsal's stage validates requests as the API `hookshift apigw template` deploys
    (a JSON object body, passthrough NEVER), so a vendor that AWS would refuse is refused in
    the rehearsal too, not shown as landing."""
    (good,) = make_callbacks(1, run_id="valid")
    bad = replace(good, seq=good.seq + 1, body=body, content_type=content_type)
    results = post(hookshift_stack, hookshift_stack.stage_callback_url, [good, bad])
    assert [r.status for r in results] == [200, 400 if content_type == "application/json" else 415]
    assert [json.loads(b)["CMSGID"] for b in queue_bodies(hookshift_stack, 1)] == [good.key]
