"""Rare routing cases, each against the real nginx (both binaries): ``merge_slashes off`` (whose
setting is the default server's on a plain socket and the SNI server's on a TLS one), host
names that only ASCII lowercasing keeps apart, an option set in the middle of a regex, a
server-level ``rewrite`` that leaves the URI as it was (it still lets the request into an
``internal`` location), and ``$request_uri`` for a path outside ASCII. Every answer of a config
names its own line; nginx's answer to the vendor's POST must be where `match` says it ends."""

from __future__ import annotations

import random
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hookshift.errors import InputError
from hookshift.nginx.config import NginxConfig
from hookshift.nginx.matching import match, request_host, server_names
from hookshift.nginx.source import load_source
from hookshift.nginx.uri import request_uri_path, sent_path
from hookshift.procs import LOOPBACK, free_port
from tests.mirror.test_functional import Nginx
from tests.mirror.test_functional import any_nginx as any_nginx  # both binaries, as there
from tests.nginx.oracle import serve

pytestmark = pytest.mark.e2e  # starts nginx


def _post(port: int, target: str, host: str, tls: ssl.SSLContext | None = None) -> str:
    """nginx's answer to a POST of `target` (sent byte for byte, as a vendor's client would:
    http.client would refuse or rewrite some of these paths): ``L<n>``, else the status."""
    conn: socket.socket = socket.create_connection((LOOPBACK, port), timeout=5)
    if tls is not None:
        conn = tls.wrap_socket(conn, server_hostname=host)
    with conn:
        conn.sendall(
            f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n{}".encode()
        )
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    text = body.decode(errors="replace")
    return text if re.fullmatch(r"L\d+", text) else head.split(b" ")[1].decode()


def _said(config: NginxConfig, path: str, host: str, port: int) -> str:
    """Where `match` says the POST ends, in `_post`'s terms."""
    end = match(config, path, host=host, listen=f"{LOOPBACK}:{port}", for_app=False).route.end
    if end is not None and end.name == "return" and end.args[:1] == ("200",):
        return end.args[1]
    return "404" if end is not None and end.name == "internal" else f"no line ({end})"


def _running(nginx: Nginx, prefix: Path, lines: list[str]) -> Iterator[tuple[NginxConfig, int]]:
    """nginx on `lines` (``PORT`` is its free port), with hookshift's reading of the config."""
    (prefix / "html").mkdir()
    port = free_port()
    http = [f"root {prefix}/html;", *(line.replace("PORT", str(port)) for line in lines)]
    for config_path, _ in serve(nginx[0], prefix, port, http):
        yield load_source(config_path).config, port


def _slash_server(name: str, listen: str = "", settings: str = "") -> list[str]:
    return [
        f"server {{ listen {LOOPBACK}:PORT{listen}; server_name {name}; {settings}",
        '    location / { return 200 "L?"; }',
        '    location /hooks/callback { return 200 "L?"; }',
        '    location /hooks//callback { return 200 "L?"; }',
        "}",
    ]


SLASHED = (
    "/hooks/callback",
    "/hooks//callback",
    "/hooks///callback",
    "//hooks/callback",
    "/hooks/x/..//callback",
    "/hooks//x/../callback",
    "/hooks/x//../callback",
    "/hooks/.//callback",
    "/hooks/%2F/callback",
    "/hooks/%2fcallback",
)


@pytest.mark.parametrize("default_off", [True, False])
def test_merge_slashes_is_the_default_servers_on_a_plain_socket(
    any_nginx: Nginx, tmp_path: Path, default_off: bool
) -> None:
    """nginx normalises the path as it reads the request line, before the Host header: the
    default server's ``merge_slashes`` decides for every server of the socket, and a named
    server's own setting has no effect."""
    off = "merge_slashes off;"
    lines = [
        *_slash_server("default.test", " default_server", off if default_off else ""),
        *_slash_server("named.test", "", "" if default_off else off),
        *_slash_server("plain.test"),
    ]
    for config, port in _running(any_nginx, tmp_path, lines):
        mismatches = [
            (host, path, said, got)
            for host in ("default.test", "named.test", "plain.test")
            for path in SLASHED
            if (said := _said(config, path, host, port)) != (got := _post(port, path, host))
        ]
        assert mismatches == []


