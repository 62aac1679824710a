"""The AWS side as code: OpenAPI, CloudFormation and Terraform for the API Gateway -> SQS path.

Everything that decides whether a callback reaches the queue comes from ``apigw.integration``
(the mapping template, the integration Content-Type, passthrough, integration responses), the
same source the stage emulator runs, so what was rehearsed is what gets deployed. Around it:
the REST API and its resource path, a POST method with a request validator and a JSON Schema
draft 4 model inferred from sample callbacks, the execution role with ``sqs:SendMessage`` on
that queue only (plus ``kms:GenerateDataKey``/``kms:Decrypt`` when the queue uses a
customer-managed key), the queue's access policy, the regional custom domain with its ACM
certificate and base path mapping, and the DNS alias.

Building the documents is pure (dicts in, text out); the CLI writes them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hookshift.apigw import integration
from hookshift.apigw.integration import IntegrationResponse, ResponseMode, TemplateOptions
from hookshift.errors import InputError

Format = Literal["openapi", "cloudformation", "terraform"]
FORMATS: tuple[Format, ...] = ("openapi", "cloudformation", "terraform")
DRAFT4 = "http://json-schema.org/draft-04/schema#"
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_STAGE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")
_BASE_PATH = re.compile(r"^[A-Za-z0-9$_.+!*'()-]+$")
ROLE_NAME_RULE = "1-64 of A-Z a-z 0-9 _+=,.@-"
ROLE_SUFFIX = "-sqs-send"  # the execution role's name: API name + this, unless given
#: Deeper than any callback; the JSON decoder and the schema inference recurse per level.
MAX_SAMPLE_DEPTH = 64
SAMPLE_FIX = "give one JSON callback (an object), or one per line (JSON Lines)"


def infer_schema(samples: Sequence[Any]) -> dict[str, Any]:
    """A JSON Schema draft 4 that every sample satisfies, as tight as the samples allow.

    Object properties are the union over samples; ``required`` holds the keys present in all
    of them. Extra properties stay allowed: a vendor that adds a field must not have its
    callbacks rejected with 400 (and lost) by the request validator.
    """
    if not samples:
        return {}
    types = {_json_type(s) for s in samples}
    if types == {"integer", "number"}:
        types = {"number"}
    if len(types) > 1:
        return {"type": sorted(types)}
    kind = types.pop()
    schema: dict[str, Any] = {"type": kind}
    if kind == "object":
        keys: dict[str, list[Any]] = {}
        for sample in samples:
            for key, value in sample.items():
                keys.setdefault(key, []).append(value)
        schema["properties"] = {key: infer_schema(values) for key, values in keys.items()}
        required = [k for k in keys if all(k in s for s in samples)]
        if required:
            schema["required"] = required
    elif kind == "array":
        items = [item for sample in samples for item in sample]
        if items:
            schema["items"] = infer_schema(items)
    return schema


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _depth(value: Any) -> int:
    """How deeply `value` nests objects and arrays (a scalar is 0), without recursing."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, level = todo.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in children)
    return deepest


