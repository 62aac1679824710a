"""Known-answer data for the parity tests: parity-log lines and SQS Messages as the real parts
write them (nginx's ``escape=json`` log format, the AWS CLI's Message objects)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

T0 = 1795852500_000  # 2026-11-28T07:55:00Z in ms

TRICKY = ["order=A-1001&coupon=50%+off", "배송 안내: 주문 #1002 출고 완료", "a=b=c; x+y; 100%"]


def body(n: int, *, result: str = "7000", userdata: str | None = None, **extra: str) -> str:
    """A Bizppurio result callback (every value a string), compact JSON like the vendor's."""
    obj = {
        "DEVICE": "AT",
        "CMSGID": f"261128091500{n:03d}at0031servab",
        "MSGID": f"1128at_KA12{n:016d}",
        "PHONE": f"010{12345000 + n:08d}",
        "MEDIA": "KAT",
        "UNIXTIME": str(T0 // 1000 + n),
        "RESULT": result,
        "USERDATA": userdata if userdata is not None else TRICKY[n % len(TRICKY)],
        "WAPINFO": "KAO",
        **extra,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def rid(n: int) -> str:
    return f"{n:032x}"


def nginx_line(
    request_id: str,
    t_ms: int,
    payload: str,
    *,
    upstream_status: str = "200",
    status: str = "200",
    content_type: str = "application/json",
) -> str:
    """One line of the hookshift_parity log_format (docs/contracts.md §1)."""
    record = {
        "v": 1,
        "request_id": request_id,
        "msec": f"{t_ms / 1000:.3f}",
        "method": "POST",
        "uri": "/callback",
        "host": "hooks.example.test",
        "status": status,
        "upstream_status": upstream_status,
        "request_length": str(len(payload.encode())),
        "content_type": content_type,
        "mirror": "/_hookshift_mirror",
        "body": payload,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def message(
    message_id: str,
    payload: str,
    sent_ms: int | None,
    *,
    request_id: str | None = None,
    replay: str | None = None,
) -> dict[str, Any]:
    """An SQS Message as the AWS CLI prints it."""
    attrs: dict[str, Any] = {}
    if request_id is not None:
        attrs["nginx_request_id"] = {"StringValue": request_id, "DataType": "String"}
    if replay is not None:
        attrs["hookshift_replay"] = {"StringValue": replay, "DataType": "String"}
    msg: dict[str, Any] = {"MessageId": message_id, "Body": payload}
    if sent_ms is not None:
        msg["Attributes"] = {"SentTimestamp": str(sent_ms)}
    if attrs:
        msg["MessageAttributes"] = attrs
    return msg


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_messages(path: Path, messages: list[dict[str, Any]]) -> Path:
    return write_lines(path, [json.dumps(m, ensure_ascii=False) for m in messages])
