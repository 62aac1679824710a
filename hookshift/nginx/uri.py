"""The URI nginx matches locations against (``$uri``) for the path a client sends.

nginx decodes ``%XX`` escapes, merges repeated slashes and resolves ``.`` and ``..`` segments
before it selects a location (``merge_slashes on``, the default): a vendor that calls
``/hooks%2Fcb`` or ``//hooks/cb`` reaches ``location /hooks/cb``. A decoded ``/`` or ``.``
counts like a literal one; a decoded ``%`` is not decoded again. With ``merge_slashes off``
each empty segment stays (``/hooks//cb`` is not ``/hooks/cb``), and ``..`` removes one as it
removes any other.
"""

from __future__ import annotations

import re

from hookshift.errors import InputError

_HEX = frozenset("0123456789abcdefABCDEF")


def _bad(path: str, why: str) -> InputError:
    return InputError(
        f"nginx answers 400 Bad Request to the path {path}: {why}",
        fix="pass the path the vendor calls, e.g. --path /callback",
    )


def _decode(path: str) -> bytes:
    raw = path.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] != ord("%"):
            out.append(raw[i])
            i += 1
            continue
        digits = raw[i + 1 : i + 3].decode("ascii", "replace")
        if len(digits) < 2 or not set(digits) <= _HEX:
            raise _bad(path, f"'%' at offset {i} is not followed by two hex digits")
        value = int(digits, 16)
        if value == 0:
            raise _bad(path, "it holds %00")
        out.append(value)
        i += 3
    return bytes(out)


def raw_path(target: str) -> str:
    """The path of a request target as the client sends it: up to its query string (``?``)
    or fragment (``#``). Unlike ``urlsplit``, a leading ``//`` stays part of the path."""
    return target.split("?", 1)[0].split("#", 1)[0]


def request_uri_path(path: str, merge_slashes: bool = True) -> str:
    """``$uri`` for a request whose path (without its query string) is `path`, under
    nginx's ``merge_slashes`` setting for the request.

    Raises `InputError` where nginx itself answers 400: a bad or NUL escape, or ``..`` above
    the root.
    """
    decoded = _decode(path).decode("utf-8", "surrogateescape")
    segments: list[str] = []
    parts = decoded.split("/")[1:]
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if part == "..":
            if not segments:
                raise _bad(path, "its '..' climbs above the root")
            segments.pop()
            if last:
                segments.append("")
        elif part == ".":
            if last:
                segments.append("")
        elif part or last or not merge_slashes:
            segments.append(part)
    return "/" + "/".join(segments)


def sent_path(path: str) -> str:
    """`path` as an HTTP client puts it on the request line, nginx's ``$request_uri``: each
    byte outside printable ASCII escaped (``/hooks/콜`` -> ``/hooks/%EC%BD%9C``, upper-case
    hex, as browsers' URL parsers and the common HTTP libraries write it), the rest as given.
    nginx answers 400 to a space or control character sent as it is; a letter outside ASCII
    may also arrive as its raw UTF-8 bytes (curl sends it so), which the caller must weigh."""
    raw = path.encode("utf-8", "surrogateescape")
    return "".join(f"%{b:02X}" if b <= 0x20 or b >= 0x7F else chr(b) for b in raw)


def request_uri_pattern(path: str) -> str:
    """A regex for `path` as a client sends it at the start of ``$request_uri``.

    A letter outside ASCII reaches nginx either as its UTF-8 bytes or escaped (``%EC%BD%9C``,
    in upper or lower case), depending on the vendor's HTTP library, whichever form `path`
    is given in; both are matched. An escape of an ASCII byte is matched in either case;
    everything else as given.
    """
    raw = path.encode("utf-8", "surrogateescape")
    out: list[str] = []
    letters = bytearray()  # the bytes of a run of non-ASCII letters

    def end_letters() -> None:
        if letters:
            as_text = letters.decode("utf-8", "surrogateescape")
            escaped = "".join(f"%{_either_case(f'{b:02X}')}" for b in letters)
            out.append(f"(?:{re.escape(as_text)}|{escaped})")
            letters.clear()

    i = 0
    while i < len(raw):
        digits = raw[i + 1 : i + 3].decode("ascii", "replace")
        if raw[i] == ord("%") and len(digits) == 2 and set(digits) <= _HEX:
            if int(digits, 16) >= 0x80:
                letters.append(int(digits, 16))
            else:
                end_letters()
                out.append("%" + _either_case(digits.upper()))
            i += 3
        elif raw[i] >= 0x80:
            letters.append(raw[i])
            i += 1
        else:
            end_letters()
            out.append(re.escape(chr(raw[i])))
            i += 1
    end_letters()
    return "".join(out)


def _either_case(hex_digits: str) -> str:
    return "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in hex_digits)