def _sample(text: str, where: str) -> Any:
    """One sample callback: a JSON object nested at most `MAX_SAMPLE_DEPTH` levels (text that
    is no JSON raises the decoder's ValueError)."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
        depth = MAX_SAMPLE_DEPTH + 1
    else:
        depth = _depth(value)
    if depth > MAX_SAMPLE_DEPTH:
        raise InputError(
            f"nested deeper than {MAX_SAMPLE_DEPTH} levels: not a callback", where=where,
            fix=SAMPLE_FIX,
        )  # fmt: skip
    if not isinstance(value, dict):
        raise InputError(
            f"a sample callback is a JSON object, not {_article(_json_type(value))}",
            where=where,
            fix=SAMPLE_FIX,
        )
    return value


def _article(kind: str) -> str:
    return {"array": "an array", "integer": "a number", "object": "an object"}.get(
        kind, f"a {kind}"
    )


def load_samples(text: str, where: str) -> list[Any]:
    """One JSON document, or JSON Lines (one callback per line); each a JSON object.

    A vendor's callback is an object; anything else (an array, a bare string) or anything
    nested deeper than `MAX_SAMPLE_DEPTH` is refused rather than turned into a model that
    rejects every real callback.
    """
    try:
        return [_sample(text, where)]
    except ValueError:  # not one JSON document: JSON Lines, then
        pass
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.append(_sample(line, f"{where}:{number}"))
        except ValueError as exc:
            raise InputError(
                f"not JSON: {exc.args[0]}",
                where=f"{where}:{number}",
                fix="give one JSON callback, or one per line (JSON Lines)",
            ) from None
    if not samples:
        raise InputError(
            "no sample callback in the file",
            where=where,
            fix="give one JSON callback, or one per line (JSON Lines)",
        )
    return samples


@dataclass(frozen=True)
class ApiSpec:
    """What to build. Account and region are needed only for OpenAPI (CloudFormation and
    Terraform take them from the deploying account).

    Names are checked as AWS checks them, so a mistake is told here and not by a failed stack:

    - the API name: required (not empty), printable;
    - the execution role (``role_name``, else the API name + ``-sqs-send``): IAM's RoleName,
      1-64 of ``A-Z a-z 0-9 _+=,.@-`` (no ``/``: a path is another field);
    - the base path: one segment of ``A-Z a-z 0-9 $-_.+!*'()`` (a BasePathMapping; slashes
      around it are dropped, and empty maps the domain's root);
    - the certificate: an ACM ARN, ``arn:aws:acm:REGION:ACCOUNT:certificate/ID``.
    """

    queue_name: str
    api_name: str = "hookshift-callbacks"
    stage: str = "prod"
    resource_path: str = "/callback"
    template: TemplateOptions = field(default_factory=TemplateOptions)
    response_mode: ResponseMode = "recommended"
    schema: Mapping[str, Any] | None = None
    kms_key_arn: str | None = None
    domain: str | None = None
    certificate_arn: str | None = None
    base_path: str = ""
    hosted_zone_id: str | None = None
    queue_policy: bool = True
    account_id: str | None = None
    region: str | None = None
    role_name: str | None = None

    def __post_init__(self) -> None:
        if not _QUEUE_NAME.match(self.queue_name):
            raise InputError(
                f"{self.queue_name!r} is not an SQS queue name",
                fix="1-80 of A-Z a-z 0-9 _ -, optionally ending in .fifo",
            )
        if self.template.fifo != self.fifo:
            kind = "FIFO" if self.fifo else "standard"
            raise InputError(
                f"queue {self.queue_name} is {kind} but the template "
                f"{'has no' if self.fifo else 'has'} FIFO ids",
                fix="FIFO queues end in .fifo and need --fifo (and --fifo-group-id-path)",
            )
        if not self.segments() or not self.resource_path.startswith("/"):
            raise InputError(
                f"resource path {self.resource_path!r} is not a path", fix="e.g. /callback"
            )
        if not _STAGE.match(self.stage):
            raise InputError(
                f"{self.stage!r} is not an API Gateway stage name",
                fix="1-128 of A-Z a-z 0-9 _ -, e.g. prod",
            )
        if self.account_id is not None and not _ACCOUNT_ID.match(self.account_id):
            raise InputError(f"{self.account_id!r} is not an AWS account id", fix="its 12 digits")
        if self.region is not None and not _REGION.match(self.region):
            raise InputError(f"{self.region!r} is not an AWS region", fix="e.g. ap-northeast-2")
        for segment in self.segments():
            if not _SEGMENT.match(segment):
                raise InputError(
                    f"resource path segment {segment!r} is not supported",
                    fix="use literal segments like /bizppurio/callback",
                )
        self._check_names()
        if self.domain is not None:
            if not _DOMAIN.match(self.domain):
                raise InputError(
                    f"{self.domain!r} is not a domain name", fix="e.g. hooks.example.com"
                )
            if self.certificate_arn is None:
                raise InputError(
                    "a custom domain needs its ACM certificate ARN (in the API's region)",
                    fix="--certificate-arn arn:aws:acm:REGION:ACCOUNT:certificate/ID",
                )
            if not _ACM_ARN.fullmatch(self.certificate_arn):
                raise InputError(
                    f"{self.certificate_arn!r} is not an ACM certificate ARN",
                    fix="--certificate-arn arn:aws:acm:REGION:ACCOUNT:certificate/ID (the "
                    "certificate's ARN in ACM, in the API's region)",
                )
        if self.kms_key_arn is not None and not _KMS_KEY_ARN.match(self.kms_key_arn):
            raise InputError(
                f"{self.kms_key_arn!r} is not a KMS key ARN",
                fix="arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (the queue's customer-managed key)",
            )

    def _check_names(self) -> None:
        """The API, role and base path names, by the rules in the class docstring."""
        if not self.api_name or not self.api_name.isprintable():
            raise InputError(
                f"{self.api_name!r} is not an API name (AWS requires one, printable)",
                fix="e.g. --api-name hookshift-callbacks",
            )
        if self.role_name is not None and not _ROLE_NAME.fullmatch(self.role_name):
            raise InputError(
                f"{self.role_name!r} is not an IAM role name",
                fix=f"--role-name of {ROLE_NAME_RULE}, e.g. hookshift-callbacks-sqs-send",
            )
        if not _ROLE_NAME.fullmatch(self.role):
            raise InputError(
                f"the execution role's name {self.role!r} (the API name + {ROLE_SUFFIX}) is not "
                "an IAM role name",
                fix=f"pass --role-name ({ROLE_NAME_RULE}), or an --api-name of those characters, "
                f"at most {64 - len(ROLE_SUFFIX)} long",
            )
        base = self.base_path.strip("/")
        if base and not _BASE_PATH.fullmatch(base):
            raise InputError(
                f"{self.base_path!r} is not a base path API Gateway maps",
                fix="one segment of A-Z a-z 0-9 $-_.+!*'(), e.g. --base-path v1 "
                "('' maps the domain's root)",
            )

    @property
    def fifo(self) -> bool:
        return self.queue_name.endswith(".fifo")

    def segments(self) -> list[str]:
        return [s for s in self.resource_path.strip("/").split("/") if s]

    @property
    def path(self) -> str:
        return "/" + "/".join(self.segments())

    @property
    def role(self) -> str:
        return self.role_name or f"{self.api_name}{ROLE_SUFFIX}"

    def mapping_template(self) -> str:
        return integration.mapping_template(self.template)

    def responses(self) -> tuple[IntegrationResponse, ...]:
        return integration.integration_responses(self.response_mode)

    def method_statuses(self) -> list[str]:
        return sorted({str(r.status) for r in self.responses()})

    def model_schema(self) -> dict[str, Any]:
        return self.model_schema_for(self.schema)

    @staticmethod
    def model_schema_for(schema: Mapping[str, Any] | None) -> dict[str, Any]:
        """The API Gateway model: a draft 4 schema (``{"type": "object"}`` without samples)."""
        return {"$schema": DRAFT4, "title": "Callback", **(schema or {"type": "object"})}


# ---------------------------------------------------------------------------------------------
# OpenAPI 3.0 with API Gateway extensions (import with `aws apigateway import-rest-api`)


def _openapi_integration_responses(spec: ApiSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for response in spec.responses():
        key = response.selection_pattern if response.selection_pattern is not None else "default"
        out[key] = {
            "statusCode": str(response.status),
            "responseTemplates": {integration.response_content_type(): response.template},
        }
    return out


def openapi_schema(schema: Any) -> Any:
    """A draft 4 model as an OpenAPI 3.0 Schema Object, which knows no ``null`` type and no
    list of types.

    Such a field (a sample had ``null``, or a string here and a number there) is left without a
    type rather than written as ``nullable``: whether an import into API Gateway keeps
    ``nullable`` is not documented, and a model that lost it would refuse with 400 every callback
    whose field is null. CloudFormation and Terraform keep the exact draft 4 model.
    """
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, list) or kind == "null":
        del out["type"]
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), Mapping):
            out[key] = {name: openapi_schema(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), Mapping):
            out[key] = openapi_schema(out[key])
    for key in ("items", "allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [openapi_schema(sub) for sub in out[key]]
    return out


def openapi(spec: ApiSpec) -> dict[str, Any]:
    if spec.account_id is None or spec.region is None:
        raise InputError(
            "OpenAPI needs the account id and region for the SQS path and the role ARN",
            fix="pass --account-id and --region",
        )
    content_types = integration.request_content_types()
    schema = openapi_schema(
        {k: v for k, v in spec.model_schema().items() if k not in {"$schema", "title"}}
    )
    responses = {
        status: {
            "description": "callback queued" if status == "200" else "callback not queued",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Empty"}}},
        }
        for status in spec.method_statuses()
    }
    operation = {
        "operationId": "postCallback",
        "parameters": [
            {"name": "Content-Type", "in": "header", "required": True, "schema": {"type": "string"}}
        ],
        "requestBody": {
            "required": True,
            "content": {
                ct: {"schema": {"$ref": "#/components/schemas/Callback"}} for ct in content_types
            },
        },
        "responses": responses,
        "x-amazon-apigateway-request-validator": "body-and-headers",
        "x-amazon-apigateway-integration": {
            "type": "aws",
            "httpMethod": integration.integration_method(),
            "uri": f"arn:aws:apigateway:{spec.region}:sqs:path/{spec.account_id}/{spec.queue_name}",
            "credentials": f"arn:aws:iam::{spec.account_id}:role/{spec.role}",
            "requestParameters": _content_type_parameter(),
            "requestTemplates": {ct: spec.mapping_template() for ct in content_types},
            "passthroughBehavior": integration.passthrough_behavior().lower(),
            "responses": _openapi_integration_responses(spec),
        },
    }
    return {
        "openapi": "3.0.1",
        "info": {
            "title": spec.api_name,
            "version": "1.0",
            "description": "Vendor callbacks -> SQS (generated by hookshift apigw render)",
        },
        "servers": [
            {
                "url": "https://{restApiId}.execute-api.{region}.amazonaws.com/{basePath}",
                "variables": {
                    "restApiId": {"default": "restApiId"},
                    "region": {"default": spec.region},
                    "basePath": {"default": spec.stage},
                },
            }
        ],
        "paths": {spec.path: {"post": operation}},
        "components": {
            "schemas": {"Callback": schema, "Empty": {"type": "object", "title": "Empty"}}
        },
        "x-amazon-apigateway-request-validators": {
            "body-and-headers": {"validateRequestBody": True, "validateRequestParameters": True}
        },
    }


# ---------------------------------------------------------------------------------------------
# CloudFormation


POINT_DNS_HERE = "Point the domain's CNAME/alias here (d-....execute-api.REGION.amazonaws.com)"


def _content_type_parameter() -> dict[str, str]:
    """The integration request's Content-Type, a static value (quoted, as API Gateway wants)."""
    return {
        "integration.request.header.Content-Type": f"'{integration.integration_content_type()}'"
    }


