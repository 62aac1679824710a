"""The stage emulator over real TLS on loopback, delivering to moto's SQS over its real protocol."""

from __future__ import annotations

import json
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta

import pytest

from hookshift.apigw.client import post, request
from hookshift.apigw.emulator import CustomDomain, StageConfig
from hookshift.apigw.integration import IntegrationResponse, TemplateOptions
from hookshift.apigw.tls import CertSpec
from hookshift.rehearsal.sqs import MotoServer
from tests.apigw.conftest import StageFactory, receive_all

TRICKY = json.dumps(
    {
        "DEVICE": "AT",
        "CMSGID": "261128091500123at0031servab12",
        "MEDIA": "KAT",
        "RESULT": "7000",
        "USERDATA": "order=A-1001&coupon=50%+off a=b=c; 배송 안내: 주문 #1002 출고 완료",
    },
    ensure_ascii=False,
    separators=(",", ":"),
)


@pytest.mark.e2e
def test_urlencoded_body_arrives_in_sqs_byte_for_byte(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage()
    response = post(
        emulator.invoke_url, TRICKY, {"X-Request-Id": "0123abcd"}, cafile=emulator.ca_pem
    )
    assert response.status == 200
    assert response.body == b""
    [message] = receive_all(moto, queue)
    assert message["Body"].encode("utf-8") == TRICKY.encode("utf-8")
    attributes = message["MessageAttributes"]
    assert attributes["nginx_request_id"]["StringValue"] == "0123abcd"
    assert attributes["apigw_request_id"]["StringValue"] == response.header("x-amzn-RequestId")
    assert "hookshift_replay" not in attributes


@pytest.mark.e2e
def test_request_id_and_replay_attributes_only_when_headers_are_present(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage()
    post(emulator.invoke_url, '{"a":"1"}', cafile=emulator.ca_pem)
    post(
        emulator.invoke_url,
        '{"a":"2"}',
        {"x-request-id": "r2", "X-Hookshift-Replay": "orig-1"},
        cafile=emulator.ca_pem,
    )
    by_body = {m["Body"]: m["MessageAttributes"] for m in receive_all(moto, queue)}
    assert set(by_body['{"a":"1"}']) == {"apigw_request_id"}
    assert by_body['{"a":"2"}']["nginx_request_id"]["StringValue"] == "r2"
    assert by_body['{"a":"2"}']["hookshift_replay"]["StringValue"] == "orig-1"


@pytest.mark.e2e
def test_without_urlencode_the_body_is_cut_at_the_first_ampersand(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(template=TemplateOptions(variant="no-urlencode"))
    body = "order=A-1001&coupon=50%+off"
    response = post(emulator.invoke_url, body, cafile=emulator.ca_pem)
    assert response.status == 200
    [message] = receive_all(moto, queue)
    assert message["Body"] == "order=A-1001"  # what SQS on AWS keeps, too


@pytest.mark.e2e
def test_without_urlencode_a_json_callback_does_not_arrive_intact(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(template=TemplateOptions(variant="no-urlencode"))
    post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    bodies = [m["Body"] for m in receive_all(moto, queue)]
    assert TRICKY not in bodies


@pytest.mark.e2e
@pytest.mark.parametrize(
    "overrides",
    [
        {"integration_content_type": "application/json"},
        {"template": TemplateOptions(variant="no-action")},
    ],
    ids=["json-content-type", "no-action"],
)
def test_unknown_operation_is_what_sqs_answers_and_default_responses_hide_it(
    stage: StageFactory, moto: MotoServer, overrides: dict[str, object]
) -> None:
    emulator, queue = stage(response_mode="default", **overrides)
    response = post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    assert response.status == 200  # the seed's trap: the vendor believes it was delivered
    [execution] = emulator.executions
    assert execution.integration_status == 404
    assert execution.integration_response == "<UnknownOperationException/>"
    assert execution.integration_source == "modelled"
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_unknown_operation_becomes_a_5xx_with_recommended_responses(stage: StageFactory) -> None:
    emulator, _ = stage(integration_content_type="application/json", response_mode="recommended")
    response = post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    assert response.status == 500
    assert json.loads(response.body)["requestId"] == response.header("x-amzn-RequestId")


@pytest.mark.e2e
def test_deny_send_is_access_denied_hidden_by_default_responses(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(deny_send=True, response_mode="default")
    response = post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    assert response.status == 200
    [execution] = emulator.executions
    assert execution.integration_status == 403
    error = json.loads(execution.integration_response or "")
    assert error["Error"]["Code"] == "AccessDenied"
    assert error["Error"]["Type"] == "Sender"
    assert error["Error"]["Message"] == (
        f"Access to the resource https://sqs.ap-northeast-2.amazonaws.com"
        f"/123456789012/{queue.rsplit('/', 1)[1]} is denied."
    )
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_deny_send_with_recommended_responses_makes_the_vendor_retry(stage: StageFactory) -> None:
    emulator, _ = stage(deny_send=True, response_mode="recommended")
    response = post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    assert response.status == 500
    assert json.loads(response.body)["message"] == "callback not queued"


@pytest.mark.e2e
def test_a_successful_send_records_sqs_json_answer_from_moto(stage: StageFactory) -> None:
    emulator, _ = stage()
    post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    [execution] = emulator.executions
    assert execution.integration_source == "moto"
    answer = json.loads(execution.integration_response or "")
    assert answer["SendMessageResponse"]["SendMessageResult"]["MessageId"]
    assert (execution.integration_request or "").startswith("Action=SendMessage&MessageBody=%7B")


@pytest.mark.e2e
def test_an_empty_body_arrives_as_an_empty_object(stage: StageFactory, moto: MotoServer) -> None:
    emulator, queue = stage()
    response = post(emulator.invoke_url, b"", cafile=emulator.ca_pem)
    assert (response.status, response.body) == (200, b"")
    assert [m["Body"] for m in receive_all(moto, queue)] == ["{}"]


@pytest.mark.e2e
def test_the_request_validator_checks_an_empty_body_as_an_empty_object(
    stage: StageFactory, moto: MotoServer
) -> None:
    loose, loose_queue = stage(request_model={"type": "object"})
    assert post(loose.invoke_url, b"", cafile=loose.ca_pem).status == 200
    assert [m["Body"] for m in receive_all(moto, loose_queue)] == ["{}"]
    strict, strict_queue = stage(request_model=MODEL)
    response = post(strict.invoke_url, b"", cafile=strict.ca_pem)
    assert (response.status, json.loads(response.body)) == (
        400,
        {"message": "Invalid request body"},
    )
    assert receive_all(moto, strict_queue) == []


@pytest.mark.e2e
def test_an_empty_response_template_passes_sqs_answer_through(stage: StageFactory) -> None:
    # what a console or CLI setup with an empty template gives: API Gateway keeps no template
    emulator, _ = stage(integration_responses=(IntegrationResponse(None, 200, ""),))
    response = post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem)
    assert response.status == 200
    answer = json.loads(response.body)
    assert answer["SendMessageResponse"]["SendMessageResult"]["MessageId"]


@pytest.mark.e2e
@pytest.mark.parametrize("char", ["\x01", "\ufffe", "\uffff"], ids=["x1", "xFFFE", "xFFFF"])
def test_a_character_sqs_does_not_allow_is_refused_and_the_vendor_retries(
    stage: StageFactory, moto: MotoServer, char: str
) -> None:
    emulator, queue = stage()
    response = post(emulator.invoke_url, f'{{"MSG":"a{char}"}}'.encode(), cafile=emulator.ca_pem)
    assert response.status == 500
    [execution] = emulator.executions
    assert execution.integration_status == 400
    error = json.loads(execution.integration_response or "")["Error"]
    assert error["Code"] == "InvalidMessageContents"
    assert f"'#x{ord(char):X}'" in error["Message"]
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_characters_sqs_allows_arrive_intact(stage: StageFactory, moto: MotoServer) -> None:
    emulator, queue = stage()
    body = '{"MSG":"tab\there\r\n😀 \ud7ff\ue000\ufffd 배송 a+b%20&c=d ~*"}'
    assert post(emulator.invoke_url, body.encode(), cafile=emulator.ca_pem).status == 200
    assert [m["Body"] for m in receive_all(moto, queue)] == [body]


@pytest.mark.e2e
def test_a_message_over_the_queue_limit_gets_sqs_error(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(queue_attributes={"MaximumMessageSize": "262144"})
    body = json.dumps({"USERDATA": "x" * 262_144})
    response = post(emulator.invoke_url, body, cafile=emulator.ca_pem)
    assert response.status == 500
    [execution] = emulator.executions
    assert execution.integration_status == 400
    error = json.loads(execution.integration_response or "")["Error"]
    assert error["Code"] == "InvalidParameterValue"
    assert error["Message"].endswith("Message must be shorter than 262144 bytes.")
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_the_size_limit_counts_utf8_bytes_and_attributes_as_sqs_does(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(queue_attributes={"MaximumMessageSize": "1024"})
    korean = json.dumps({"MSG": "배" * 330}, ensure_ascii=False)  # 341 characters, 1001 bytes
    assert len(korean) < 1024 < len(korean.encode()) + 60  # + the apigw_request_id attribute
    assert post(emulator.invoke_url, korean, cafile=emulator.ca_pem).status == 500
    small = json.dumps({"MSG": "배" * 100}, ensure_ascii=False)
    assert post(emulator.invoke_url, small, cafile=emulator.ca_pem).status == 200
    assert [m["Body"] for m in receive_all(moto, queue)] == [small]


@pytest.mark.e2e
def test_a_body_over_10_mb_is_413_before_any_integration(stage: StageFactory) -> None:
    emulator, _ = stage()
    response = post(emulator.invoke_url, b"x" * (10 * 1024 * 1024 + 1), cafile=emulator.ca_pem)
    assert response.status == 413
    assert json.loads(response.body) == {"message": "Request Too Long"}
    assert emulator.executions[0].integration_request is None


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path", ["/dev/callback", "/prod/other", "/prod", "/", "/callback"], ids=str
)
def test_wrong_stage_or_resource_is_403_missing_authentication_token(
    stage: StageFactory, path: str
) -> None:
    emulator, _ = stage()
    url = emulator.url.rsplit("/", 1)[0] + path
    response = post(url, TRICKY, cafile=emulator.ca_pem)
    assert response.status == 403
    assert response.body == b'{"message":"Missing Authentication Token"}'
    assert response.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"


@pytest.mark.e2e
def test_a_method_the_resource_does_not_have_is_also_missing_authentication_token(
    stage: StageFactory,
) -> None:
    emulator, _ = stage()
    response = request("GET", emulator.invoke_url, cafile=emulator.ca_pem)
    assert response.status == 403
    assert json.loads(response.body) == {"message": "Missing Authentication Token"}


@pytest.mark.e2e
def test_a_content_type_without_template_is_415_with_passthrough_never(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage()
    response = post(
        emulator.invoke_url, "a=1", {"Content-Type": "text/plain"}, cafile=emulator.ca_pem
    )
    assert response.status == 415
    assert json.loads(response.body) == {"message": "Unsupported Media Type"}
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_when_no_templates_also_refuses_a_content_type_without_template(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(passthrough_behavior="WHEN_NO_TEMPLATES")
    response = post(
        emulator.invoke_url, "a=1", {"Content-Type": "text/plain"}, cafile=emulator.ca_pem
    )
    assert (response.status, json.loads(response.body)) == (
        415,
        {"message": "Unsupported Media Type"},
    )
    assert emulator.executions[0].integration_request is None
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_no_sni_handshake_is_refused(stage: StageFactory) -> None:
    emulator, _ = stage()
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        post(emulator.invoke_url, TRICKY, cafile=emulator.ca_pem, sni=False)
    deadline = time.monotonic() + 5
    while not emulator.tls_failures and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emulator.tls_failures == ["handshake refused: the client sent no server name (SNI)"]
    assert emulator.executions == []


@pytest.mark.e2e
def test_no_sni_is_accepted_when_not_required(stage: StageFactory) -> None:
    emulator, _ = stage(require_sni=False)
    # without SNI the server presents the stage host's certificate: verification still passes
    with socket.create_connection(("127.0.0.1", emulator.port)) as raw:
        context = ssl.create_default_context(cafile=str(emulator.ca_pem))
        context.check_hostname = False
        with context.wrap_socket(raw) as tls:
            assert tls.getpeercert() is not None


@pytest.mark.e2e
def test_the_certificate_verifies_for_the_stage_host_only(stage: StageFactory) -> None:
    emulator, _ = stage()
    context = ssl.create_default_context(cafile=str(emulator.ca_pem))
    with (
        socket.create_connection(("127.0.0.1", emulator.port)) as raw,
        context.wrap_socket(raw, server_hostname=emulator.config.stage_host) as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    other = "other.execute-api.ap-northeast-2.amazonaws.com"
    with (
        socket.create_connection(("127.0.0.1", emulator.port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname=other)


@pytest.mark.e2e
def test_custom_domain_with_base_path_mapping_delivers(
    stage: StageFactory, moto: MotoServer
) -> None:
    domains = (CustomDomain("hooks.example.com", "v1"), CustomDomain("root.example.com", ""))
    emulator, queue = stage(custom_domains=domains)
    assert (
        post(emulator.domain_url("hooks.example.com"), '{"d":1}', cafile=emulator.ca_pem).status
        == 200
    )
    assert (
        post(emulator.domain_url("root.example.com"), '{"d":2}', cafile=emulator.ca_pem).status
        == 200
    )
    assert {m["Body"] for m in receive_all(moto, queue)} == {'{"d":1}', '{"d":2}'}
    assert emulator.domain_url("hooks.example.com").endswith("/v1/callback")


@pytest.mark.e2e
def test_custom_domain_path_no_mapping_matches_is_403_forbidden(stage: StageFactory) -> None:
    domains = (CustomDomain("hooks.example.com", "v1"), CustomDomain("bare.example.com", None))
    emulator, _ = stage(custom_domains=domains)
    for url in (
        f"https://hooks.example.com:{emulator.port}/v2/callback",
        f"https://bare.example.com:{emulator.port}/callback",
    ):
        response = post(url, "{}", cafile=emulator.ca_pem)
        assert (response.status, json.loads(response.body)) == (403, {"message": "Forbidden"})


@pytest.mark.e2e
def test_custom_domain_wrong_resource_under_a_mapping_is_missing_authentication_token(
    stage: StageFactory,
) -> None:
    # AWS's example: the stage URL's path (/STAGE/RESOURCE) used on a root-mapped domain
    domains = (CustomDomain("hooks.example.com", "v1"), CustomDomain("root.example.com", ""))
    emulator, _ = stage(custom_domains=domains)
    for url in (
        f"https://hooks.example.com:{emulator.port}/v1/prod/callback",
        f"https://root.example.com:{emulator.port}/prod/callback",
    ):
        response = post(url, "{}", cafile=emulator.ca_pem)
        assert (response.status, json.loads(response.body)) == (
            403,
            {"message": "Missing Authentication Token"},
        )


@pytest.mark.e2e
def test_a_host_header_the_api_does_not_serve_is_forbidden(stage: StageFactory) -> None:
    # e.g. a mirror that inherits `proxy_set_header Host $host` sends the vendor-facing host
    emulator, _ = stage()
    response = post(
        emulator.invoke_url, "{}", {"Host": "callbacks.shop.example"}, cafile=emulator.ca_pem
    )
    assert (response.status, json.loads(response.body)) == (403, {"message": "Forbidden"})


@pytest.mark.e2e
def test_expired_and_wrong_name_certificates_can_be_served_for_probes(stage: StageFactory) -> None:
    now = datetime.now(UTC)
    overrides = (
        (
            "hooks.example.com",
            CertSpec(("hooks.example.com",), now - timedelta(days=60), now - timedelta(days=1)),
        ),
        (
            "soon.example.com",
            CertSpec(("soon.example.com",), now - timedelta(days=60), now + timedelta(days=10)),
        ),
        ("wrong.example.com", CertSpec(("other.example.com",))),
    )
    domains = tuple(CustomDomain(name, "") for name, _ in overrides)
    emulator, _ = stage(custom_domains=domains, cert_overrides=overrides)
    context = ssl.create_default_context(cafile=str(emulator.ca_pem))

    def handshake(name: str) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", emulator.port))
        return context.wrap_socket(raw, server_hostname=name)

    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        handshake("hooks.example.com")
    with pytest.raises(ssl.SSLCertVerificationError, match=r"match|mismatch"):
        handshake("wrong.example.com")
    with handshake("soon.example.com") as tls:
        not_after = ssl.cert_time_to_seconds(tls.getpeercert()["notAfter"])  # type: ignore[index,arg-type]
        assert 9 * 86400 < not_after - time.time() < 11 * 86400


@pytest.mark.e2e
def test_fifo_queue_gets_group_and_dedup_ids_from_the_callback(
    stage: StageFactory, moto: MotoServer
) -> None:
    options = TemplateOptions(
        fifo=True, fifo_group_id_path="$.PHONE", fifo_dedup_id_path="$.CMSGID"
    )
    emulator, queue = stage(template=options, queue_name=f"fifo-{time.time_ns()}.fifo")
    body = '{"PHONE":"01012345678","CMSGID":"k-1"}'
    assert post(emulator.invoke_url, body, cafile=emulator.ca_pem).status == 200
    assert post(emulator.invoke_url, body, cafile=emulator.ca_pem).status == 200  # a vendor retry
    messages = receive_all(moto, queue)
    assert [m["Body"] for m in messages] == [body]  # deduplicated on CMSGID
    assert messages[0]["Attributes"]["MessageGroupId"] == "01012345678"
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == "k-1"


@pytest.mark.e2e
def test_a_fifo_template_refuses_a_body_that_is_not_json_with_400_as_aws_does(
    stage: StageFactory, moto: MotoServer
) -> None:
    options = TemplateOptions(fifo=True, fifo_group_id_path="$.PHONE")
    emulator, queue = stage(template=options, queue_name=f"fifo-{time.time_ns()}.fifo")
    response = post(emulator.invoke_url, "PHONE=010&RESULT=7000", cafile=emulator.ca_pem)
    assert response.status == 400
    assert json.loads(response.body)["message"].startswith(
        "Could not parse request body into json: Could not parse payload into json"
    )
    assert emulator.executions[0].integration_request is None
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_a_fifo_group_id_sqs_does_not_allow_is_refused_as_aws_does(
    stage: StageFactory, moto: MotoServer
) -> None:
    # SQS takes 1-128 ASCII letters, digits and punctuation as a group id; moto takes anything
    options = TemplateOptions(fifo=True, fifo_group_id_path="$.NAME")
    emulator, queue = stage(template=options, queue_name=f"fifo-{time.time_ns()}.fifo")
    response = post(emulator.invoke_url, '{"NAME":"홍 길동"}', cafile=emulator.ca_pem)
    assert response.status == 500
    [execution] = emulator.executions
    assert execution.integration_status == 400
    error = json.loads(execution.integration_response or "")["Error"]
    assert error["Code"] == "InvalidParameterValue"
    assert "MessageGroupId" in error["Message"]
    assert receive_all(moto, queue) == []


@pytest.mark.e2e
def test_a_form_encoded_vendor_arrives_byte_for_byte_when_its_type_has_the_template(
    stage: StageFactory, moto: MotoServer
) -> None:
    form_type = "application/x-www-form-urlencoded"
    emulator, queue = stage(request_content_types=("application/json", form_type))
    body = "MSGID=1&USERDATA=50%25+off+%26+%EB%B0%B0%EC%86%A1&NOTE=a=b%0D%0A"
    headers = {"Content-Type": f"{form_type}; charset=UTF-8"}
    response = post(emulator.invoke_url, body, headers, cafile=emulator.ca_pem)
    assert response.status == 200
    assert [m["Body"] for m in receive_all(moto, queue)] == [body]


@pytest.mark.e2e
def test_sqs_that_does_not_answer_in_time_is_504_endpoint_request_timed_out(
    stage: StageFactory,
) -> None:
    with socket.socket() as silent:  # accepts the connection and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        emulator, _ = stage(sqs_endpoint=endpoint, integration_timeout=0.3)
        response = post(emulator.invoke_url, "{}", cafile=emulator.ca_pem)
    assert (response.status, json.loads(response.body)) == (
        504,
        {"message": "Endpoint request timed out"},
    )
    assert "timeout" in (emulator.executions[0].error or "")


@pytest.mark.e2e
def test_a_standard_template_on_a_fifo_queue_is_refused_by_sqs(stage: StageFactory) -> None:
    emulator, _ = stage(queue_name=f"fifo-{time.time_ns()}.fifo")
    response = post(emulator.invoke_url, "{}", cafile=emulator.ca_pem)
    assert response.status == 500
    assert emulator.executions[0].integration_status == 400


@pytest.mark.e2e
def test_sqs_unreachable_is_500_internal_server_error(stage: StageFactory) -> None:
    emulator, _ = stage(sqs_endpoint="http://127.0.0.1:9")
    response = post(emulator.invoke_url, "{}", cafile=emulator.ca_pem)
    assert (response.status, json.loads(response.body)) == (
        500,
        {"message": "Internal server error"},
    )
    assert "configuration error" in (emulator.executions[0].error or "")


@pytest.mark.e2e
def test_a_broken_template_file_is_500_internal_server_error(stage: StageFactory) -> None:
    emulator, _ = stage(template_text="Action=SendMessage&MessageBody=$input.json('no-dollar')")
    response = post(emulator.invoke_url, "{}", cafile=emulator.ca_pem)
    assert response.status == 500
    assert "mapping template failed" in (emulator.executions[0].error or "")


def test_stage_config_names_the_stage_host() -> None:
    config = StageConfig(
        sqs_endpoint="http://x", queue_url="http://x/1/q", api_id="zz9", region="us-east-1"
    )
    assert config.stage_host == "zz9.execute-api.us-east-1.amazonaws.com"


MODEL = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    "properties": {"CMSGID": {"type": "string"}, "RESULT": {"type": "string"}},
    "required": ["CMSGID", "RESULT"],
}


@pytest.mark.e2e
def test_the_request_validator_rejects_what_the_model_does_not_allow(
    stage: StageFactory, moto: MotoServer
) -> None:
    emulator, queue = stage(request_model=MODEL)
    ok = post(
        emulator.invoke_url, '{"CMSGID":"c1","RESULT":"4100","NEW":"x"}', cafile=emulator.ca_pem
    )
    assert ok.status == 200
    missing = post(emulator.invoke_url, '{"CMSGID":"c2"}', cafile=emulator.ca_pem)
    assert (missing.status, json.loads(missing.body)) == (400, {"message": "Invalid request body"})
    not_json = post(emulator.invoke_url, "CMSGID=c3", cafile=emulator.ca_pem)
    assert not_json.status == 400
    no_type = request(
        "POST", emulator.invoke_url, '{"CMSGID":"c4","RESULT":"1"}', cafile=emulator.ca_pem
    )
    assert (no_type.status, json.loads(no_type.body)) == (
        400,
        {"message": "Missing required request parameters: [Content-Type]"},
    )
    assert [m["Body"] for m in receive_all(moto, queue)] == [
        '{"CMSGID":"c1","RESULT":"4100","NEW":"x"}'
    ]


@pytest.mark.e2e
def test_a_chunked_body_is_read_whole(stage: StageFactory, moto: MotoServer) -> None:
    emulator, queue = stage()
    body = TRICKY.encode("utf-8")
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
    )
    host = emulator.config.stage_host
    head = (
        f"POST /prod/callback HTTP/1.1\r\nHost: {host}:{emulator.port}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    context = ssl.create_default_context(cafile=str(emulator.ca_pem))
    with (
        socket.create_connection(("127.0.0.1", emulator.port)) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(head + chunks + b"0\r\n\r\n")
        reply = b""
        while chunk := tls.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert [m["Body"] for m in receive_all(moto, queue)] == [TRICKY]
