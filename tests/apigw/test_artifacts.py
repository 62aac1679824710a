"""`hookshift apigw render`: AWS artifacts from the emulator's templates, checked by real tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import pytest
from cfnlint.api import lint
from openapi_spec_validator import validate as validate_openapi

from hookshift.apigw.artifacts import (
    ApiSpec,
    cloudformation,
    infer_schema,
    load_samples,
    openapi,
    terraform,
)
from hookshift.apigw.client import post
from hookshift.apigw.integration import TemplateOptions, integration_responses, mapping_template
from hookshift.apigw.vtl import MethodRequest, render
from hookshift.errors import InputError
from hookshift.rehearsal.sqs import MotoServer
from tests.apigw.conftest import StageFactory, receive_all

SAMPLES = [
    {"DEVICE": "SMS", "CMSGID": "c1", "PHONE": "010", "RESULT": "4100", "WAPINFO": "SKT"},
    {"DEVICE": "AT", "CMSGID": "c2", "PHONE": "011", "RESULT": "7000", "USERDATA": "a&b",
     "KAORES": "3018"},
]  # fmt: skip
CERT = "arn:aws:acm:ap-northeast-2:111122223333:certificate/0a1b2c3d-1111-2222-3333-444455556666"
KEY = "arn:aws:kms:ap-northeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _full_spec(**overrides: Any) -> ApiSpec:
    values: dict[str, Any] = {
        "queue_name": "kakao-at-result",
        "schema": infer_schema(SAMPLES),
        "domain": "hooks.example.com",
        "certificate_arn": CERT,
        "base_path": "v1",
        "hosted_zone_id": "Z0123456789ABC",
        "kms_key_arn": KEY,
        "account_id": "111122223333",
        "region": "ap-northeast-2",
        "resource_path": "/bizppurio/callback",
    }
    values.update(overrides)
    return ApiSpec(**values)


def _hcl_text(value: str) -> str:
    """python-hcl2 keeps string literals quoted and escaped: undo that."""
    decoded: str = json.loads(value)
    return decoded.replace("$${", "${").replace("%%{", "%{")


def _resources(document: dict[str, Any], kind: str) -> dict[str, Any]:
    found = {}
    for entry in document.get("resource", []):
        for resource_type, named in entry.items():
            if resource_type.strip('"') == kind:
                for name, body in named.items():
                    found[name.strip('"')] = body
    return found


# --- schema ----------------------------------------------------------------------------------


def test_the_inferred_model_is_draft4_and_accepts_every_sample() -> None:
    schema = _full_spec().model_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(schema)
    for sample in SAMPLES:
        jsonschema.Draft4Validator(schema).validate(sample)
    assert schema["required"] == ["DEVICE", "CMSGID", "PHONE", "RESULT"]  # in every sample
    assert set(schema["properties"]) == {*SAMPLES[0], *SAMPLES[1]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"DEVICE": "SMS"})


def test_schema_inference_handles_nesting_and_mixed_types() -> None:
    schema = infer_schema([{"a": [1, 2.5], "b": {"c": True}, "d": None}, {"a": [], "d": "x"}])
    assert schema["properties"]["a"] == {"type": "array", "items": {"type": "number"}}
    assert schema["properties"]["b"]["properties"]["c"] == {"type": "boolean"}
    assert schema["properties"]["d"] == {"type": ["null", "string"]}
    assert schema["required"] == ["a", "d"]


def test_samples_load_from_json_or_json_lines_and_a_bad_line_is_located() -> None:
    assert load_samples('{"a": 1}', "s.json") == [{"a": 1}]
    assert load_samples('{"a": 1}\n\n{"a": 2}\n', "s.jsonl") == [{"a": 1}, {"a": 2}]
    with pytest.raises(InputError, match=r"s\.jsonl:2"):
        load_samples('{"a": 1}\n{"a": \n', "s.jsonl")


# --- CloudFormation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        _full_spec(),
        _full_spec(domain=None, certificate_arn=None, hosted_zone_id=None, kms_key_arn=None),
        _full_spec(
            queue_name="results.fifo",
            template=TemplateOptions(fifo=True, fifo_group_id_path="$.PHONE"),
            response_mode="default",
            base_path="",
        ),
    ],
    ids=["full", "minimal", "fifo-default-responses"],
)
def test_cloudformation_passes_cfn_lint(spec: ApiSpec) -> None:
    template = json.dumps(cloudformation(spec))
    matches = lint(template, regions=["ap-northeast-2"])
    assert [str(m) for m in matches] == []


def test_cloudformation_integration_is_the_emulators() -> None:
    spec = _full_spec()
    resources = cloudformation(spec)["Resources"]
    method = resources["CallbackPost"]["Properties"]
    assert method["HttpMethod"] == "POST"
    assert method["RequestValidatorId"] == {"Ref": "CallbackValidator"}
    assert method["RequestParameters"] == {"method.request.header.Content-Type": True}
    sqs = method["Integration"]
    assert sqs["Type"] == "AWS"
    assert sqs["IntegrationHttpMethod"] == "POST"
    assert sqs["Uri"]["Fn::Sub"].endswith(":sqs:path/${AWS::AccountId}/kakao-at-result")
    assert sqs["RequestParameters"] == {
        "integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"
    }
    assert sqs["RequestTemplates"] == {"application/json": mapping_template()}
    assert sqs["PassthroughBehavior"] == "NEVER"
    rendered = [
        (r.get("SelectionPattern"), int(r["StatusCode"])) for r in sqs["IntegrationResponses"]
    ]
    assert rendered == [
        (r.selection_pattern, r.status) for r in integration_responses("recommended")
    ]
    assert {r["StatusCode"] for r in method["MethodResponses"]} == {"200", "500", "503"}


@pytest.mark.parametrize("mode", ["default", "recommended"])
def test_the_success_response_body_is_empty_in_every_artifact(mode: str) -> None:
    # API Gateway stores an empty response template as none and then passes SQS's answer
    # (SendMessageResponse) through as the body: the empty body needs a template that renders
    # nothing.
    spec = _full_spec(response_mode=mode)
    cfn = cloudformation(spec)["Resources"]["CallbackPost"]["Properties"]["Integration"]
    api = openapi(spec)["paths"][spec.path]["post"]["x-amazon-apigateway-integration"]
    tf = _resources(hcl2.loads(terraform(spec)), "aws_api_gateway_integration_response")
    found = {
        "cloudformation": next(
            r["ResponseTemplates"]["application/json"]
            for r in cfn["IntegrationResponses"]
            if r["StatusCode"] == "200"
        ),
        "openapi": api["responses"]["default"]["responseTemplates"]["application/json"],
        "terraform": _hcl_text(tf["sqs_200"]["response_templates"]['"application/json"']),
    }
    for fmt, template in found.items():
        assert template.strip(), f"{fmt}: an empty template passes SQS's answer through"
        context = {"requestId": "r-1"}
        answer = '{"SendMessageResponse":{"SendMessageResult":{"MessageId":"m-1"}}}'
        assert render(template, MethodRequest(body=answer), context) == "", fmt


def test_a_changed_integration_gets_a_new_deployment() -> None:
    def deployments(spec: ApiSpec) -> set[str]:
        resources = cloudformation(spec)["Resources"]
        return {k for k, v in resources.items() if v["Type"] == "AWS::ApiGateway::Deployment"}

    recommended = deployments(_full_spec())
    assert recommended == deployments(_full_spec())  # stable for the same input
    assert recommended != deployments(_full_spec(response_mode="default"))
    stage = cloudformation(_full_spec())["Resources"]["CallbackStage"]["Properties"]
    assert stage["DeploymentId"] == {"Ref": next(iter(recommended))}


def test_the_role_may_only_send_to_that_queue_and_use_its_key() -> None:
    resources = cloudformation(_full_spec())["Resources"]
    [policy] = resources["SqsSendRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    assert statements[0]["Action"] == "sqs:SendMessage"
    assert statements[0]["Resource"]["Fn::Sub"].endswith(":kakao-at-result")
    assert statements[1]["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert statements[1]["Resource"] == KEY
    trust = resources["SqsSendRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    queue_policy = resources["CallbackQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert queue_policy["Principal"] == {"AWS": {"Fn::GetAtt": ["SqsSendRole", "Arn"]}}
    assert queue_policy["Action"] == "sqs:SendMessage"
    without_key = cloudformation(_full_spec(kms_key_arn=None))["Resources"]["SqsSendRole"]
    assert len(without_key["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]) == 1


def test_the_custom_domain_is_regional_with_mapping_and_alias() -> None:
    resources = cloudformation(_full_spec())["Resources"]
    domain = resources["CallbackDomain"]["Properties"]
    assert domain["RegionalCertificateArn"] == CERT
    assert domain["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    mapping = resources["CallbackBasePathMapping"]["Properties"]
    assert mapping["BasePath"] == "v1" and mapping["Stage"] == {"Ref": "CallbackStage"}
    alias = resources["CallbackDomainAlias"]["Properties"]["AliasTarget"]
    assert alias["DNSName"] == {"Fn::GetAtt": ["CallbackDomain", "RegionalDomainName"]}
    outputs = cloudformation(_full_spec())["Outputs"]
    assert (
        outputs["CustomDomainCallbackUrl"]["Value"]
        == "https://hooks.example.com/v1/bizppurio/callback"
    )


# --- OpenAPI -----------------------------------------------------------------------------------


def test_openapi_passes_the_spec_validator_and_carries_the_integration() -> None:
    document = openapi(_full_spec())
    validate_openapi(document)
    operation = document["paths"]["/bizppurio/callback"]["post"]
    sqs = operation["x-amazon-apigateway-integration"]
    assert sqs["uri"] == "arn:aws:apigateway:ap-northeast-2:sqs:path/111122223333/kakao-at-result"
    assert sqs["credentials"] == "arn:aws:iam::111122223333:role/hookshift-callbacks-sqs-send"
    assert sqs["requestTemplates"]["application/json"] == mapping_template()
    assert sqs["passthroughBehavior"] == "never"
    assert set(sqs["responses"]) == {"default", "4\\d{2}", "5\\d{2}"}
    assert document["x-amazon-apigateway-request-validators"]["body-and-headers"] == {
        "validateRequestBody": True,
        "validateRequestParameters": True,
    }


def test_openapi_writes_null_and_mixed_fields_as_openapi_3_0_can() -> None:
    # OpenAPI 3.0 has no "null" type and no list of types: such a field takes any value there
    samples = [{"A": None, "B": 1, "C": {"D": None}}, {"A": "x", "B": "y", "C": {"D": 2}}]
    spec = _full_spec(schema=infer_schema(samples))
    document = openapi(spec)
    validate_openapi(document)
    callback = document["components"]["schemas"]["Callback"]
    assert callback["properties"]["A"] == {} and callback["properties"]["B"] == {}
    assert callback["properties"]["C"]["properties"]["D"] == {}
    assert callback["required"] == ["A", "B", "C"]
    # CloudFormation keeps the exact draft 4 model
    model = cloudformation(spec)["Resources"]["CallbackModel"]["Properties"]["Schema"]
    assert model["properties"]["A"] == {"type": ["null", "string"]}


def test_openapi_needs_account_and_region() -> None:
    with pytest.raises(InputError, match="account id and region"):
        openapi(_full_spec(account_id=None))


# --- Terraform ---------------------------------------------------------------------------------


def test_terraform_parses_with_python_hcl2_and_keeps_the_template_literal() -> None:
    spec = _full_spec(
        queue_name="results.fifo",
        template=TemplateOptions(
            fifo=True, fifo_group_id_path="$.PHONE", fifo_dedup_id_path="$.CMSGID"
        ),
    )
    document = hcl2.loads(terraform(spec))
    [sqs] = _resources(document, "aws_api_gateway_integration").values()
    template = _hcl_text(sqs["request_templates"]['"application/json"'])
    assert template == mapping_template(spec.template)
    assert "${n}" in template  # VTL's formal reference, not a Terraform interpolation
    assert _hcl_text(sqs["passthrough_behavior"]) == "NEVER"
    assert set(_resources(document, "aws_api_gateway_integration_response")) == {
        "sqs_200", "sqs_500", "sqs_503",
    }  # fmt: skip
    kinds = {name.strip('"') for entry in document["resource"] for name in entry}
    assert {
        "aws_iam_role_policy",
        "aws_sqs_queue_policy",
        "aws_api_gateway_domain_name",
        "aws_api_gateway_base_path_mapping",
        "aws_route53_record",
        "aws_api_gateway_request_validator",
        "aws_api_gateway_model",
    } <= kinds


@pytest.mark.e2e
def test_terraform_is_accepted_by_terraform_fmt_when_installed(tmp_path: Path) -> None:
    binary = shutil.which("terraform") or shutil.which("tofu")
    if binary is None:
        pytest.skip("terraform/tofu not installed (python-hcl2 parsing is checked above)")
    result = subprocess.run(
        [binary, "fmt", "-"], input=terraform(_full_spec()), capture_output=True, text=True,
        timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- the same template, run by the emulator ----------------------------------------------------


@pytest.mark.e2e
def test_the_deployed_template_delivers_byte_for_byte_in_the_emulator(
    stage: StageFactory, moto: MotoServer
) -> None:
    deployed = cloudformation(_full_spec())["Resources"]["CallbackPost"]["Properties"]
    template = deployed["Integration"]["RequestTemplates"]["application/json"]
    emulator, queue = stage(template_text=template)
    body = json.dumps(SAMPLES[1] | {"USERDATA": "50%+off & 배송=완료"}, ensure_ascii=False)
    assert (
        post(emulator.invoke_url, body, {"X-Request-Id": "n1"}, cafile=emulator.ca_pem).status
        == 200
    )
    [message] = receive_all(moto, queue)
    assert message["Body"] == body
    assert message["MessageAttributes"]["nginx_request_id"]["StringValue"] == "n1"


# --- input checks and the CLI ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"queue_name": "bad name"}, "not an SQS queue name"),
        ({"queue_name": "q.fifo"}, "FIFO"),
        ({"certificate_arn": None}, "ACM certificate"),
        ({"kms_key_arn": "alias/aws/sqs"}, "KMS key ARN"),
        ({"resource_path": "/{proxy+}"}, "not supported"),
    ],
)
def test_bad_specs_are_input_errors(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _full_spec(**overrides)


def _render_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookshift", "apigw", "render", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.mark.e2e
def test_render_cli_writes_a_lint_clean_file_from_a_sample(tmp_path: Path) -> None:
    sample = tmp_path / "callbacks.jsonl"
    sample.write_text("\n".join(json.dumps(s) for s in SAMPLES) + "\n", encoding="utf-8")
    out = tmp_path / "stack.json"
    result = _render_cli(
        "--format", "cloudformation", "--queue-name", "kakao-at-result", "--sample", str(sample),
        "--domain", "hooks.example.com", "--certificate-arn", CERT, "-o", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert lint(out.read_text(encoding="utf-8"), regions=["ap-northeast-2"]) == []
    model = json.loads(out.read_text())["Resources"]["CallbackModel"]["Properties"]["Schema"]
    assert model["required"] == ["DEVICE", "CMSGID", "PHONE", "RESULT"]


@pytest.mark.e2e
def test_render_cli_reports_a_bad_sample_line_and_writes_nothing(tmp_path: Path) -> None:
    sample = tmp_path / "bad.jsonl"
    sample.write_text('{"a": 1}\nnot json\n', encoding="utf-8")
    out = tmp_path / "stack.json"
    result = _render_cli(
        "--format", "terraform", "--queue-name", "q", "--sample", str(sample), "-o", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{sample}:2" in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists()