def _role_policy(spec: ApiSpec, queue_arn: Any, key_arn: Any) -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        {
            "Sid": "SendToTheCallbackQueue",
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
        }
    ]
    if spec.kms_key_arn is not None:
        statements.append(
            {
                "Sid": "EncryptWithTheQueueKey",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": key_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def cloudformation(spec: ApiSpec) -> dict[str, Any]:
    region_account = "${AWS::Region}:${AWS::AccountId}"
    queue_arn = {"Fn::Sub": f"arn:${{AWS::Partition}}:sqs:{region_account}:{spec.queue_name}"}
    queue_url = {
        "Fn::Sub": f"https://sqs.${{AWS::Region}}.${{AWS::URLSuffix}}/${{AWS::AccountId}}/{spec.queue_name}"
    }
    resources: dict[str, Any] = {}
    resources["CallbackApi"] = {
        "Type": "AWS::ApiGateway::RestApi",
        "Properties": {
            "Name": spec.api_name,
            "Description": "Vendor callbacks -> SQS (generated by hookshift apigw render)",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
        },
    }
    parent: Any = {"Fn::GetAtt": ["CallbackApi", "RootResourceId"]}
    resource_id = ""
    for index, segment in enumerate(spec.segments()):
        resource_id = (
            f"CallbackResource{index}" if index < len(spec.segments()) - 1 else "CallbackResource"
        )
        resources[resource_id] = {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": {"Ref": "CallbackApi"},
                "ParentId": parent,
                "PathPart": segment,
            },
        }
        parent = {"Ref": resource_id}
    resources["CallbackModel"] = {
        "Type": "AWS::ApiGateway::Model",
        "Properties": {
            "RestApiId": {"Ref": "CallbackApi"},
            "ContentType": "application/json",
            "Name": "Callback",
            "Schema": spec.model_schema(),
        },
    }
    resources["CallbackValidator"] = {
        "Type": "AWS::ApiGateway::RequestValidator",
        "Properties": {
            "RestApiId": {"Ref": "CallbackApi"},
            "Name": "body-and-headers",
            "ValidateRequestBody": True,
            "ValidateRequestParameters": True,
        },
    }
    key_arn = spec.kms_key_arn
    resources["SqsSendRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": spec.role,
            "Description": "API Gateway execution role: SendMessage to the callback queue only",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "apigateway.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "send-callbacks",
                    "PolicyDocument": _role_policy(spec, queue_arn, key_arn),
                }
            ],
        },
    }
    content_types = integration.request_content_types()
    sqs_path = f"${{AWS::Region}}:sqs:path/${{AWS::AccountId}}/{spec.queue_name}"
    resources["CallbackPost"] = {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": {"Ref": "CallbackApi"},
            "ResourceId": {"Ref": resource_id},
            "HttpMethod": "POST",
            "AuthorizationType": "NONE",
            "RequestValidatorId": {"Ref": "CallbackValidator"},
            "RequestModels": {ct: {"Ref": "CallbackModel"} for ct in content_types},
            "RequestParameters": {"method.request.header.Content-Type": True},
            "MethodResponses": [
                {"StatusCode": status, "ResponseModels": {"application/json": "Empty"}}
                for status in spec.method_statuses()
            ],
            "Integration": {
                "Type": "AWS",
                "IntegrationHttpMethod": integration.integration_method(),
                "Uri": {"Fn::Sub": f"arn:${{AWS::Partition}}:apigateway:{sqs_path}"},
                "Credentials": {"Fn::GetAtt": ["SqsSendRole", "Arn"]},
                "RequestParameters": _content_type_parameter(),
                "RequestTemplates": {ct: spec.mapping_template() for ct in content_types},
                "PassthroughBehavior": integration.passthrough_behavior(),
                "IntegrationResponses": [
                    {
                        "StatusCode": str(r.status),
                        **(
                            {"SelectionPattern": r.selection_pattern} if r.selection_pattern else {}
                        ),
                        "ResponseTemplates": {integration.response_content_type(): r.template},
                    }
                    for r in spec.responses()
                ],
            },
        },
    }
    # CloudFormation creates a Deployment once and never redeploys a changed method: naming it
    # after a hash of the method makes every change to the integration a new deployment.
    digest = hashlib.sha256(
        json.dumps(resources["CallbackPost"], sort_keys=True).encode("utf-8")
    ).hexdigest()[:10]
    deployment = f"CallbackDeployment{digest}"
    resources[deployment] = {
        "Type": "AWS::ApiGateway::Deployment",
        "DependsOn": ["CallbackPost"],
        "Properties": {"RestApiId": {"Ref": "CallbackApi"}},
    }
    resources["CallbackStage"] = {
        "Type": "AWS::ApiGateway::Stage",
        "Properties": {
            "RestApiId": {"Ref": "CallbackApi"},
            "DeploymentId": {"Ref": deployment},
            "StageName": spec.stage,
        },
    }
    if spec.queue_policy:
        resources["CallbackQueuePolicy"] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [queue_url],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "ApiGatewayExecutionRoleSends",
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Fn::GetAtt": ["SqsSendRole", "Arn"]}},
                            "Action": "sqs:SendMessage",
                            "Resource": queue_arn,
                        }
                    ],
                },
            },
        }
    outputs: dict[str, Any] = {
        "StageUrl": {
            "Description": "The stage URL (mirror target during the rehearsal stages)",
            "Value": {
                "Fn::Sub": f"https://${{CallbackApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{spec.stage}"
            },
        },
        "StageCallbackUrl": {
            "Value": {
                "Fn::Sub": f"https://${{CallbackApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{spec.stage}{spec.path}"
            },
        },
    }
    if spec.domain is not None:
        resources["CallbackDomain"] = {
            "Type": "AWS::ApiGateway::DomainName",
            "Properties": {
                "DomainName": spec.domain,
                "RegionalCertificateArn": spec.certificate_arn,
                "EndpointConfiguration": {"Types": ["REGIONAL"]},
                "SecurityPolicy": "TLS_1_2",
            },
        }
        mapping: dict[str, Any] = {
            "DomainName": {"Ref": "CallbackDomain"},
            "RestApiId": {"Ref": "CallbackApi"},
            "Stage": {"Ref": "CallbackStage"},
        }
        if spec.base_path:
            mapping["BasePath"] = spec.base_path.strip("/")
        resources["CallbackBasePathMapping"] = {
            "Type": "AWS::ApiGateway::BasePathMapping",
            "Properties": mapping,
        }
        base = f"/{spec.base_path.strip('/')}" if spec.base_path.strip("/") else ""
        outputs["CustomDomainCallbackUrl"] = {"Value": f"https://{spec.domain}{base}{spec.path}"}
        outputs["RegionalDomainName"] = {
            "Description": POINT_DNS_HERE,
            "Value": {"Fn::GetAtt": ["CallbackDomain", "RegionalDomainName"]},
        }
        if spec.hosted_zone_id is not None:
            resources["CallbackDomainAlias"] = {
                "Type": "AWS::Route53::RecordSet",
                "Properties": {
                    "HostedZoneId": spec.hosted_zone_id,
                    "Name": spec.domain,
                    "Type": "A",
                    "AliasTarget": {
                        "DNSName": {"Fn::GetAtt": ["CallbackDomain", "RegionalDomainName"]},
                        "HostedZoneId": {"Fn::GetAtt": ["CallbackDomain", "RegionalHostedZoneId"]},
                        "EvaluateTargetHealth": False,
                    },
                },
            }
    outputs["QueueRetention"] = {
        "Description": RETENTION_WHY,
        "Value": {"Fn::Sub": f"{_retention_command('${AWS::Region}', spec.queue_name)} (run once)"},
    }
    description = (
        "Vendor callbacks -> API Gateway REST API -> SQS (generated by hookshift apigw render)."
    )
    if spec.queue_policy:
        description += " Note: AWS::SQS::QueuePolicy replaces the queue's existing access policy."
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Resources": resources,
        "Outputs": outputs,
    }