def test_a_server_whose_sockets_disagree_is_planned_per_socket(
    any_nginx: Nginx, tmp_path: Path
) -> None:
    """A server on two sockets whose default servers set ``merge_slashes`` differently routes
    a doubled slash two ways: without --listen the plan is refused in one line, with it each
    socket's route is nginx's."""
    other = free_port()
    lines = [
        *_slash_server("off.test", " default_server", "merge_slashes off;"),
        f"server {{ listen {LOOPBACK}:{other} default_server; return 418; }}",
        f"server {{ listen {LOOPBACK}:PORT; listen {LOOPBACK}:{other}; server_name both.test;",
        '    location / { return 200 "L?"; }',
        '    location /hooks/callback { return 200 "L?"; }',
        "}",
    ]
    path = "/hooks//callback"
    for config, port in _running(any_nginx, tmp_path, lines):
        with pytest.raises(InputError, match=f"merges the repeated slashes of {path} on"):
            match(config, path, host="both.test", for_app=False)
        answers = {_post(at, path, "both.test") for at in (port, other)}
        assert len(answers) == 2  # nginx itself answers differently on each socket
        for at in (port, other):
            assert _said(config, path, "both.test", at) == _post(at, path, "both.test")


def test_merge_slashes_is_the_sni_servers_on_a_tls_socket(
    any_nginx: Nginx, tmp_path: Path, ca: trustme.CA
) -> None:
    """On a TLS socket the server the vendor's SNI names is chosen before the request line is
    read: its own ``merge_slashes`` applies, whatever the default server says."""
    names = ("default.test", "off.test", "on.test")
    ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
    pem = tmp_path / "tls.pem"
    lines = [
        f"ssl_certificate {pem}; ssl_certificate_key {pem};",
        *_slash_server("default.test", " ssl default_server", "merge_slashes off;"),
        *_slash_server("off.test", " ssl", "merge_slashes off;"),
        *_slash_server("on.test", " ssl"),
    ]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    for config, port in _running(any_nginx, tmp_path, lines):
        mismatches = [
            (host, path, said, got)
            for host in names
            for path in SLASHED
            if (said := _said(config, path, host, port)) != (got := _post(port, path, host, client))
        ]
        assert mismatches == []


def test_the_path_keeps_its_slashes_as_nginx_does(any_nginx: Nginx, tmp_path: Path) -> None:
    """``$uri`` from nginx itself for generated paths of slashes, dots and escapes, with
    ``merge_slashes`` on and off; nginx's 400 is hookshift's refusal."""
    rng = random.Random(20261207)
    atoms = ("/", "//", "a", ".", "..", "%2F", "%2f", "%2E", "%2e%2E", "/./", "/../", "%25")
    paths = sorted({"/" + "".join(rng.choices(atoms, k=rng.randint(1, 6))) for _ in range(300)})
    lines = [
        f"server {{ listen {LOOPBACK}:PORT default_server; server_name on.test;",
        '    location / { return 200 "[$uri]"; } }',
        f"server {{ listen {LOOPBACK}:PORT; server_name off.test; merge_slashes off;",
        '    location / { return 200 "[$uri]"; } }',
        # the Host does not choose the setting: a socket of its own for `off`
        f"server {{ listen {LOOPBACK}:PORT2 default_server; merge_slashes off;",
        '    location / { return 200 "[$uri]"; } }',
    ]
    other = free_port()
    lines = [line.replace("PORT2", str(other)) for line in lines]
    for _, port in _running(any_nginx, tmp_path, lines):
        mismatches = []
        for path in paths:
            for merge, at in ((True, port), (False, other)):
                got = _uri(at, path)
                try:
                    said = request_uri_path(path, merge_slashes=merge)
                except InputError as exc:
                    said = "400" if "400 Bad Request" in str(exc) else str(exc)
                if got != said:
                    mismatches.append((path, merge, said, got))
        assert mismatches == [], mismatches[:10]


