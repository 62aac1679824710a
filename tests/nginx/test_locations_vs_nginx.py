"""Location selection agrees with the real nginx on generated servers: prefix, exact, ``^~``
and regular-expression locations (case-sensitive and not), nested ones, and request paths
with escapes (of letters, slashes and dots), doubled slashes and dot segments, some above the
root (nginx answers those 400, and the matcher refuses them). Every location answers with its
own line; nginx's answer must be the location `nginx.matching.match` chooses. Some locations
whose name ends in ``/`` pass the request to an app (a second server that answers with the
line the location names in a header): nginx redirects the path one ``/`` short of them (301)."""

from __future__ import annotations

import http.client
import random
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from hookshift.errors import InputError
from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.matching import match
from hookshift.nginx.source import load_source
from hookshift.procs import LOOPBACK, free_port
from tests.mirror.test_functional import Nginx
from tests.mirror.test_functional import any_nginx as any_nginx  # both binaries, as there
from tests.nginx.oracle import serve

pytestmark = pytest.mark.e2e  # starts nginx
SERVERS = 150
REQUESTS_PER_SERVER = 12
SEGMENTS = ("a", "b", "ab", "A", "x.png", "x.PNG", "cb", "콜백", "ä")
# nginx's PCRE matches bytes: `.` is one byte of a Korean syllable's three, and \w, \b and
# a caseless match know ASCII letters only
REGEXES = (
    "^/a", "\\.png$", "/b$", "^/a/.*b", "^/cb", "[A-Z]", "^/ab?/", "^/\\w+$", "^/..$",
    "^/콜", '"^/.{3}/"', "\\bb\\b", "Ä",
    # POSIX classes, and `{,n}`: literal to nginx's PCRE2, a quantifier to Python
    "^/[[:alpha:]]+$", '"^/a{,2}$"', '"^/a{,2}"', "[[:punct:]]",
)  # fmt: skip
ANSWER = 'return 200 "L?";'


def _path(rng: random.Random, segments: int, slash: bool = False) -> str:
    path = "/" + "/".join(rng.choice(SEGMENTS) for _ in range(segments))
    return path + "/" if slash else path


def _answer(rng: random.Random, spec: str, app_port: int) -> list[str]:
    """The location's answer: its own line, or (for some named with a final ``/``) the app's
    answer with that line, so that nginx's redirect to such a location is exercised."""
    if spec.endswith("/") and not spec.startswith("~") and rng.random() < 0.5:
        return [
            '    proxy_set_header X-Location "L?";',
            f"    proxy_pass http://{LOOPBACK}:{app_port};",
        ]
    return [f"    {ANSWER}"]


def _locations(rng: random.Random, depth: int, parent: str | None, app_port: int) -> list[str]:
    """Location blocks (as lines); under a prefix `parent`, prefixes extend it."""
    lines: list[str] = []
    seen: set[str] = set()
    for _ in range(rng.randint(1, 4 if depth == 0 else 2)):
        kind = rng.choice(("prefix", "prefix", "exact", "^~", "~", "~*"))
        base = parent if parent is not None else ""
        if kind in ("~", "~*"):
            spec = f"{kind} {rng.choice(REGEXES)}"
        else:
            path = base.rstrip("/") + _path(rng, rng.randint(1, 2), rng.random() < 0.4)
            spec = {"prefix": path, "exact": f"= {path}", "^~": f"^~ {path}"}[kind]
        key = spec.split()[-1] if kind in ("prefix", "^~") else spec
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"location {spec} {{")
        lines += _answer(rng, spec, app_port)
        if kind in ("prefix", "^~") and depth < 2 and rng.random() < 0.4:
            nested = _locations(rng, depth + 1, spec.split()[-1], app_port)
            lines += [f"    {line}" for line in nested]
        lines.append("}")
    return lines


