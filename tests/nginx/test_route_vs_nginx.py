"""The route agrees with the real nginx on generated servers: hundreds of combinations of
``return``, ``error_page`` (named and URI, ``recursive_error_pages``), ``try_files``,
``rewrite`` (with and without a flag, to targets built from ``$request_uri``), ``if`` on
the method, the URI and the request's URI, ``allow``/``deny``, ``limit_except`` and
``internal``, at server and location level, and servers where no location takes the
callback. Every answer the config can give
names its own line; nginx's answer to a POST of the callback must be the one the route ends
in, or, where nginx answers by itself (an error page, a redirect cycle), the route must not
end in a line."""

from __future__ import annotations

import http.client
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.config import Directive, NginxConfig, load
from hookshift.nginx.route import follow
from hookshift.nginx.source import load_source
from hookshift.procs import LOOPBACK, free_port
from tests.mirror.test_functional import Nginx
from tests.mirror.test_functional import any_nginx as any_nginx  # both binaries, as there
from tests.nginx.oracle import serve

pytestmark = pytest.mark.e2e  # starts nginx

SERVERS = 900
CALLBACK = "/cb/x"
URIS = ("/cb/x", "/z/y", "/q")
CODES = ("404", "418", "403")
LOCATIONS = ("/cb/", "= /cb/x", "~ ^/z/", "/z/", "^~ /cb/x")
ANSWER = 'return 200 "L?";'


def _location_lines(rng: random.Random) -> list[str]:
    pool: list[Callable[[], str]] = [
        lambda: ANSWER,
        lambda: ANSWER,
        lambda: 'if ($request_method = GET) { return 200 "L?"; }',
        lambda: f"return {rng.choice(CODES)};",
        lambda: f"error_page {rng.choice(CODES)} {rng.choice(('@a', '@b', *URIS))};",
        lambda: f"try_files /nonexistent {rng.choice(('@a', '@b', '=404', '=418', *URIS))};",
        lambda: f"rewrite ^ {rng.choice(URIS)} {rng.choice(('last', 'break'))};",
        lambda: f"if ($request_method = POST) {{ return {rng.choice(CODES)}; }}",
        lambda: 'if ($request_method = GET) { return 200 "L?"; }',
        lambda: "recursive_error_pages on;",
        lambda: 'if ($uri ~ ^/z/) { return 200 "L?"; }',
        lambda: f"if ($request_uri ~ ^/cb) {{ return {rng.choice(CODES)}; }}",
        lambda: "if ($uri = /cb/x) { rewrite ^ /z/y last; }",
        lambda: 'if ($request_uri != /cb/x) { return 200 "L?"; }',
        lambda: f"rewrite ^/cb/(.*)$ /z/$1 {rng.choice(('last', 'break'))};",
        lambda: "rewrite ^/z/(.*)$ /cb/$1 last;",
        lambda: f"try_files $uri $uri/ {rng.choice(('@a', '=404', *URIS))};",
        # without a flag: the location is chosen again once the rewrite phase ends
        lambda: f"rewrite ^ {rng.choice(URIS)};",
        lambda: "rewrite ^/cb/(.*)$ /z/$1;",
        lambda: "try_files /nonexistent /z$request_uri;",
        lambda: f"rewrite ^ /z$request_uri {rng.choice(('last', ''))};",
        # the access phase (after the rewrite phase, before try_files) and `internal`
        lambda: rng.choice(
            ("deny all;", "limit_except GET { deny all; }", f"allow {LOOPBACK}; deny all;")
        ),
        lambda: "internal;",
        # a condition's own parentheses at its end, bare and quoted
        lambda: f"if ($request_uri ~* ^/(cb|q)) {{ return {rng.choice(CODES)}; }}",
        lambda: 'if ($uri ~ "^/(z)/") { return 200 "L?"; }',
    ]
    return _once_each(rng.choice(pool)() for _ in range(rng.randint(0, 3)))