# ---------------------------------------------------------------------------------------------
# Terraform (HCL)


class Expr(str):
    """A Terraform expression, written unquoted (``aws_iam_role.x.arn``)."""


def hcl_string(text: str) -> str:
    """A quoted HCL string literal; ``${`` and ``%{`` are escaped, VTL's ``${n}`` stays literal."""
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("${", "$${")
        .replace("%{", "%%{")
    )
    return f'"{escaped}"'


def _hcl_value(value: Any, indent: int) -> str:
    pad = "  " * indent
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return hcl_string(value)
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        lines = [
            f"{pad}  {hcl_string(str(k))} = {_hcl_value(v, indent + 1)}" for k, v in value.items()
        ]
        return "{\n" + "\n".join(lines) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [f"{pad}  {_hcl_value(v, indent + 1)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    raise TypeError(f"cannot write {type(value).__name__} as HCL")


@dataclass(frozen=True)
class Block:
    """``kind "label" "label" { attributes; nested blocks }``."""

    kind: str
    labels: tuple[str, ...]
    attributes: Mapping[str, Any]
    blocks: tuple[Block, ...] = ()

    def render(self, indent: int = 0) -> str:
        pad = "  " * indent
        head = " ".join([self.kind, *(hcl_string(label) for label in self.labels)])
        lines = [f"{pad}{head} {{"]
        for key, value in self.attributes.items():
            lines.append(f"{pad}  {key} = {_hcl_value(value, indent + 1)}")
        for block in self.blocks:
            lines.append(block.render(indent + 1))
        lines.append(f"{pad}}}")
        return "\n".join(lines)


# The queue is the user's (these artifacts read it, never replace it), so its retention is set
# by a command they print: SQS deletes unread messages after the retention (4 days unless set),
# and a pull stopped over a long weekend of the mirror period would turn them into false losses.
QUEUE_RETENTION_S = 1_209_600
RETENTION_WHY = (
    f"Set the queue's MessageRetentionPeriod to {QUEUE_RETENTION_S} s (14 days, the maximum):"
    " SQS deletes messages nobody read after 4 days by default, and a mirror period whose pull"
    " stopped for a long weekend would then show them as missing."
)


def _retention_command(region: str | None, queue_name: str) -> str:
    at = f" --region {region}" if region else ""
    return (
        f"aws sqs set-queue-attributes{at} --queue-url $(aws sqs get-queue-url{at}"
        f" --queue-name {queue_name} --query QueueUrl --output text)"
        f" --attributes MessageRetentionPeriod={QUEUE_RETENTION_S}"
    )


def _jsonencode(value: Any) -> Expr:
    return Expr("jsonencode(" + _hcl_value(value, 1) + ")")


def terraform_blocks(spec: ApiSpec) -> list[Block]:
    api = "aws_api_gateway_rest_api.callbacks"
    queue = "data.aws_sqs_queue.callbacks"
    blocks = [
        Block(
            "terraform",
            (),
            {},
            (
                Block(
                    "required_providers",
                    (),
                    {"aws": {"source": "hashicorp/aws", "version": ">= 5.0"}},
                ),
            ),
        ),
        Block("data", ("aws_sqs_queue", "callbacks"), {"name": spec.queue_name}),
        Block(
            "resource",
            ("aws_api_gateway_rest_api", "callbacks"),
            {
                "name": spec.api_name,
                "description": "Vendor callbacks -> SQS (generated by hookshift apigw render)",
            },
            (Block("endpoint_configuration", (), {"types": ["REGIONAL"]}),),
        ),
    ]
    parent = Expr(f"{api}.root_resource_id")
    resource_name = ""
    for index, segment in enumerate(spec.segments()):
        resource_name = "callback" if index == len(spec.segments()) - 1 else f"callback_{index}"
        blocks.append(
            Block(
                "resource",
                ("aws_api_gateway_resource", resource_name),
                {"rest_api_id": Expr(f"{api}.id"), "parent_id": parent, "path_part": segment},
            )
        )
        parent = Expr(f"aws_api_gateway_resource.{resource_name}.id")
    resource_id = Expr(f"aws_api_gateway_resource.{resource_name}.id")
    content_types = integration.request_content_types()
    blocks += [
        Block(
            "resource",
            ("aws_api_gateway_model", "callback"),
            {
                "rest_api_id": Expr(f"{api}.id"),
                "name": "Callback",
                "content_type": "application/json",
                "schema": _jsonencode(spec.model_schema()),
            },
        ),
        Block(
            "resource",
            ("aws_api_gateway_request_validator", "callback"),
            {
                "rest_api_id": Expr(f"{api}.id"),
                "name": "body-and-headers",
                "validate_request_body": True,
                "validate_request_parameters": True,
            },
        ),
        Block(
            "resource",
            ("aws_iam_role", "sqs_send"),
            {
                "name": spec.role,
                "description": "API Gateway execution role: SendMessage to the callback queue only",
                "assume_role_policy": _jsonencode(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "apigateway.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                ),
            },
        ),
        Block(
            "resource",
            ("aws_iam_role_policy", "sqs_send"),
            {
                "name": "send-callbacks",
                "role": Expr("aws_iam_role.sqs_send.id"),
                "policy": _jsonencode(_role_policy(spec, Expr(f"{queue}.arn"), spec.kms_key_arn)),
            },
        ),
        Block(
            "resource",
            ("aws_api_gateway_method", "callback_post"),
            {
                "rest_api_id": Expr(f"{api}.id"),
                "resource_id": resource_id,
                "http_method": "POST",
                "authorization": "NONE",
                "request_validator_id": Expr("aws_api_gateway_request_validator.callback.id"),
                "request_models": {
                    ct: Expr("aws_api_gateway_model.callback.name") for ct in content_types
                },
                "request_parameters": {"method.request.header.Content-Type": True},
            },
        ),
        Block(
            "resource",
            ("aws_api_gateway_integration", "sqs"),
            {
                "rest_api_id": Expr(f"{api}.id"),
                "resource_id": resource_id,
                "http_method": Expr("aws_api_gateway_method.callback_post.http_method"),
                "type": "AWS",
                "integration_http_method": integration.integration_method(),
                "uri": Expr(
                    '"arn:aws:apigateway:${data.aws_region.current.name}:sqs:path/'
                    "${data.aws_caller_identity.current.account_id}/" + spec.queue_name + '"'
                ),
                "credentials": Expr("aws_iam_role.sqs_send.arn"),
                "request_parameters": _content_type_parameter(),
                "request_templates": {ct: spec.mapping_template() for ct in content_types},
                "passthrough_behavior": integration.passthrough_behavior(),
            },
        ),
        Block("data", ("aws_region", "current"), {}),
        Block("data", ("aws_caller_identity", "current"), {}),
    ]
    for status in spec.method_statuses():
        blocks.append(
            Block(
                "resource",
                ("aws_api_gateway_method_response", f"status_{status}"),
                {
                    "rest_api_id": Expr(f"{api}.id"),
                    "resource_id": resource_id,
                    "http_method": Expr("aws_api_gateway_method.callback_post.http_method"),
                    "status_code": status,
                    "response_models": {"application/json": "Empty"},
                },
            )
        )
    response_names = []
    for response in spec.responses():
        name = f"sqs_{response.status}"
        response_names.append(f"aws_api_gateway_integration_response.{name}")
        attributes: dict[str, Any] = {
            "rest_api_id": Expr(f"{api}.id"),
            "resource_id": resource_id,
            "http_method": Expr("aws_api_gateway_method.callback_post.http_method"),
            "status_code": Expr(
                f"aws_api_gateway_method_response.status_{response.status}.status_code"
            ),
        }
        if response.selection_pattern is not None:
            attributes["selection_pattern"] = response.selection_pattern
        attributes["response_templates"] = {integration.response_content_type(): response.template}
        attributes["depends_on"] = Expr("[aws_api_gateway_integration.sqs]")
        blocks.append(Block("resource", ("aws_api_gateway_integration_response", name), attributes))
    blocks += [
        Block(
            "resource",
            ("aws_api_gateway_deployment", "callbacks"),
            {
                "rest_api_id": Expr(f"{api}.id"),
                "triggers": {
                    "redeployment": Expr(
                        "sha1(jsonencode(["
                        + ", ".join(["aws_api_gateway_integration.sqs", *response_names])
                        + ", aws_api_gateway_method.callback_post]))"
                    )
                },
                "depends_on": Expr(
                    "[" + ", ".join(["aws_api_gateway_integration.sqs", *response_names]) + "]"
                ),
            },
            (Block("lifecycle", (), {"create_before_destroy": True}),),
        ),
        Block(
            "resource",
            ("aws_api_gateway_stage", "callbacks"),
            {
                "rest_api_id": Expr(f"{api}.id"),
                "deployment_id": Expr("aws_api_gateway_deployment.callbacks.id"),
                "stage_name": spec.stage,
            },
        ),
    ]
    if spec.queue_policy:
        blocks.append(
            Block(
                "resource",
                ("aws_sqs_queue_policy", "callbacks"),
                {
                    "queue_url": Expr(f"{queue}.url"),
                    "policy": _jsonencode(
                        {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "ApiGatewayExecutionRoleSends",
                                    "Effect": "Allow",
                                    "Principal": {"AWS": Expr("aws_iam_role.sqs_send.arn")},
                                    "Action": "sqs:SendMessage",
                                    "Resource": Expr(f"{queue}.arn"),
                                }
                            ],
                        }
                    ),
                },
            )
        )
    blocks.append(
        Block(
            "output",
            ("stage_callback_url",),
            {"value": Expr('"${aws_api_gateway_stage.callbacks.invoke_url}' + spec.path + '"')},
        )
    )
    if spec.domain is not None:
        base = spec.base_path.strip("/")
        blocks += [
            Block(
                "resource",
                ("aws_api_gateway_domain_name", "callbacks"),
                {
                    "domain_name": spec.domain,
                    "regional_certificate_arn": spec.certificate_arn,
                    "security_policy": "TLS_1_2",
                },
                (Block("endpoint_configuration", (), {"types": ["REGIONAL"]}),),
            ),
            Block(
                "resource",
                ("aws_api_gateway_base_path_mapping", "callbacks"),
                {
                    "api_id": Expr(f"{api}.id"),
                    "stage_name": Expr("aws_api_gateway_stage.callbacks.stage_name"),
                    "domain_name": Expr("aws_api_gateway_domain_name.callbacks.domain_name"),
                    **({"base_path": base} if base else {}),
                },
            ),
            Block(
                "output",
                ("regional_domain_name",),
                {
                    "description": POINT_DNS_HERE,
                    "value": Expr("aws_api_gateway_domain_name.callbacks.regional_domain_name"),
                },
            ),
        ]
        if spec.hosted_zone_id is not None:
            blocks.append(
                Block(
                    "resource",
                    ("aws_route53_record", "callbacks"),
                    {"zone_id": spec.hosted_zone_id, "name": spec.domain, "type": "A"},
                    (
                        Block(
                            "alias",
                            (),
                            {
                                "name": Expr(
                                    "aws_api_gateway_domain_name.callbacks.regional_domain_name"
                                ),
                                "zone_id": Expr(
                                    "aws_api_gateway_domain_name.callbacks.regional_zone_id"
                                ),
                                "evaluate_target_health": False,
                            },
                        ),
                    ),
                )
            )
    return blocks


def terraform(spec: ApiSpec) -> str:
    header = (
        "# Vendor callbacks -> API Gateway REST API -> SQS (generated by hookshift apigw render).\n"
        "# The mapping template and integration responses are the ones the stage emulator runs.\n"
    )
    if spec.queue_policy:
        header += "# Note: aws_sqs_queue_policy replaces the queue's existing access policy.\n"
    header += f"# {RETENTION_WHY}\n#   {_retention_command(spec.region, spec.queue_name)}\n"
    return header + "\n" + "\n\n".join(block.render() for block in terraform_blocks(spec)) + "\n"


def render(spec: ApiSpec, fmt: Format) -> str:
    """The document in ``fmt`` as text (JSON for OpenAPI and CloudFormation, HCL for Terraform)."""
    if fmt == "openapi":
        return json.dumps(openapi(spec), indent=2, ensure_ascii=False) + "\n"
    if fmt == "cloudformation":
        return json.dumps(cloudformation(spec), indent=2, ensure_ascii=False) + "\n"
    if fmt == "terraform":
        return terraform(spec)
    raise InputError(f"unknown format {fmt!r}", fix=f"use one of {', '.join(FORMATS)}")