def _request(rng: random.Random, known: list[str]) -> str:
    """A path near one of the server's own location paths (or anywhere), then maybe bent the
    way a client may send it: an escape, a doubled slash, a dot segment."""
    if known and rng.random() < 0.7:
        path = rng.choice(known)
        if rng.random() < 0.6:
            path = path.rstrip("/") + _path(rng, 1, rng.random() < 0.2)
        elif rng.random() < 0.3:
            path = path[:-1] or "/"
    else:
        path = _path(rng, rng.randint(1, 3), rng.random() < 0.2)
    twist = rng.random()
    if twist < 0.1:
        path = path.replace("/", "//", 1)
    elif twist < 0.2:
        path = path.replace("a", rng.choice(("%61", "%41")), 1)
    elif twist < 0.3:
        path = "/b/.." + path
    elif twist < 0.4:
        path = path.replace("/", "/./", 1)
    elif twist < 0.45:
        path = path.replace("/", "%2F", 2).replace("%2F", "/", 1)  # an escaped slash inside
    elif twist < 0.5:
        path = path.replace("/", "/%2e/", 1)
    elif twist < 0.55:
        path = path + rng.choice(("/..", "/.", "%2E%2E"))
    elif twist < 0.58:
        path = "/.." + path  # above the root: nginx answers 400
    return path


def _paths(config: NginxConfig, server: Directive) -> list[str]:
    """The paths of the server's prefix, exact and ``^~`` locations, nested ones too."""
    found: list[str] = []
    blocks = [server]
    while blocks:
        for d in config.effective_children(blocks.pop(), "location"):
            if d.args and d.args[-1].startswith("/") and d.args[0] not in ("~", "~*"):
                found.append(d.args[-1])
            blocks.append(d)
    return found


@pytest.fixture
def generated(any_nginx: Nginx, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    nginx_bin, _ = any_nginx
    port, app_port = free_port(), free_port()
    rng = random.Random(20261206)
    lines = [f"server {{ listen {LOOPBACK}:{app_port}; return 200 $http_x_location; }}"]
    for n in range(SERVERS):
        lines.append(f"server {{ listen {LOOPBACK}:{port}; server_name s{n}.test;")
        lines += [f"    {line}" for line in _locations(rng, 0, None, app_port)]
        lines += ["    location / {", f"        {ANSWER}", "    }"]
        lines.append("}")
    yield from serve(nginx_bin, tmp_path, port, lines)


def _answered(port: int, host: str, uri: str) -> str:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    conn.request("POST", uri, body=b"{}", headers={"Host": host})
    reply = conn.getresponse()
    body = reply.read().decode(errors="replace")
    return str(reply.status) if reply.status in (301, 400) else body


def test_generated_locations_are_chosen_as_nginx_chooses(generated: tuple[Path, int]) -> None:
    config_path, port = generated
    config = load_source(config_path).config
    rng = random.Random(7)
    mismatches = []
    elsewhere = 0  # requests a location other than `location /` took
    redirected = 0
    for n, server in enumerate(config.servers()[1:]):
        host = f"s{n}.test"
        known = _paths(config, server)
        for _ in range(REQUESTS_PER_SERVER):
            # a vendor's client sends a path outside ASCII as UTF-8 escapes
            uri = quote(_request(rng, known), safe="/%.")
            try:
                chosen = match(config, uri, host=host, listen=f"{LOOPBACK}:{port}", for_app=False)
                said = f"L{chosen.location.line + 1}"  # its answer is the line after it
                elsewhere += tuple(chosen.location.args) != ("/",)
                if chosen.route is not None and chosen.route.redirects_to_slash:
                    said = "301"
                    redirected += 1
            except InputError as exc:
                # a path nginx itself refuses is refused, saying so
                said = "400" if "nginx answers 400 Bad Request" in str(exc) else f"refused: {exc}"
            got = _answered(port, host, uri)
            if got != said:
                mismatches.append((host, uri, said, got))
    assert mismatches == [], mismatches[:10]
    assert elsewhere > SERVERS * REQUESTS_PER_SERVER / 4  # the generator reaches them
    assert redirected > 10, redirected
