"""Follow a request through nginx's internal redirects to the location whose content handler
answers it: the place a ``mirror`` (which runs just before the content handler) must go.

nginx leaves the location it first selects when, in its order of phases:

- a ``rewrite ... last`` matches (location selection again; ``break`` stays; ``redirect``,
  ``permanent`` and a ``return`` answer the client);
- ``try_files`` ends in a named location (``@app``), a URI (selected again, server-level
  rewrites first) or ``=code`` (which ``error_page code`` may hand on);
- there is no content handler and the URI ends in ``/``: ``index`` redirects to the first index
  file (only followed where it reaches an app);
- the static handler answers 404, or a ``return CODE`` (in the server or the location)
  answers, and ``error_page`` hands the request on (once, unless ``recursive_error_pages``);
- no location takes the URI: the server's own ``try_files`` applies (no location inherits
  it), else the static handler's 404.

Files on disk cannot be known from the config: a callback is a POST to a path that is not a
file, so a ``try_files`` file check is taken to fail, except in a location that passes only
existing files to its app (the script that receives the callback is there); the route says
which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from hookshift.errors import InputError
from hookshift.nginx.config import Directive, NginxConfig
from hookshift.nginx.inheritance import effective
from hookshift.nginx.locations import (
    find_location,
    locate,
    location_regex,
    location_spec,
    named_location,
)
from hookshift.nginx.pcre import NginxMatch, compile_or_refuse
from hookshift.nginx.values import PASS_DIRECTIVES, if_condition

MAX_REDIRECTS = 10  # nginx: "rewrite or internal redirection cycle" after 10
OTHER_HANDLERS = (
    "content_by_lua",
    "content_by_lua_block",
    "content_by_lua_file",
    "js_content",
    "perl",
    "memcached_pass",
    "echo",
    "empty_gif",
    "stub_status",
)
# A location with one of these answers (or hands on) by itself: an index redirect into it
# leads somewhere other than the static file handler.
_NOT_STATIC = (*PASS_DIRECTIVES, *OTHER_HANDLERS, "try_files", "return", "rewrite")
_REDIRECT_SCHEMES = ("http://", "https://", "$scheme")
# Variables that take part in a URI's query string only: they never change the path.
_QUERY_VARS = ("args", "query_string", "is_args")


@dataclass(frozen=True)
class Hop:
    """One location on the way: the URI it saw and how the request got there (``via``)."""

    location: Directive
    parents: tuple[Directive, ...]
    uri: str
    via: str = ""
    method: str = "POST"  # an error_page to a URI on the way made it a GET


@dataclass(frozen=True)
class Route:
    """Where a request for `uri` in `server` ends: the hops, and the directive that answers
    (`end`: a ``*_pass``, another content handler, ``return``, ``try_files =code``; None when
    nginx's static file handler answers)."""

    server: Directive
    uri: str
    hops: tuple[Hop, ...]
    end: Directive | None
    assumptions: tuple[str, ...] = ()

    @property
    def final(self) -> Hop:
        return self.hops[-1]

    @property
    def as_get(self) -> bool:
        """The request reaches its last location as a GET (``error_page`` to a URI)."""
        return bool(self.hops) and self.final.method != "POST"

    @property
    def reaches_app(self) -> bool:
        return bool(self.hops) and self.end is not None and self.end.name in PASS_DIRECTIVES

    @property
    def redirects_to_slash(self) -> bool:
        """nginx answers with its own 301 to the URI with a ``/`` added (`end` is then the
        ``location`` named so, which passes requests on)."""
        return self.end is not None and self.end.name == "location"

    @property
    def answer(self) -> str:
        """How the request is answered, for messages."""
        if self.end is None:
            return "nginx's static file handler (files on disk)"
        if self.end.name == "internal":
            return (
                f"nginx's own 404: the location is `internal` ({self.end.where}), reached only "
                "by a redirect inside nginx, never by a client's request"
            )
        if self.redirects_to_slash:
            return (
                f"nginx's own 301 redirect to {self.final.uri}/ (the location's name ends in / "
                "and it passes requests on)"
            )
        return f"`{self.end.text}` ({self.end.where})"

    def describe(self) -> str:
        """``/callback -> location / (try_files) -> location @app``."""
        parts = [self.uri]
        if self.hops and self.hops[0].via:
            parts[0] += f" ({self.hops[0].via})"  # the server's own return, handed on
        for i, hop in enumerate(self.hops):
            label = f"location {location_spec(hop.location)}"
            previous = self.hops[i - 1].uri if i else self.uri
            if hop.uri != previous:
                label += f" as {hop.uri}"
            if i + 1 < len(self.hops):
                label += f" ({self.hops[i + 1].via})"
            parts.append(label)
        return " -> ".join(parts)


@dataclass(frozen=True)
class _Leave:
    """The request leaves a location: for `uri`, for a named location, or re-selected."""

    via: str
    uri: str
    named: str | None = None
    server_rewrites: bool = True
    # handed on by error_page without recursive_error_pages: nginx hands on no further error
    by_error_page: bool = False
    # error_page to a URI: nginx makes the request a GET (a named location keeps the method)
    as_get: bool = False


@dataclass(frozen=True)
class _Stay:
    """The request is answered in the location (by `end`), possibly with a rewritten URI."""

    end: Directive | None


@dataclass(frozen=True)
class _Captures:
    """What ``$1``... and a named capture (``$rest``) hold: nginx keeps the groups of the last
    regex that matched (the location's, then each ``rewrite``'s that matches), and each named
    group as a variable until a later regex sets it again."""

    last: NginxMatch | None = None
    named: tuple[tuple[str, str], ...] = ()

    def after(self, found: NginxMatch) -> _Captures:
        names = dict(self.named)
        names.update((name, found.group(name) or "") for name in found.groupindex)
        return _Captures(found, tuple(names.items()))


@dataclass(frozen=True)
class _Request:
    """What an ``if`` may test that the callback decides besides the URI: its method (a POST,
    until ``error_page`` to a URI makes it a GET) and the path as the vendor sent it (its
    query string, if the vendor adds one, is not known)."""

    method: str
    request_uri: str | None  # None: not known (any path a location takes)
    host: str | None = None  # $host: the Host the vendor sends, when known


def follow(
    config: NginxConfig,
    server: Directive,
    uri: str,
    http: Directive | None = None,
    request_uri: str | None = None,
    host: str | None = None,
) -> Route | None:
    """The route of a request for `uri` arriving at `server`; None when no location takes it.

    `http` (the server's enclosing block) lets ``error_page`` set at http level count;
    `request_uri` is the path as sent (escapes kept), for ``$request_uri`` (default `uri`);
    `host` is ``$host`` (the Host header as nginx keeps it: lowercase, no port), when known.
    Raises `InputError` on a redirect cycle, a hand-off to a location that does not exist, or
    a target that depends on something only known per request.
    """
    assumptions: list[str] = []
    hops: list[Hop] = []
    original = uri
    error_paged = False
    request = _Request("POST", request_uri if request_uri is not None else uri, host)
    # the request arrives: the server's rewrites run, then a location is chosen
    leave = _Leave("", uri)
    for _ in range(MAX_REDIRECTS + 1):
        uri = leave.uri
        if leave.named is not None:
            named = named_location(server, leave.named, config)
            if named is None:
                raise InputError(
                    f"{leave.via} hands {original} to {leave.named}, which this server lacks",
                    where=hops[-1].location.where if hops else server.where,
                    fix=f"add `location {leave.named} {{ ... }}` to the server or fix the hand-off",
                )
            found: tuple[Directive, tuple[Directive, ...]] | None = (named, ())
        else:
            if leave.server_rewrites:
                done = _server_rewrites(config, server, uri, assumptions, request)
                if done.rewrote is not None and not leave.via:
                    # nginx counts any rewrite that matched as its own redirect, even one that
                    # leaves the URI as it was: an `internal` location then lets it in
                    leave = replace(leave, via=f"the server's rewrite at {done.rewrote.where}")
                uri = done.uri
                if done.answer is not None:
                    levels = [server, *([http] if http else [])]
                    if done.inside is not None:
                        levels.insert(0, done.inside)
                    answered = _returned(config, levels, done.answer, uri, error_paged)
                    if answered is None:
                        return Route(server, original, tuple(hops), done.answer, tuple(assumptions))
                    error_paged = error_paged or answered.by_error_page
                    request = replace(request, method="GET") if answered.as_get else request
                    leave = answered
                    continue
            located = locate(server, uri, config)
            found = None if located is None else (located.location, located.parents)
            internal = _internal_only(config, found) if not hops and not leave.via else None
            if located is not None and (internal is not None or located.redirects):
                # nginx answers before the location's phases: 404 to a client's own request
                # for an internal location, else its 301 to the URI with a `/`; error_page may
                # hand either on (inside nginx, where `internal` lets the request in)
                hops.append(Hop(located.location, located.parents, uri, leave.via, request.method))
                levels = _levels(located.location, located.parents, server, http)
                code = "404" if internal is not None else "301"
                handed = _error_page(config, levels, code, uri, error_paged)
                if handed is None:
                    end = internal if internal is not None else located.location
                    return Route(server, original, tuple(hops), end, tuple(assumptions))
                error_paged = error_paged or handed.by_error_page
                request = replace(request, method="GET") if handed.as_get else request
                leave = handed
                continue
        if found is None and leave.named is None:
            away = _no_location(config, server, http, uri, assumptions, error_paged, request)
            if isinstance(away, _Stay):
                return Route(server, original, tuple(hops), away.end, tuple(assumptions))
            if away is not None:
                error_paged = error_paged or away.by_error_page
                request = replace(request, method="GET") if away.as_get else request
                leave = away
                continue
        if found is None:
            return None if not hops else Route(server, original, tuple(hops), None)
        location, parents = found
        hops.append(Hop(location, parents, uri, leave.via, request.method))
        step = _step(config, server, http, hops[-1], assumptions, error_paged, request)
        if isinstance(step, _Stay):
            return Route(server, original, tuple(hops), step.end, tuple(assumptions))
        error_paged = error_paged or step.by_error_page
        request = replace(request, method="GET") if step.as_get else request
        leave = step
    chain = " -> ".join(f"location {location_spec(h.location)}" for h in hops[:4])
    raise InputError(
        f"{original} is redirected inside nginx more than {MAX_REDIRECTS} times "
        f"({chain} -> ...): nginx answers it with 500",
        where=hops[0].location.where if hops else server.where,
        fix="break the redirect cycle in the config (nginx -T shows it), then run again",
    )


def server_takes(
    config: NginxConfig, server: Directive, uri: str, request_uri: str | None = None
) -> Directive | None:
    """The server-level ``return`` or ``rewrite`` that takes a POST for `uri` before any
    location is chosen (it answers it, or sends it to another URI); None when they leave it
    alone. Subrequests run them too: a ``mirror`` subrequest to an internal location is one.

    A subrequest keeps its main request's ``$request_uri``: `request_uri` is that path as the
    vendor sent it, or None when it is not known (a condition on it is then taken as false).
    """
    done = _server_rewrites(config, server, uri, [], _Request("POST", request_uri))
    if done.answer is not None:
        return done.answer
    if done.last is not None or done.uri != uri:
        levels = [done.inside, server] if done.inside is not None else [server]
        rewrites = [d for b in levels for d in config.effective_children(b, "rewrite")]
        return done.last or next((d for d in rewrites if _rewrite(d, uri, request_uri)), server)
    return None


def _server_rewrites(
    config: NginxConfig, server: Directive, uri: str, assumptions: list[str], request: _Request
) -> _Rewritten:
    """Run the server's own ``rewrite``/``return`` lines (before any location is chosen);
    there ``last`` stops them like ``break``."""
    return _rewrite_phase(config, config.effective_children(server), uri, assumptions, request)


@dataclass(frozen=True)
class _Rewritten:
    """The rewrite module's directives of one block, run: the URI they leave, the ``return``
    or redirecting ``rewrite`` that answers, the ``rewrite ... last`` that leaves, whether a
    ``break`` stopped them, the innermost ``if`` block whose condition held (its
    configuration serves the request from then on), the last ``rewrite`` without a flag
    that matched (``break`` forgets it, as nginx's own flag does), and the last ``rewrite``
    of any flag that matched (`rewrote`)."""

    uri: str
    answer: Directive | None = None
    last: Directive | None = None
    stopped: bool = False
    inside: Directive | None = None
    # a rewrite without a flag that matched: the location is chosen again once the phase ends
    changed: Directive | None = None
    # a rewrite that matched, even to the same URI: nginx then marks the request as its own
    # redirect, which an `internal` location lets in
    rewrote: Directive | None = None
    captures: _Captures = _Captures()


def _rewrite_phase(
    config: NginxConfig,
    directives: list[Directive],
    uri: str,
    assumptions: list[str],
    request: _Request,
    inside: Directive | None = None,
    rewrote: Directive | None = None,
    captures: _Captures = _Captures(),
) -> _Rewritten:
    """Run `directives` in order. An ``if`` whose condition holds runs its block, then the
    directives after it (nginx compiles both into one program)."""
    changed: Directive | None = None
    for d in directives:
        if d.name == "if" and d.block is not None:
            if not _holds(d, assumptions, request, uri):
                continue
            children = config.effective_children(d)
            done = _rewrite_phase(config, children, uri, assumptions, request, d, rewrote, captures)
            if done.answer or done.last or done.stopped:
                return done if done.answer or done.last else replace(done, changed=None)
            uri, inside, changed = done.uri, done.inside, done.changed or changed
            rewrote, captures = done.rewrote, done.captures
            continue
        if d.name == "return":
            return _Rewritten(
                uri, answer=d, inside=inside, changed=changed, rewrote=rewrote, captures=captures
            )
        if d.name == "break":
            return _Rewritten(uri, stopped=True, inside=inside, rewrote=rewrote, captures=captures)
        if d.name != "rewrite":
            continue
        result = _rewrite(d, uri, request.request_uri, captures)
        if result is None:
            continue
        new_uri, flag, captures = result
        if flag in ("redirect", "permanent", "external"):
            return _Rewritten(
                uri, answer=d, inside=inside, changed=changed, rewrote=rewrote, captures=captures
            )
        uri, rewrote = new_uri, d
        if flag == "last":
            return _Rewritten(uri, last=d, inside=inside, rewrote=d, captures=captures)
        if flag == "break":
            return _Rewritten(uri, stopped=True, inside=inside, rewrote=d, captures=captures)
        changed = d
    return _Rewritten(uri, inside=inside, changed=changed, rewrote=rewrote, captures=captures)


_FILE_TESTS = ("-f", "-d", "-e", "-x")


def _holds(d: Directive, assumptions: list[str], request: _Request, uri: str) -> bool:
    """Whether the condition of ``if`` `d` holds for the callback. A file test is taken as
    failing (the callback's path is not a file), as for ``try_files``; a condition on
    anything else only known per request is taken as false, and the route says so."""
    words = list(if_condition(d.args))
    written = " ".join(w or '""' for w in words)
    shown = f"`if ({written})` at {d.where}"
    if len(words) == 2 and words[0].removeprefix("!") in _FILE_TESTS:
        assumptions.append(
            f"{shown} checks files on disk; taken as absent, as for a POST to a path that "
            "is not a file"
        )
        return words[0].startswith("!")
    # the variables a condition may test that the callback decides
    known = {"$request_method": request.method, "$uri": uri, "$document_uri": uri}
    if request.request_uri is not None:
        known["$request_uri"] = request.request_uri
    if request.host is not None:
        known["$host"] = request.host
    if request.host is not None and words[:1] == ["$http_host"] and words[2:] == [""]:
        # the Host header, which a vendor posting to that name sends: not empty
        return words[1] == "!="
    value = known.get(words[0]) if words else None
    if value is not None and len(words) == 1:
        return value not in ("", "0")
    if value is not None and len(words) == 3:
        op, operand = words[1], words[2]
        if op in ("=", "!=") and "$" not in operand:  # a variable there is per request
            return (value == operand) == (op == "=")
        if op in ("~", "~*", "!~", "!~*"):
            regex = compile_or_refuse(
                operand, "*" in op, shown, d.where, "pass --path as the URI the app sees"
            )
            return (regex.search(value) is not None) != op.startswith("!")
    assumptions.append(f"{shown} depends on the request; taken as false (its block skipped)")
    return False


def _step(
    config: NginxConfig,
    server: Directive,
    http: Directive | None,
    hop: Hop,
    assumptions: list[str],
    error_paged: bool,
    request: _Request,
) -> _Leave | _Stay:
    location = hop.location
    own = config.effective_children(location)
    outer = _levels(location, hop.parents, server, http)
    limited = _limit_except(config, location, request)
    if limited is not None:
        return _limited_step(config, server, [limited, *outer], hop.uri, assumptions, error_paged)
    done = _rewrite_phase(
        config, own, hop.uri, assumptions, request, captures=_location_captures(hop)
    )
    uri = done.uri
    levels = [done.inside, *outer] if done.inside is not None else outer
    if done.answer is not None:
        leave = _returned(config, levels, done.answer, uri, error_paged)
        return leave if leave is not None else _Stay(done.answer)
    if done.last is not None:
        return _Leave(f"rewrite ... last at {done.last.where}", uri, server_rewrites=False)
    if done.changed is not None:  # nginx chooses the location again after the phase
        return _Leave(f"rewrite at {done.changed.where}", uri, server_rewrites=False)
    denied = _denied(config, outer, assumptions)
    if denied is not None:  # the access phase: 403, which error_page may hand on
        leave = _error_page(config, levels, "403", uri, error_paged)
        return leave if leave is not None else _Stay(denied)
    if done.inside is None:
        # an `if` block's configuration has no try_files of its own, and inherits none
        app = next((d for d in own if d.name in PASS_DIRECTIVES), None)
        for d in own:
            if d.name == "try_files" and d.args:
                return _try_files(
                    config, levels, d, uri, assumptions, error_paged, app, request, done.captures
                )
    handlers = config.effective_children(done.inside) if done.inside is not None else []
    for d in (*handlers, *own):
        if d.name in PASS_DIRECTIVES or d.name in OTHER_HANDLERS:
            return _Stay(d)
    return _static(config, server, levels, uri, assumptions, error_paged)


def _location_captures(hop: Hop) -> _Captures:
    """The groups of the regex location that took the request (the innermost on the way:
    the last regex nginx matched), for ``$1`` or ``$name`` in its ``try_files`` or
    rewrites."""
    for block in (hop.location, *reversed(hop.parents)):
        if location_spec(block).modifier in ("~", "~*"):
            found = location_regex(block).search(hop.uri)
            return _Captures().after(found) if found is not None else _Captures()
    return _Captures()


def _levels(
    location: Directive, parents: tuple[Directive, ...], server: Directive, http: Directive | None
) -> list[Directive]:
    """The blocks whose settings apply in `location`, innermost first (what `_error_page` and
    `_denied` walk)."""
    return [location, *reversed(parents), server, *([http] if http else [])]


def _static(
    config: NginxConfig,
    server: Directive,
    levels: list[Directive],
    uri: str,
    assumptions: list[str],
    error_paged: bool,
) -> _Leave | _Stay:
    """No content handler of its own: ``index`` for a directory's URI, else the static file
    handler, whose 404 (the callback path is not a file) ``error_page`` may hand on."""
    if uri.endswith("/"):
        leave = _index(config, server, levels, uri, assumptions)
        if leave is not None:
            return leave
    leave = _error_page(config, levels, "404", uri, error_paged)
    return leave if leave is not None else _Stay(None)


def _limit_except(config: NginxConfig, location: Directive, request: _Request) -> Directive | None:
    """The location's ``limit_except`` block when it does not name the request's method (GET
    names HEAD too): nginx then runs the request with that block's configuration."""
    for block in config.effective_children(location, "limit_except"):
        named = {a.upper() for a in block.args}
        if request.method not in named and not (request.method == "HEAD" and "GET" in named):
            return block
    return None


def _limited_step(
    config: NginxConfig,
    server: Directive,
    levels: list[Directive],
    uri: str,
    assumptions: list[str],
    error_paged: bool,
) -> _Leave | _Stay:
    """A location's step for a method its ``limit_except`` (``levels[0]``) does not name. The
    block is a configuration of its own: the location's ``return``, ``rewrite``, ``if`` and
    ``try_files`` are not its (they are not inherited), its access rules (else the location's)
    decide, and its own ``*_pass``, else the location's, is the content handler."""
    block, location = levels[0], levels[1]
    assumptions.append(
        f"`limit_except {' '.join(block.args)}` at {block.where} does not name POST: nginx "
        "runs the callback with that block's configuration (the location's return, rewrite, "
        "if and try_files do not apply to it)"
    )
    denied = _denied(config, levels, assumptions)
    if denied is not None:
        leave = _error_page(config, levels, "403", uri, error_paged)
        return leave if leave is not None else _Stay(denied)
    for d in (*config.effective_children(block), *config.effective_children(location)):
        if d.name in PASS_DIRECTIVES:
            return _Stay(d)
    return _static(config, server, levels, uri, assumptions, error_paged)


def _no_location(
    config: NginxConfig,
    server: Directive,
    http: Directive | None,
    uri: str,
    assumptions: list[str],
    error_paged: bool,
    request: _Request,
) -> _Leave | _Stay | None:
    """No location takes `uri`: the server's own configuration serves it. Its ``try_files``
    applies there and only there (no location inherits it), then the static handler, whose
    404 ``error_page`` may hand the request on. None: nginx answers 404 itself."""
    levels = [server, *([http] if http else [])]
    for d in config.effective_children(server):
        if d.name == "try_files" and d.args:
            step = _try_files(config, levels, d, uri, assumptions, error_paged, None, request)
            if isinstance(step, _Leave):
                return replace(step, via=f"the server's try_files at {d.where}")
            return step if step.end is not None else None
    return _error_page(config, levels, "404", uri, error_paged)


def _returned(
    config: NginxConfig, levels: list[Directive], d: Directive, uri: str, error_paged: bool
) -> _Leave | None:
    """Where ``error_page`` sends a request answered by ``return CODE`` (a code without text:
    nginx then answers as for an error, and ``error_page`` applies)."""
    if d.name != "return" or len(d.args) != 1 or not d.args[0].isdigit():
        return None
    code = int(d.args[0])
    if not 300 <= code <= 599 or code == 444:
        return None
    return _error_page(config, levels, d.args[0], uri, error_paged)


def _try_files(
    config: NginxConfig,
    levels: list[Directive],
    d: Directive,
    uri: str,
    assumptions: list[str],
    error_paged: bool,
    app: Directive | None = None,
    request: _Request | None = None,
    captures: _Captures = _Captures(),
) -> _Leave | _Stay:
    """``try_files``: its file checks are taken as failing (a callback is a POST to a path
    that is not a file), except where a location passes only existing files to its app
    (``try_files $fastcgi_script_name =404`` before ``fastcgi_pass``): the callback reaches
    that app today, so its script is there."""
    *files, fallback = d.args
    if files and fallback.startswith("=") and app is not None:
        assumptions.append(
            f"`try_files` at {d.where} passes only files on disk ({' '.join(files)}) to "
            f"`{app.name}`; taken as present (the script that receives the callback)"
        )
        return _Stay(app)
    if files:
        assumptions.append(
            f"`try_files` at {d.where} checks files on disk ({' '.join(files)}); taken as "
            f"absent, as for a POST to a path that is not a file"
        )
    if fallback.startswith("="):
        leave = _error_page(config, levels, fallback[1:], uri, error_paged)
        return leave if leave is not None else _Stay(d)
    if fallback.startswith("@"):
        return _Leave("try_files", uri, named=fallback)
    target = _expand(fallback, uri, captures, d, request.request_uri if request else None)
    return _Leave("try_files", target)


def _internal_only(
    config: NginxConfig, found: tuple[Directive, tuple[Directive, ...]] | None
) -> Directive | None:
    """The ``internal`` that makes nginx answer a client's own request for `found` with 404
    (nested locations inherit it); a rewrite or a redirect inside nginx on the way lifts it."""
    if found is None:
        return None
    location, parents = found
    for block in (location, *reversed(parents)):
        for d in config.effective_children(block, "internal"):
            return d
    return None


def _denied(
    config: NginxConfig, levels: list[Directive], assumptions: list[str]
) -> Directive | None:
    """The ``deny all`` that answers the callback with 403 in the access phase, or None.

    The rules are those of the innermost level that has any (``allow``/``deny`` are inherited
    as a list); the first rule that matches wins, so only a first rule for ``all`` is decided
    here: one for addresses depends on where the vendor posts from (taken as letting it
    through, and said)."""
    for block in levels:
        rules = [d for d in config.effective_children(block) if d.name in ("allow", "deny")]
        if not rules:
            continue
        for rule in rules:
            if rule.args[:1] == ("all",):
                if rule.name == "allow":
                    return None
                satisfy = effective(config, tuple(reversed(levels)), "satisfy")
                auth = [
                    d
                    for name in ("auth_basic", "auth_request", "auth_jwt")
                    for d in effective(config, tuple(reversed(levels)), name)
                    if d.args[:1] != ("off",)
                ]
                if satisfy and satisfy[-1].args[:1] == ("any",) and auth:
                    assumptions.append(
                        f"`{rule.text}` at {rule.where} is passed by `{auth[0].text}` "
                        f"({auth[0].where}) under `satisfy any`; the vendor is taken as "
                        "sending what it asks (the callback reaches the app today)"
                    )
                    return None
                return rule
            if rule.name == "allow":
                assumptions.append(
                    f"`{rule.text}` at {rule.where} lets through only some addresses; the "
                    "vendor's is taken as one of them (the callback reaches the app today)"
                )
                return None
            # `deny ADDRESS`: the vendor's is taken as another address; the next rule decides
        return None
    return None


def _error_page(
    config: NginxConfig, levels: list[Directive], code: str, uri: str, error_paged: bool
) -> _Leave | None:
    """Where ``error_page`` sends a request answered with `code` (None: nginx answers it).

    ``error_page`` lines are inherited only by blocks that have none of their own. A request
    already handed on by ``error_page`` is not handed on again unless the block that did it
    has ``recursive_error_pages on``: nginx then answers the code itself.
    """
    if error_paged:
        return None
    chain = tuple(reversed(levels))
    for d in effective(config, chain, "error_page"):
        codes = [a for a in d.args[:-1] if a.isdigit()]
        if code in codes and d.args:
            target = d.args[-1]
            via = f"error_page {code} at {d.where}"
            recursive = effective(config, chain, "recursive_error_pages")
            once = not (recursive and tuple(recursive[-1].args[:1]) == ("on",))
            if target.startswith("@"):
                return _Leave(via, uri, named=target, by_error_page=once)
            if target.startswith("/"):
                via += " (as GET)"
                return _Leave(via, target.split("?", 1)[0], by_error_page=once, as_get=True)
            return None
    return None


def _index(
    config: NginxConfig,
    server: Directive,
    levels: list[Directive],
    uri: str,
    assumptions: list[str],
) -> _Leave | None:
    """``index``: the first index file whose location does not just serve files (an app's
    entry point, ``index.php``); None when every one leads to static files."""
    found = effective(config, tuple(reversed(levels)), "index")
    entries = tuple(a for d in found for a in d.args) if found else ("index.html",)
    for entry in entries:
        target = entry if entry.startswith("/") else uri + entry
        if "$" in target:
            continue
        located = find_location(server, target, config)
        if located is None:
            continue
        if any(h.name in _NOT_STATIC for h in config.effective_children(located[0])):
            assumptions.append(
                f"`index` sends {uri} to {target}, which nginx checks on disk; taken as "
                "present (the app's entry point)"
            )
            return _Leave("index", target)
    return None


def _rewrite(
    d: Directive, uri: str, request_uri: str | None = None, captures: _Captures = _Captures()
) -> tuple[str, str, _Captures] | None:
    """Apply one ``rewrite regex replacement [flag]`` to `uri`: (new URI, flag, the captures
    from then on) or None when the regex does not match. A replacement that is a URL is
    flagged ``external``. `captures` are those of the regexes matched before (their named
    groups stay variables)."""
    if len(d.args) < 2:
        return None
    regex = compile_or_refuse(
        d.args[0], False, f"`rewrite {d.args[0]}`", d.where, "pass --path as the URI the app sees"
    )
    found = regex.search(uri)
    if found is None:
        return None
    captures = captures.after(found)
    replacement = d.args[1]
    flag = d.args[2] if len(d.args) > 2 else ""
    if replacement.startswith(_REDIRECT_SCHEMES):
        return uri, "external", captures
    return _expand(replacement, uri, captures, d, request_uri), flag, captures


def _expand(
    template: str,
    uri: str,
    captures: _Captures,
    d: Directive,
    request_uri: str | None = None,
) -> str:
    """The path a rewrite/try_files target names (the query part dropped: it never selects
    a location). ``$request_uri`` is the callback's path as the vendor sends it, when known
    (Nextcloud's ``/index.php$request_uri``). ``$1`` to ``$9`` are one digit each (``$10``
    is ``$1`` and a 0), as nginx reads them."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        found = captures.last
        if name.isdigit():
            index = int(name)
            return (found.group(index) or "") if found and index <= found.groups else ""
        named = dict(captures.named)
        if name in named:
            return named[name]
        if name in ("uri", "document_uri"):
            return uri
        if name == "request_uri" and request_uri is not None:
            return request_uri
        if name in _QUERY_VARS:
            return ""
        raise InputError(
            f"cannot follow `{d.name}`: its target {template} depends on ${name}, which is "
            "known only per request",
            where=d.where,
            fix="pass --path as the URI the app finally sees, or name the target literally",
        )

    path = template.split("?", 1)[0]
    expanded = re.sub(r"\$\{(\w+)\}|\$([1-9])|\$(\w+)", value, path)
    return expanded.split("?", 1)[0] or "/"