def _once_each(lines: Iterator[str]) -> list[str]:
    """Drop a second ``try_files``, ``recursive_error_pages``, ``limit_except`` or
    ``internal``: nginx refuses duplicates."""
    kept: list[str] = []
    for line in lines:
        word = line.split()[0].rstrip(";")
        once = ("try_files", "recursive_error_pages", "limit_except", "internal")
        if word in once and any(k.startswith(word) for k in kept):
            continue
        kept.append(line)
    return kept


def _server_lines(rng: random.Random) -> list[str]:
    pool: list[Callable[[], str]] = [
        lambda: f"error_page {rng.choice(CODES)} {rng.choice(('@a', *URIS))};",
        lambda: "if ($request_method = POST) { return 418; }",
        lambda: "rewrite ^/cb/(.*)$ /z/$1 last;",
        lambda: f"return {rng.choice(CODES)};",
        lambda: "recursive_error_pages on;",
    ]
    return _once_each(rng.choice(pool)() for _ in range(rng.randint(0, 2)))


def _server(rng: random.Random, n: int, port: int) -> list[str]:
    lines = [f"server {{ listen {LOOPBACK}:{port}; server_name s{n}.test;"]
    lines += [f"    {line}" for line in _server_lines(rng)]
    chosen = [loc for loc in LOCATIONS if rng.random() < 0.4]
    catch_all = ["/"]
    if n % 3 == 0:
        # no location takes the callback: the server's own try_files applies (only there)
        catch_all, chosen = [], [loc for loc in chosen if "/cb" not in loc]
        if rng.random() < 0.8:
            fallback = rng.choice(("@a", "=404", "=418", *URIS))
            lines.append(f"    try_files /nonexistent {fallback};")
    for spec in (*catch_all, *chosen, "@a", "@b"):
        lines.append(f"    location {spec} {{")
        lines += [f"        {line}" for line in _location_lines(rng)]
        lines.append("    }")
    lines.append("}")
    return lines


@pytest.fixture
def generated(any_nginx: Nginx, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    nginx_bin, _ = any_nginx
    (tmp_path / "html").mkdir()
    port = free_port()
    rng = random.Random(20261206)
    lines = [f"root {tmp_path}/html;"]
    for n in range(SERVERS):
        lines += _server(rng, n, port)
    yield from serve(nginx_bin, tmp_path, port, lines)


def _routed(config: NginxConfig, server: Directive, http_block: Directive) -> str:
    """The answer the route says nginx gives: ``L<n>`` (a line), ``500`` (a redirect cycle)
    or ``itself`` (nginx's own page for an error code)."""
    try:
        route = follow(config, server, CALLBACK, http_block)
    except InputError as exc:
        assert "redirected inside nginx" in str(exc), exc
        return "500"
    end = route.end if route is not None else None
    if end is not None and end.name == "return" and end.args[:1] == ("200",):
        return end.args[1]
    return "itself"


def _answered(port: int, host: str) -> str:
    """nginx's answer to a POST of the callback, in the same terms."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    conn.request("POST", CALLBACK, body=b'{"RESULT":"7000"}', headers={"Host": host})
    reply = conn.getresponse()
    body = reply.read().decode(errors="replace")
    if re.fullmatch(r"L\d+", body):
        return body
    return "500" if reply.status == 500 else "itself"


def test_generated_servers_route_where_nginx_answers(generated: tuple[Path, int]) -> None:
    """With both readers' trees: crossplane's (what plan routes on) and the byte lexer's
    (doctor's when crossplane cannot parse a config), which keeps an ``if``'s parentheses."""
    config_path, port = generated
    trees = [load(config_path), load_source(config_path).config]
    mismatches = []
    kinds: Counter[str] = Counter()
    for servers in zip(*(tree.servers() for tree in trees), strict=True):
        host = servers[0].children("server_name")[0].args[0]
        got = _answered(port, host)
        kinds[got[0]] += 1
        for tree, server in zip(trees, servers, strict=True):
            said = _routed(tree, server, tree.http_blocks()[0])
            if got != said:
                mismatches.append((host, said, got))
    assert mismatches == [], mismatches[:10]
    # the generator reaches each kind of answer often enough to mean something
    assert kinds["L"] > SERVERS / 15 and kinds["i"] > SERVERS / 10 and kinds["5"] > 0, kinds
