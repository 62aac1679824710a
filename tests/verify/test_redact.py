"""Phone numbers, written every way people write them, never survive redaction."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.redact import redact_body, redact_text
from hookshift.verify.report import FORMATS, render
from tests.verify.data import T0, body, message, nginx_line, rid, write_lines, write_messages

AREAS = ["010", "011", "016", "017", "018", "019", "02", "031", "032", "033", "041", "042"]
AREAS += ["043", "044", "051", "052", "053", "054", "055", "061", "062", "063", "064", "070"]
SEPARATORS = ["-", " ", ".", ")", "", ") ", " - "]


def _digits(text: str) -> str:
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


@st.composite
def phone(draw: st.DrawFn) -> tuple[str, str]:
    """A number as people write it, and its last four digits."""
    area = draw(st.sampled_from(AREAS))
    middle = draw(st.text("0123456789", min_size=3, max_size=4))
    last = draw(st.text("0123456789", min_size=4, max_size=4))
    sep = draw(st.sampled_from(SEPARATORS))
    sep2 = draw(st.sampled_from(["-", " ", ".", ""]))
    style = draw(st.sampled_from(["plain", "paren", "+82", "+82-", "82-", "+82(0)", "0082"]))
    if style == "plain":
        text = f"{area}{sep}{middle}{sep2}{last}"
    elif style == "paren":
        text = f"({area}){draw(st.sampled_from(['', ' ', '-']))}{middle}{sep2}{last}"
    else:
        national = area[1:]
        lead = {"+82": "+82 ", "+82-": "+82-", "82-": "82-", "+82(0)": "+82 (0)", "0082": "0082"}
        glue = "" if style in ("+82", "0082") and draw(st.booleans()) else sep2
        text = f"{lead[style].strip() if not glue else lead[style]}{national}{glue}{middle}"
        text += f"{sep2}{last}"
    if draw(st.booleans()):  # full-width digits and punctuation, as typed on a Korean IME
        text = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
    return text, last


# no digits around the number (a digit next to it makes a longer number, not a phone number)
AROUND = st.text(
    st.characters(
        blacklist_categories=("Nd", "No", "Nl", "Cs", "Cc"),
        blacklist_characters="０１２３４５６７８９%",
    )
    | st.sampled_from("가나다 전화번호: 연락처 ,\"'{}[]&=+"),
    max_size=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(number=phone(), before=AROUND, after=AROUND)
def test_no_phone_number_survives_in_text_json_or_a_form(
    number: tuple[str, str], before: str, after: str
) -> None:
    text, last = number
    embedded = f"{before} {text} {after}"
    assert _digits(redact_text(embedded)) == last
    as_json = redact_body(json.dumps({"USERDATA": embedded, "list": [embedded]}))
    assert as_json is not None
    data = json.loads(as_json)
    assert _digits(data["USERDATA"]) == last and _digits(data["list"][0]) == last
    as_form = redact_body(urlencode({"USERDATA": embedded, "RESULT": "x"}))
    assert as_form is not None
    assert _digits(dict(parse_qsl(as_form))["USERDATA"]) == last
    # the number URL-encoded inside text that is not a form (a query string in a log line)
    for encoded in (quote(text, safe=""), quote_plus(text)):
        shown = redact_text(f"{before} q={encoded}&x=y {after}")
        assert _digits(unquote(shown.replace("+", " "))) == last


@pytest.mark.parametrize(
    "text",
    [
        "010.5555.6666",
        "(010)9191-9292",
        "(02) 123-4567",
        "+82 10-1234-5678",
        "+821012345678",
        "82-10-1234-5678",
        "+82 (0)31 123 4567",
        "064)123-4567",
        "연락처010-1234-5678로",
        "010%2D1234%2D5678",
        "%2B82%2010%201234%205678",
    ],
)
def test_the_forms_from_the_field_are_masked(text: str) -> None:
    shown = redact_text(text)
    assert _digits(unquote(shown)) == _digits(unquote(text))[-4:]


def test_ids_and_times_are_not_phone_numbers() -> None:
    for text in ("hs11280521200000081", "1128at_KA120000000000000081", "2026-11-28T07:55:00"):
        assert redact_text(text) == text


def test_a_json_number_without_its_leading_zero_is_masked() -> None:
    shown = redact_body('{"n":1012345678,"count":3}')
    assert shown == '{"n":"******5678","count":3}'


def test_every_report_format_hides_numbers_in_any_field(tmp_path: Path) -> None:
    """The numbers of the field reports, in a field whose name says nothing about phones."""
    note = "연락처 010.5555.6666 또는 (010)9191-9292, +82 10-3131-4141"
    app = write_lines(
        tmp_path / "p.log",
        [nginx_line(rid(n), T0 + n * 1000, body(n, userdata=note)) for n in range(3)],
    )
    queue = write_messages(
        tmp_path / "q.jsonl",
        [  # another body: every record is a mismatched sample with both bodies shown
            message(f"m{n}", body(n, userdata=note + "!"), T0 + n * 1000 + 9, request_id=rid(n))
            for n in range(3)
        ],
    )
    report = run_parity(f"nginx:{app}", f"jsonl:{queue}", ParityOptions())
    assert report.counts["mismatched"] == 3 and report.redacted
    for fmt in FORMATS:
        shown = render(report, fmt)
        for secret in ("5555", "9191", "3131"):
            assert secret not in shown, (fmt, secret)
        assert "9292" in shown  # the last four digits stay, to tell numbers apart


def test_a_key_holding_a_number_is_masked_in_samples_and_the_missing_list(tmp_path: Path) -> None:
    app = write_lines(
        tmp_path / "p.log",
        [nginx_line(rid(1), T0, body(1, userdata="고객 010.5555.6666"))],
    )
    queue = write_messages(tmp_path / "q.jsonl", [message("m", body(2), T0, request_id=rid(2))])
    report = run_parity(
        f"nginx:{app}", f"jsonl:{queue}", ParityOptions(key="json:USERDATA", grace_s=0)
    )
    shown = render(report, "json")
    assert report.missing_in_queue_keys == ["고객 ***.****.6666"]
    assert "5555" not in shown