def _uri(port: int, path: str) -> str:
    """nginx's ``$uri`` for `path` (the echo location answers ``[$uri]``), else its status."""
    with socket.create_connection((LOOPBACK, port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ")[1].decode()
    return body.decode()[1:-1] if status == "200" else status


def test_host_names_are_lowercased_in_ascii_only(any_nginx: Nginx, tmp_path: Path) -> None:
    """nginx lowercases a server_name and the Host with ``ngx_strlow`` (A-Z): a name written
    with the Kelvin sign (U+212A) is not kelvin.test, which the default server answers."""
    lines = [
        f"server {{ listen {LOOPBACK}:PORT default_server; server_name default.test;",
        '    location / { return 200 "L?"; } }',
        f"server {{ listen {LOOPBACK}:PORT; server_name \u212aelvin.test;",
        '    location / { return 200 "L?"; } }',
    ]
    for config, port in _running(any_nginx, tmp_path, lines):
        for host in ("kelvin.test", "KELVIN.test", "default.test"):
            assert _said(config, "/cb", host, port) == _post(port, "/cb", host), host


def test_only_ascii_letters_are_lowercased_in_names(tmp_path: Path) -> None:
    """A Host outside ASCII keeps its other letters as nginx 1.22 compares them (1.31 answers
    400 to it: a vendor sends the name's xn-- form)."""
    assert request_host("ÄPFEL.Test:8443") == "Äpfel.test"
    path = tmp_path / "nginx.conf"
    path.write_text("events {}\nhttp { server { server_name \u212aelvin.TEST Äpfel.test; } }\n")
    config = load_source(path).config
    assert server_names(config.servers()[0], config) == ["\u212aelvin.test", "Äpfel.test"]


def test_an_option_in_the_middle_of_a_regex(any_nginx: Nginx, tmp_path: Path) -> None:
    """``(?i)`` after a pattern's start holds for the rest of its group and for the group's
    later alternatives; ``(?-i)`` turns ``~*``'s caselessness off again."""
    lines = [
        f"server {{ listen {LOOPBACK}:PORT; server_name r.test;",
        '    location / { return 200 "L?"; }',
        '    location ~ ^/a(?i)b { return 200 "L?"; }',
        '    location ~ ^/x(?i)y|^/q { return 200 "L?"; }',
        '    location ~ ^/m((?i)n|o)p { return 200 "L?"; }',
        '    location ~* ^/r(?-i)s(?i)t { return 200 "L?"; }',
        "    location ~ ^/(?<v>v\\d)(?i)/cb$ {",
        "        rewrite ^/(?<v>v\\d)(?i)/CB$ /w/$v last;",
        '        return 200 "L?"; }',
        '    location /w/v1 { return 200 "L?"; }',
        '    location ~ "^/[(?i)]z(?i)z" { return 200 "L?"; }',
        '    location ~ "^/g(?:a|(?i)b)c$" { return 200 "L?"; }',
        "}",
    ]
    paths = ("/aB", "/Ab", "/xY", "/XY", "/Q", "/mOp", "/mnP", "/RsT", "/rSt", "/v1/Cb")
    for config, port in _running(any_nginx, tmp_path, lines):
        for path in (*paths, "/V1/cb", "/(zZ", "/zZ", "/gBc", "/gBC", "/gAc"):
            assert _said(config, path, "r.test", port) == _post(port, path, "r.test"), path


def test_a_server_rewrite_that_keeps_the_uri_lets_it_into_an_internal_location(
    any_nginx: Nginx, tmp_path: Path
) -> None:
    """nginx marks a request its own redirect once any rewrite matches, even one to the same
    URI, with any flag or none; only a rewrite that does not match leaves it the client's."""
    rewrites = (
        "rewrite ^/hooks/(.*)$ /hooks/$1;",
        "rewrite ^/hooks/ $uri;",
        "rewrite ^/hooks/ /hooks/cb break;",
        "rewrite ^/hooks/ /hooks/cb last;",
        "if ($request_method = POST) { rewrite ^ $uri; }",
        "rewrite ^/nomatch /x;",
    )
    lines = []
    for n, rewrite in enumerate(rewrites):
        lines += [
            f"server {{ listen {LOOPBACK}:PORT; server_name s{n}.test; {rewrite}",
            '    location /hooks/ { internal; return 200 "L?"; } }',
        ]
    for config, port in _running(any_nginx, tmp_path, lines):
        answers = [_post(port, "/hooks/cb", f"s{n}.test") for n in range(len(rewrites))]
        said = [_said(config, "/hooks/cb", f"s{n}.test", port) for n in range(len(rewrites))]
        assert said == answers
        assert answers[-1] == "404" and answers[0] != "404"


def test_request_uri_is_taken_as_sent_escaped(any_nginx: Nginx, tmp_path: Path) -> None:
    """A path outside ASCII reaches ``$request_uri`` escaped from most HTTP libraries: a
    rewrite to ``/app$request_uri`` and an ``if`` on it are judged on that form, and the plan
    says where the raw UTF-8 form (curl's) would go instead."""
    lines = [
        f"server {{ listen {LOOPBACK}:PORT; server_name u.test;",
        '    location / { return 200 "L?"; }',
        "    location /r/ { rewrite ^ /app$request_uri last; }",
        '    location /app/r/콜 { return 200 "L?"; }',
        '    location /app/r/% { return 200 "L?"; }',
        "    location /i/ {",
        '        if ($request_uri ~ "^/i/%EC") { return 200 "L?"; }',
        '        return 200 "L?"; }',
        '    location /same/ { return 200 "L?"; }',
        "}",
    ]
    for config, port in _running(any_nginx, tmp_path, lines):
        for path in ("/r/콜백", "/i/콜백", "/same/콜백"):
            assert _said(config, path, "u.test", port) == _post(port, sent_path(path), "u.test")
            found = match(config, path, host="u.test", listen=f"{LOOPBACK}:{port}", for_app=False)
            said_raw = [i for i in found.info if "as raw UTF-8" in i]
            if path == "/same/콜백":
                assert said_raw == []  # $request_uri plays no part: nothing to say
            else:
                raw_answer = _post(port, path, "u.test")
                assert len(said_raw) == 1 and f"return 200 {raw_answer}`" in said_raw[0]


def test_a_regex_locations_captures_reach_its_try_files_and_rewrites(
    any_nginx: Nginx, tmp_path: Path
) -> None:
    """``$1`` in a ``try_files`` is the regex location's group (nginx keeps the groups of the
    last regex that matched); a ``rewrite``'s own regex replaces them, even one without groups;
    a named group stays a variable; ``$10`` is ``$1`` and a 0."""
    lines = [
        f"server {{ listen {LOOPBACK}:PORT; server_name c.test;",
        '    location / { return 200 "L?"; }',
        '    location /app/ { return 200 "L?"; }',
        '    location /app/cb { return 200 "L?"; }',
        '    location /app/cb0 { return 200 "L?"; }',
        "    location ~ ^/t/(.*)$ { try_files /nonexistent /app/$1; }",
        "    location ~ ^/t0/(.*)$ { try_files /nonexistent /app/$10; }",
        "    location ~ ^/n/(?<rest>.*)$ { try_files /nonexistent /app/$rest; }",
        "    location ~ ^/r/(.*)$ { rewrite ^ /app/$1 last; }",
        "    location ~ ^/rn/(?<rest>.*)$ { rewrite ^ /app/$rest last; }",
        "    location ~ ^/b/(.*)$ { rewrite ^/b/(c)b$ /b/$1 break; try_files /no /app/$1; }",
        "    location /p/ { location ~ ^/p/(.*)$ { try_files /nonexistent /app/$1; } }",
        "}",
    ]
    for config, port in _running(any_nginx, tmp_path, lines):
        for path in ("/t/cb", "/t0/cb", "/n/cb", "/r/cb", "/rn/cb", "/b/cb", "/p/cb"):
            assert _said(config, path, "c.test", port) == _post(port, path, "c.test"), path
