"""Where two bodies differ: spans that never cut an escape or a character in two, the first
differing byte, and long bodies cut to the context around their differences."""

from __future__ import annotations

import pytest

from hookshift.verify.bodydiff import MATCH_CELLS_MAX, Piece, diff_bodies, shorten, tokens

TRICKY = [
    "",
    "order=A-1001&coupon=50%+off",
    "배송 안내: 주문 #1002 출고 완료",
    "q=%ED%95%9C%EA%B8%80&x=%2B%",
    '{"t":"\\uD55C\\ud83d\\ude00\\n\\"\\\\","p":"a=b=c; x+y; 100%"}',
    "line\r\nbreak\ttab\u200bzero\u00a0nbsp",
    "</script><script>alert(1)</script>",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(tokens(text)) == text


def _changes(app: str, queue: str) -> list[tuple[str, str]]:
    return [(p.app, p.queue) for p in shorten(diff_bodies(app, queue)) if p.kind == "changed"]


def _joined(pieces: list[Piece]) -> tuple[str, str]:
    return "".join(p.app for p in pieces), "".join(p.queue for p in pieces)


@pytest.mark.parametrize(
    ("app", "queue", "changes", "first_char", "first_byte"),
    [
        # a plus decoded to a space: the form-encoding mix-up behind most mismatches
        ('{"U":"50%+off"}', '{"U":"50% off"}', [("+", " ")], 9, 9),
        ("a=1&b=2+3%&c==", "a=1&b=2+3%&c=", [("=", "")], 13, 13),
        # Hangul: three UTF-8 bytes a syllable, the two changed syllables one change
        ("배송 안내", "배송 완료", [("안내", "완료")], 3, 7),
        # a percent-encoded syllable is changed whole, not in its last hex digit
        ("q=%ED%95%9C%EA%B8%80", "q=%ED%95%9C%EA%B8%81", [("%EA%B8%80", "%EA%B8%81")], 11, 11),
        # JSON escapes, a surrogate pair among them, are changed whole
        ('"\\uD55C"', '"\\uD55D"', [("\\uD55C", "\\uD55D")], 1, 1),
        ('"\\ud83d\\ude00"', '"\\ud83d\\ude01"', [("\\ud83d\\ude00", "\\ud83d\\ude01")], 1, 1),
        ('"a\\nb"', '"a\\tb"', [("\\n", "\\t")], 2, 2),
        ("abc", "abXc", [("", "X")], 2, 2),
        ("", "abc", [("", "abc")], 0, 0),
        # one unchanged character between two changes does not split them
        ("1234", "1x3y", [("234", "x3y")], 1, 1),
    ],
)
def test_changes_and_the_first_difference(
    app: str, queue: str, changes: list[tuple[str, str]], first_char: int, first_byte: int
) -> None:
    diff = diff_bodies(app, queue)
    assert _changes(app, queue) == changes
    assert (diff.first_char, diff.first_byte) == (first_char, first_byte)
    assert _joined(shorten(diff, context=10**6, change_max=10**6)) == (app, queue)


def test_the_same_text_has_no_difference() -> None:
    diff = diff_bodies("배송 안내", "배송 안내")
    assert not diff.differs and diff.first_byte is None and diff.first_char is None
    assert shorten(diff) == [Piece("same", "배송 안내", "배송 안내")]


def test_separate_changes_are_shown_apart_with_their_context() -> None:
    app = '{"a":"one","pad":"' + "x" * 500 + '","b":"two"}'
    queue = '{"a":"ONE","pad":"' + "x" * 500 + '","b":"TWO"}'
    pieces = shorten(diff_bodies(app, queue), context=20)
    kinds = ["same", "changed", "same", "skipped", "same", "changed", "same"]
    assert [p.kind for p in pieces] == kinds
    assert [(p.app, p.queue) for p in pieces if p.kind == "changed"] == [
        ("one", "ONE"),
        ("two", "TWO"),
    ]
    assert _joined(pieces) == (app, queue)  # nothing lost: what is left out is only not shown


def test_a_short_run_is_shown_rather_than_left_out() -> None:
    app, queue = "x" * 50 + "A", "x" * 50 + "B"
    assert [p.kind for p in shorten(diff_bodies(app, queue), context=40)] == ["same", "changed"]
    app, queue = "x" * 61 + "A", "x" * 61 + "B"
    pieces = shorten(diff_bodies(app, queue), context=40)
    assert [(p.kind, len(p.app)) for p in pieces] == [("skipped", 21), ("same", 40), ("changed", 1)]


def test_a_long_body_shows_the_context_of_its_difference_not_all_of_it() -> None:
    app = "가" * 500_000 + "A" + "b" * 500_000
    queue = "가" * 500_000 + "B" + "b" * 500_000
    diff = diff_bodies(app, queue)
    assert diff.first_char == 500_000 and diff.first_byte == 1_500_000
    pieces = shorten(diff, context=40)
    shown = [p for p in pieces if p.kind != "skipped"]
    assert sum(len(p.app) for p in shown) == 81
    assert [(p.app, p.queue) for p in pieces if p.kind == "changed"] == [("A", "B")]
    assert _joined(pieces) == (app, queue)


def test_two_long_bodies_that_share_nothing_are_one_change_cut_short() -> None:
    app, queue = "a" * 3000, "b" * 3000
    assert len(app) * len(queue) > MATCH_CELLS_MAX  # too many cells to match: one change
    pieces = shorten(diff_bodies(app, queue), change_max=200)
    assert [p.kind for p in pieces] == ["changed", "skipped", "changed"]
    assert sum(len(p.app) for p in pieces if p.kind == "changed") == 200
    assert _joined(pieces) == (app, queue)
