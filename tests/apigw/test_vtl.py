"""The VTL renderer: API Gateway's $input, $util and $context semantics on airspeed."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from hookshift.apigw.integration import (
    TemplateOptions,
    integration_responses,
    mapping_template,
    select_response,
)
from hookshift.apigw.vtl import (
    BodyNotJson,
    MethodRequest,
    VtlError,
    escape_javascript,
    java_url_encode,
    json_path,
    render,
)
from hookshift.errors import InputError

BODY = '{"USERDATA":"order=A-1001&coupon=50%+off","MSG":"배송 안내","N":[1,{"k":"v"}]}'


def _render(template: str, body: str = BODY, headers: tuple[tuple[str, str], ...] = ()) -> str:
    request = MethodRequest(body=body, headers=headers, querystring={"q": "1"})
    return render(template, request, {"requestId": "rid-1", "identity": {"sourceIp": "1.2.3.4"}})


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a b", "a+b"),
        ("&+%=", "%26%2B%25%3D"),
        ("*-._~", "*-._%7E"),  # Java's URLEncoder keeps * - . _ and encodes ~
        ("배", "%EB%B0%B0"),
        ("/?#", "%2F%3F%23"),
    ],
)
def test_url_encode_is_javas_urlencoder(raw: str, encoded: str) -> None:
    assert java_url_encode(raw) == encoded
    assert _render("$util.urlEncode($input.body)", body=raw) == encoded


def test_url_encode_round_trips_through_form_parsing() -> None:
    form = _render("MessageBody=$util.urlEncode($input.body)")
    assert dict(parse_qsl(form)) == {"MessageBody": BODY}


def test_escape_javascript_escapes_quotes_slashes_controls_and_non_ascii() -> None:
    assert escape_javascript("a'b\"c\\d/e\nf") == "a\\'b\\\"c\\\\d\\/e\\nf"
    assert escape_javascript("배") == "\\uBC30"
    assert escape_javascript("😀") == "\\uD83D\\uDE00"


def test_escape_javascript_leaves_del_as_commons_lang_does() -> None:
    # commons-lang escapes below 0x20 and above 0x7F; DEL itself passes through
    assert escape_javascript("a\x7fb\x1f") == "a\x7fb\\u001F"
    assert escape_javascript("\x80") == "\\u0080"


def test_input_params_finds_path_then_query_then_header_case_insensitively() -> None:
    headers = (("X-Request-Id", "abc"), ("Content-Type", "application/json"))
    assert _render("$input.params('x-request-id')|$input.params('q')", headers=headers) == "abc|1"
    rendered = _render(
        "#foreach($h in $input.params().header.keySet())$h;#end"
        "$input.params().header.size()|$input.params().querystring.get('q')",
        headers=headers,
    )
    assert rendered == "X-Request-Id;Content-Type;2|1"


def test_input_json_and_path_evaluate_json_paths() -> None:
    assert _render("$input.json('$.N[1]')") == '{"k":"v"}'
    assert _render("$input.path('$.N[1].k')") == "v"
    assert _render("$input.path('$.MSG')") == "배송 안내"
    assert _render("[$!input.path('$.missing')]") == "[]"
    assert json_path({"a": [0, {"b": 2}]}, "$['a'][1].b") == 2


def test_input_body_of_an_empty_request_is_an_empty_object() -> None:
    # API Gateway renders $input.body of an empty body as {} (whatever the content type), so
    # SQS gets the message {} instead of refusing an empty MessageBody
    assert render("$input.body", MethodRequest(body=""), {}) == "{}"
    form = render(mapping_template(), MethodRequest(body=""), {"requestId": "r"})
    assert form.startswith("Action=SendMessage&MessageBody=%7B%7D&")


def test_input_json_and_path_of_an_empty_request_see_an_empty_object() -> None:
    # the same {} that $input.body gives: a FIFO template falls back to its default ids
    assert render("$input.json('$')", MethodRequest(body=""), {}) == "{}"
    assert render("[$!input.path('$.CMSGID')]", MethodRequest(body=""), {}) == "[]"


def test_a_json_path_into_a_body_that_is_not_json_is_body_not_json() -> None:
    form = MethodRequest(body="MSGID=1&USERDATA=50%25+off")
    # $input.body takes any text; only a JSON path parses the body, and then fails
    assert (
        render("$util.urlEncode($input.body)", form, {}) == "MSGID%3D1%26USERDATA%3D50%2525%2Boff"
    )
    for template in ("$input.path('$.MSGID')", "#set($g = $input.json('$'))$g"):
        with pytest.raises(BodyNotJson, match="Could not parse payload into json"):
            render(template, form, {})


def test_a_json_boolean_renders_as_velocity_does_and_keeps_its_truth() -> None:
    # Velocity (Java) renders true/false; a FIFO id read from a boolean field must match AWS
    request = MethodRequest(body='{"OK":true,"NO":false}')
    template = "$input.path('$.OK')|$input.path('$.NO')|#if($input.path('$.NO'))t#{else}f#end"
    assert render(template + "|#if($input.path('$.OK') == true)eq#end", request, {}) == (
        "true|false|f|eq"
    )
    assert render("$util.parseJson($input.body).NO", request, {}) == "false"


def test_context_values_render() -> None:
    assert _render("$context.requestId $context.identity.sourceIp") == "rid-1 1.2.3.4"


def test_a_template_that_fails_raises_vtl_error() -> None:
    with pytest.raises(VtlError):
        _render("$input.json('no-dollar')")


def test_the_mapping_template_renders_one_form_line_without_stray_whitespace() -> None:
    form = _render(mapping_template(), headers=(("X-Request-Id", "nginx-1"),))
    assert "\n" not in form and " " not in form
    fields = parse_qsl(form, keep_blank_values=True)
    assert fields[:2] == [("Action", "SendMessage"), ("MessageBody", BODY)]
    assert dict(fields)["MessageAttribute.1.Name"] == "apigw_request_id"
    assert dict(fields)["MessageAttribute.1.Value.StringValue"] == "rid-1"
    assert dict(fields)["MessageAttribute.2.Name"] == "nginx_request_id"
    assert dict(fields)["MessageAttribute.2.Value.StringValue"] == "nginx-1"


def test_the_replay_attribute_is_numbered_after_the_present_ones() -> None:
    form = _render(mapping_template(), headers=(("X-Hookshift-Replay", "orig"),))
    fields = dict(parse_qsl(form))
    assert fields["MessageAttribute.2.Name"] == "hookshift_replay"
    assert "MessageAttribute.3.Name" not in fields


def test_a_custom_request_id_header_is_read() -> None:
    template = mapping_template(TemplateOptions(request_id_header="X-Nginx-Id"))
    fields = dict(parse_qsl(_render(template, headers=(("X-Nginx-Id", "n9"),))))
    assert fields["MessageAttribute.2.Value.StringValue"] == "n9"


def test_variants_reproduce_the_seed_mistakes() -> None:
    no_action = _render(mapping_template(TemplateOptions(variant="no-action")))
    assert not no_action.startswith("Action=") and "Action=SendMessage" not in no_action
    no_encode = _render(mapping_template(TemplateOptions(variant="no-urlencode")))
    assert no_encode.startswith("Action=SendMessage&MessageBody=" + BODY)


def test_fifo_ids_fall_back_when_the_path_is_empty() -> None:
    template = mapping_template(TemplateOptions(fifo=True, fifo_group_id_path="$.nope"))
    fields = dict(parse_qsl(_render(template)))
    assert fields["MessageGroupId"] == "callbacks"
    assert fields["MessageDeduplicationId"] == "rid-1"


def test_bad_template_options_are_input_errors() -> None:
    with pytest.raises(InputError, match="header name"):
        TemplateOptions(request_id_header="X Request")
    with pytest.raises(InputError, match="JSON path"):
        TemplateOptions(fifo=True, fifo_dedup_id_path="CMSGID')")


def test_integration_responses_select_by_whole_status_code() -> None:
    recommended = integration_responses("recommended")
    assert select_response(recommended, 200).status == 200
    assert select_response(recommended, 403).status == 500
    assert select_response(recommended, 404).status == 500
    assert select_response(recommended, 503).status == 503
    default = integration_responses("default")
    assert {select_response(default, s).status for s in (200, 400, 403, 404, 500)} == {200}
    with pytest.raises(InputError):
        integration_responses("nope")  # type: ignore[arg-type]
