"""Where two bodies of one callback differ: the spans a report highlights in a mismatched sample,
and the first byte that differs. Pure functions over the raw text.

The text is compared as tokens, not characters, so that a highlighted span never cuts an escape
in two: a percent-encoded character (``%ED%95%9C`` is one Hangul syllable), a JSON escape
(``\\uD55C``, a surrogate pair, ``\\n``) or one code point (Hangul is one code point, three
UTF-8 bytes). Bodies can be long; the reader needs the difference and a little around it, so
`shorten` keeps `context` tokens either side of each change and leaves the rest out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

_TOKEN = re.compile(
    r"%[0-9A-Fa-f]{2}(?:%[89ABab][0-9A-Fa-f])*"  # a percent-encoded byte and its UTF-8 tail
    r"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair
    r"|\\u[0-9a-fA-F]{4}"
    r"|\\."
    r"|.",
    re.DOTALL,
)
# SequenceMatcher's cost grows with the product of the two sides' lengths: past this, the part
# between the common head and tail is shown as one change
MATCH_CELLS_MAX = 4_000_000
# an unchanged run this short between two changes reads better as part of one change
# ("1234" -> "1x3y" is one change, not two with a lone "3" between them)
MERGE_BELOW = 3
# leaving out fewer tokens than this saves the reader nothing: they are shown
SKIP_MIN = 20


def tokens(text: str) -> list[str]:
    """The text cut where a highlight may start or end; the tokens join back to the text."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Segment:
    """A run of tokens either the same on both sides, or changed (one side may be empty)."""

    same: bool
    app: tuple[str, ...]
    queue: tuple[str, ...]


@dataclass(frozen=True)
class BodyDiff:
    segments: tuple[Segment, ...]

    @property
    def differs(self) -> bool:
        return any(not s.same for s in self.segments)

    @property
    def first_char(self) -> int | None:
        """Characters before the first difference (None: the two texts are the same)."""
        head = self._head()
        return None if head is None else len(head)

    @property
    def first_byte(self) -> int | None:
        """UTF-8 bytes before the first difference (what `cmp` reports)."""
        head = self._head()
        return None if head is None else len(head.encode("utf-8", "surrogatepass"))

    def _head(self) -> str | None:
        if not self.differs:
            return None
        head = []
        for s in self.segments:
            if not s.same:
                break
            head.append("".join(s.app))
        return "".join(head)


def diff_bodies(app: str, queue: str) -> BodyDiff:
    """The segments of the two texts: the common head, what changed in between (as few, readable
    changes as difflib finds) and the common tail."""
    a, b = tokens(app), tokens(queue)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    mid_a, mid_b = a[head : len(a) - tail], b[head : len(b) - tail]
    raw: list[Segment] = [Segment(True, tuple(a[:head]), tuple(b[:head]))]
    if len(mid_a) * len(mid_b) <= MATCH_CELLS_MAX:
        matcher = SequenceMatcher(None, mid_a, mid_b, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            raw.append(Segment(op == "equal", tuple(mid_a[i1:i2]), tuple(mid_b[j1:j2])))
    else:
        raw.append(Segment(False, tuple(mid_a), tuple(mid_b)))
    raw.append(Segment(True, tuple(a[len(a) - tail :]), tuple(b[len(b) - tail :])))
    return BodyDiff(_merge([s for s in raw if s.app or s.queue]))


def _merge(segments: list[Segment]) -> tuple[Segment, ...]:
    """Adjacent segments of one kind joined; a short unchanged run between changes absorbed."""
    out: list[Segment] = []
    for i, s in enumerate(segments):
        between = 0 < i < len(segments) - 1
        if s.same and between and len(s.app) < MERGE_BELOW:
            s = Segment(False, s.app, s.queue)
        if out and out[-1].same == s.same:
            s = Segment(s.same, out[-1].app + s.app, out[-1].queue + s.queue)
            out.pop()
        out.append(s)
    return tuple(out)


@dataclass(frozen=True)
class Piece:
    """What a report shows of a segment, side by side: `same` and `changed` text, or `skipped`
    text it leaves out (only its length is shown)."""

    kind: Literal["same", "changed", "skipped"]
    app: str
    queue: str


def shorten(diff: BodyDiff, context: int = 40, change_max: int = 200) -> list[Piece]:
    """The pieces to show: unchanged runs cut to `context` tokens next to each change, changes
    longer than `change_max` tokens cut to their first and last half of it."""
    pieces: list[Piece] = []
    last = len(diff.segments) - 1
    for i, s in enumerate(diff.segments):
        if s.same:
            keep_head = context if i > 0 else 0
            keep_tail = context if i < last else 0
            if not diff.differs:  # nothing to point at: the start of the text
                keep_head, keep_tail = context + change_max, 0
            pieces += _cut("same", s.app, s.app, keep_head, keep_tail)
        else:
            half = change_max // 2
            pieces += _cut("changed", s.app, s.queue, half, half)
    return pieces


def _cut(
    kind: Literal["same", "changed"],
    app: tuple[str, ...],
    queue: tuple[str, ...],
    keep_head: int,
    keep_tail: int,
) -> list[Piece]:
    """A segment as pieces: its first `keep_head` and last `keep_tail` tokens of each side shown,
    what is between them skipped."""

    def split(side: tuple[str, ...]) -> tuple[str, str, str]:
        if len(side) <= keep_head + keep_tail + SKIP_MIN:
            return "".join(side), "", ""
        cut = len(side) - keep_tail
        return "".join(side[:keep_head]), "".join(side[keep_head:cut]), "".join(side[cut:])

    a_head, a_skip, a_tail = split(app)
    q_head, q_skip, q_tail = split(queue)
    out = [
        Piece(kind, a_head, q_head),
        Piece("skipped", a_skip, q_skip),
        Piece(kind, a_tail, q_tail),
    ]
    return [p for p in out if p.app or p.queue]
