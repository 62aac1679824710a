"""Generated parity-log and archive lines (valid, truncated, garbage, huge numbers, odd
unicode, wrong types) through `verify parity`: every outcome is a report or one line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookshift.errors import InputError, OperationError
from hookshift.verify.parity import ParityOptions, run_parity
from hookshift.verify.report import FORMATS, render
from tests.verify.data import T0, body, message, nginx_line, rid

ODD_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"])
    | st.sampled_from(["\u2028", "\u0000", "\ufeff", "\u202e", "가", "😀", "\\", '"', "\n"]),
    max_size=40,
)
NUMBERISH = st.sampled_from(
    ["1e400", "-1e400", "NaN", "Infinity", "99999999999999999999999999", "-0", "", "0x10", "1.5"]
)
ODD_VALUE = st.one_of(
    ODD_TEXT,
    NUMBERISH,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def app_line(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 5))
    good = nginx_line(rid(n), T0 + n * 1000, body(n, userdata=draw(ODD_TEXT)))
    kind = draw(st.sampled_from(["valid", "field", "truncated", "garbage", "raw"]))
    if kind == "valid":
        return good.encode()
    if kind == "field":  # one field replaced by something odd
        record: dict[str, Any] = json.loads(good)
        record[draw(st.sampled_from(sorted(record)))] = draw(ODD_VALUE)
        return json.dumps(record, ensure_ascii=draw(st.booleans())).encode()
    if kind == "truncated":
        data = good.encode()
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "garbage":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    return draw(ODD_TEXT).replace("\n", " ").encode("utf-8", "surrogatepass")


@st.composite
def queue_line(draw: st.DrawFn) -> bytes:
    n = draw(st.integers(0, 5))
    good = message(f"m{n}", body(n), T0 + n * 1000 + 7, request_id=rid(n))
    kind = draw(st.sampled_from(["valid", "field", "truncated", "garbage"]))
    if kind == "valid":
        return json.dumps(good, ensure_ascii=False).encode()
    if kind == "field":
        path = draw(
            st.sampled_from([("MessageId",), ("Body",), ("Attributes", "SentTimestamp")])
            | st.sampled_from([("MessageAttributes", "nginx_request_id", "StringValue")])
        )
        target: dict[str, Any] = good
        for step in path[:-1]:
            target = target.setdefault(step, {})
        target[path[-1]] = draw(ODD_VALUE)
        return json.dumps(good).encode()
    data = json.dumps(good).encode()
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    return draw(st.binary(max_size=60)).replace(b"\n", b" ")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    app=st.lists(app_line(), min_size=1, max_size=8),
    queue=st.lists(queue_line(), min_size=1, max_size=8),
    key=st.sampled_from([None, "request_id", "sha256", "json:MSGID", "json:MSGID+json:RESULT"]),
)
def test_generated_lines_give_a_report_or_one_line(
    app: list[bytes], queue: list[bytes], key: str | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "p.log").write_bytes(b"\n".join(app) + b"\n")
        (root / "archive").mkdir()
        (root / "archive" / "seg-1.jsonl").write_bytes(b"\n".join(queue) + b"\n")
        try:
            report = run_parity(
                f"nginx:{root / 'p.log'}",
                f"archive:{root / 'archive'}",
                ParityOptions(key=key, grace_s=0, threads=1),
            )
        except (InputError, OperationError) as exc:
            assert "\n" not in str(exc) and str(exc)
            return
        for fmt in FORMATS:
            assert render(report, fmt)
        assert report.verdict in ("pass", "fail")
