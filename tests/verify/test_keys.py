"""One rendering of a callback's key for every output (rehearsal, parity report, heal)."""

from __future__ import annotations

import json

from hookshift.verify.keys import PROFILES, parse_key, show_body_key, show_key

BIZPPURIO = parse_key(PROFILES["bizppurio"])


def test_a_composite_key_names_each_value_by_its_field() -> None:
    assert show_key(BIZPPURIO, "m1\x1f7000") == "MSGID=m1, RESULT=7000"
    assert BIZPPURIO.display("m1\x1f7000") == "MSGID=m1, RESULT=7000"


def test_a_single_part_key_is_its_value() -> None:
    assert show_key(parse_key("request_id"), "abc123") == "abc123"


def test_a_body_the_caller_holds_is_shown_the_same_way() -> None:
    body = json.dumps({"MSGID": "m1", "RESULT": 7000, "CMSGID": "hs1"})
    assert show_body_key(BIZPPURIO, body) == "MSGID=m1, RESULT=7000"
    assert show_body_key(BIZPPURIO, '{"MSGID": "m1"}') is None
    assert show_body_key(BIZPPURIO, "MSGID=m1") is None
    assert show_body_key(parse_key("request_id"), body) is None
