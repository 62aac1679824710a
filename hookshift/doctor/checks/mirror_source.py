"""Checks on the locations that mirror: does the copy happen, once, with the body?

The mirror runs in nginx's precontent phase, after rewrite, preaccess (``limit_req``) and access
(``allow``/``deny``, ``auth_request``); a request those phases end is never copied.
"""

from __future__ import annotations

from collections.abc import Iterator

from hookshift.doctor.findings import Finding, Severity
from hookshift.doctor.mirrors import (
    MirrorUse,
    answers_first,
    is_internal,
    mirror_path_locations,
    mirror_uses,
    proxies_off_host,
    unix_only,
)
from hookshift.doctor.model import Index, Location, Server, proxy_target_of
from hookshift.errors import InputError
from hookshift.nginx.config import Directive
from hookshift.nginx.locations import location_spec
from hookshift.nginx.route import follow, server_takes
from hookshift.nginx.values import REQUEST_BUFFERING

_ENDING_REWRITE_FLAGS = ("last", "redirect", "permanent")


def _sources(index: Index) -> dict[Location, list[MirrorUse]]:
    """Locations that clients reach directly, with their mirrors (internal ones are targets)."""
    found: dict[Location, list[MirrorUse]] = {}
    for use in mirror_uses(index):
        if not is_internal(index, use.source):
            found.setdefault(use.source, []).append(use)
    return found


def _mirror_text(uses: list[MirrorUse]) -> str:
    return ", ".join(f"`mirror {u.uri}` ({u.directive.where})" for u in uses)


def _ends_rewrite(d: Directive) -> str | None:
    """Why this ``rewrite`` takes the request away before the mirror, or None."""
    if len(d.args) < 2:
        return None
    replacement, flag = d.args[1], d.args[2] if len(d.args) > 2 else ""
    if replacement.startswith(("http://", "https://", "$scheme")):
        return "answers with a redirect"
    if flag in ("redirect", "permanent"):
        return "answers with a redirect"
    if flag == "last":
        return "sends it to another location (the mirror of this one does not run)"
    return None


def _server_return_blocks(index: Index, server: Server, source: Location) -> bool:
    """Whether the server's own ``return`` keeps every request from `source`: it answers
    before any location is chosen, unless ``error_page`` hands the request on to `source`.
    Asked of the route nginx takes for a path the location serves ("/" for a regex)."""
    spec = location_spec(source.directive)
    literal = spec.modifier in ("", "=", "^~") and spec.pattern.startswith("/")
    try:
        route = follow(
            index.config, server.directive, spec.pattern if literal else "/", server.chain[0]
        )
    except InputError:
        return True
    return route is None or all(hop.location is not source.directive for hop in route.hops)


def mirror_never_runs(index: Index) -> Iterator[Finding]:
    relays = mirror_path_locations(index)
    for source, uses in _sources(index).items():
        mirrors = _mirror_text(uses)
        server = uses[0].server
        if index.own(server.directive, "return") and _server_return_blocks(index, server, source):
            for d in index.own(server.directive, "return"):
                yield Finding(
                    code="mirror-never-runs",
                    severity=Severity.ERROR,
                    where=d.where,
                    message=(
                        f"`return` at server level answers every request before any location "
                        f"runs, so {mirrors} in {source.label} never copies anything"
                    ),
                    fix="remove the server-level return or move the mirror to the server "
                    "that actually serves the callbacks",
                )
        for d in index.own(source.directive, "return"):
            yield Finding(
                code="mirror-never-runs",
                severity=Severity.ERROR,
                where=d.where,
                message=(
                    f"`{d.text}` in {source.label} answers in the rewrite "
                    f"phase, before the mirror: {mirrors} never copies a request"
                ),
                fix="mirror in the location that proxies the callback to the app",
            )
        for block in (server.directive, source.directive):
            yield from _returns_in_if(index, block, source, mirrors)
        for d in index.own(source.directive, "rewrite"):
            why = _ends_rewrite(d)
            if why is None:
                continue
            yield Finding(
                code="mirror-never-runs",
                severity=Severity.WARNING,
                where=d.where,
                message=(
                    f"`{d.text}` in {source.label} {why} for every URI that "
                    f"matches {d.args[0]}, before the mirror: those requests are not copied "
                    f"by {mirrors}"
                ),
                fix="put the mirror in the location the request ends up in, or use `break`",
            )
        yield from _try_files_first(index, server, source, mirrors)
        if source not in relays:  # a relay's refusals are relay-refuses-copies
            yield from _access_phase(index, source, mirrors)


def _named(server: Server, name: str) -> Location | None:
    """The server's ``location @name`` (named locations live at server level only)."""
    return next(
        (loc for loc in server.locations if loc.modifier == "@" and loc.pattern == name), None
    )


def _try_files_first(
    index: Index, server: Server, source: Location, mirrors: str
) -> Iterator[Finding]:
    """``try_files`` and ``mirror`` run in the same phase, ``try_files`` first: a request no
    file answers (a callback: a POST to a path that is not a file) is handed to the fallback
    before the mirror of this location runs. It is copied only if the fallback mirrors."""
    for d in index.own(source.directive, "try_files"):
        fallback = d.args[-1] if len(d.args) >= 2 else ""
        if not fallback or fallback.startswith("="):
            continue  # answered here (the app gets none of those requests either)
        if fallback.startswith("@"):
            landing = _named(server, fallback)
        elif "$" in (path := fallback.split("?", 1)[0]):
            continue  # where it lands depends on the request
        else:
            landing = server.match(path)
        if landing is None:
            continue
        mirrored = [
            m for m in index.effective(landing.chain, "mirror") if m.args and m.args[0] != "off"
        ]
        if mirrored:
            continue
        yield Finding(
            code="mirror-never-runs",
            severity=Severity.ERROR,
            where=d.where,
            message=(
                f"`{d.text}` in {source.label} hands every request no file answers (every "
                f"callback) to {landing.label} before the mirror: nginx runs try_files first, "
                f"so {mirrors} never copies a callback, and {landing.label} ({landing.where}) "
                "does not mirror"
            ),
            fix=f"move the mirror into {landing.label}, where the callbacks are proxied",
        )


def _returns_in_if(
    index: Index, block: Directive, source: Location, mirrors: str
) -> Iterator[Finding]:
    """``if (...) { return ...; }`` answers the requests that match before the mirror runs.

    Often on purpose (``if ($request_method != POST) { return 405; }``), so it is told, not
    blamed: those requests reach neither the app nor the queue, and parity counts them as
    not mirrored.
    """
    for cond in index.own(block, "if"):
        for d in index.own(cond, "return"):
            yield Finding(
                code="mirror-skipped-if",
                severity=Severity.INFO,
                where=d.where,
                message=(
                    f"requests that match `if ({' '.join(cond.args)})` are answered by "
                    f"`{d.text}` in the rewrite phase, before {mirrors} in "
                    f"{source.label} runs: they are not copied (nor sent to the app)"
                ),
                fix="nothing if those requests are not callbacks; otherwise let them through "
                "to the location that proxies and mirrors",
            )


def _access_phase(index: Index, source: Location, mirrors: str) -> Iterator[Finding]:
    rules = _access_rules(index, source)
    first = rules[0] if rules else None
    deny_all = first is not None and first.name == "deny" and first.args[:1] == ("all",)
    if first is not None and deny_all and _satisfy_any_auth(index, source):
        yield Finding(
            code="mirror-skipped-when-denied",
            severity=Severity.INFO,
            where=first.where,
            message=(
                f"`deny all` applies to {source.label}, but under `satisfy any` a request that "
                "passes authentication is let in: requests that fail both get 401/403 before "
                f"the mirror and are not copied by {mirrors} (nor proxied)"
            ),
            fix="nothing to do if the callback sender authenticates",
        )
    elif first is not None and deny_all:
        yield Finding(
            code="mirror-never-runs",
            severity=Severity.ERROR,
            where=first.where,
            message=(
                f"`deny all` applies to {source.label}: every request gets 403 in the access "
                f"phase, before the mirror, so {mirrors} never copies a request"
            ),
            fix="allow the callback sender's addresses before `deny all`, or drop the mirror",
        )
    elif any(d.name == "deny" for d in rules):
        deny = next(d for d in rules if d.name == "deny")
        yield Finding(
            code="mirror-skipped-when-denied",
            severity=Severity.INFO,
            where=deny.where,
            message=(
                f"requests refused by allow/deny in {source.label} get 403 before the mirror "
                f"and are not copied by {mirrors} (nor proxied: the parity report shows them "
                "as not mirrored)"
            ),
            fix="nothing to do if only unwanted senders are refused",
        )
    for name, phase, answer in (
        ("limit_req", "preaccess", "503"),
        ("auth_basic", "access", "401"),
        ("auth_request", "access", "401/403"),
    ):
        for d in index.effective(source.chain, name):
            if d.args[:1] == ("off",):
                continue
            yield Finding(
                code=f"mirror-skipped-by-{name.replace('_', '-')}",
                severity=Severity.INFO,
                where=d.where,
                message=(
                    f"`{name}` applies to {source.label}: requests it refuses get {answer} in "
                    f"the {phase} phase, before the mirror, so {mirrors} does not copy them "
                    "(nor does the app get them; the sender must retry)"
                ),
                fix=f"make sure the callback sender passes `{name}`, or accept that refused "
                "callbacks are neither mirrored nor delivered",
            )


def _satisfy_any_auth(index: Index, source: Location) -> bool:
    """``satisfy any`` with an authentication in effect: passing it lets a request in whatever
    ``deny`` says, so even ``deny all`` refuses only requests that fail both."""
    satisfy = index.value(source.chain, "satisfy")
    if satisfy is None or satisfy.args[:1] != ("any",):
        return False
    return any(
        (d := index.value(source.chain, name)) is not None and d.args[:1] != ("off",)
        for name in ("auth_basic", "auth_request")
    )


def _access_rules(index: Index, source: Location) -> list[Directive]:
    """``allow``/``deny`` in effect, in order: they form one list, inherited only by a block
    that has neither (a location with one ``allow`` drops the server's ``deny all``)."""
    return list(index.inheritance.shared(source.chain, "allow"))


def mirror_copy_taken(index: Index) -> Iterator[Finding]:
    """nginx runs a server's own rewrite phase for every subrequest, a mirror's copy included:
    a server-level ``return`` or ``rewrite`` that matches the mirror's URI answers each copy, or
    sends it elsewhere (to the app, a second time, when ``error_page`` hands it there). A copy
    keeps its callback's method and ``$request_uri``."""
    seen: set[tuple[Server, str]] = set()
    for use in mirror_uses(index):
        path = use.uri.split("?", 1)[0]
        if "$" in path or (use.server, path) in seen or is_internal(index, use.source):
            continue
        seen.add((use.server, path))
        try:
            taken = server_takes(index.config, use.server.directive, path)
        except InputError:
            continue
        if taken is None:
            continue
        if taken in index.own(use.server.directive, "return") and _server_return_blocks(
            index, use.server, use.source
        ):
            continue  # the callbacks themselves never reach the mirror: mirror-never-runs
        answered = taken.name == "return" or _ends_rewrite(taken) == "answers with a redirect"
        where_to = (
            "answers each copy there" if answered else "sends each copy where that line sends it"
        )
        target = use.target.label if use.target is not None else use.uri
        yield Finding(
            code="mirror-copy-taken",
            severity=Severity.ERROR,
            where=taken.where,
            message=(
                f"the server-level `{taken.text}` also takes the copies of `mirror {use.uri}` "
                f"({use.directive.where}, in {use.source.label}): nginx runs a server's own "
                f"rewrites for a mirror's subrequest too, so it {where_to} and none reaches "
                f"{target}"
            ),
            fix=f"move that line into the locations it is meant for (for example "
            f"`location / {{ ... }}`), or make it leave {path} alone",
        )


def mirror_without_body(index: Index) -> Iterator[Finding]:
    for source, uses in _sources(index).items():
        setting = index.value(source.chain, "mirror_request_body")
        if setting is not None and setting.args[:1] == ("off",):
            yield Finding(
                code="mirror-no-body",
                severity=Severity.ERROR,
                where=setting.where,
                message=(
                    f"`mirror_request_body off` applies to {source.label}: {_mirror_text(uses)} "
                    "sends the copy without its body, so the stage (and its queue) receives "
                    "empty callbacks"
                ),
                fix="set `mirror_request_body on;` (the default) in the mirroring location",
            )
            continue
        for name in REQUEST_BUFFERING:
            buffering = index.value(source.chain, name)
            if buffering is None or buffering.args[:1] != ("off",):
                continue
            yield Finding(
                code="mirror-request-buffering-off",
                severity=Severity.WARNING,
                where=buffering.where,
                message=(
                    f"`{name} off` in {source.label} has no effect while "
                    f"{_mirror_text(uses)} copies the body: nginx reads the whole body before "
                    "the mirror starts, so the app no longer gets it streamed (large uploads "
                    "wait for the full body, and bodies over client_body_buffer_size go to a "
                    "temp file)"
                ),
                fix=f"drop `{name} off` there, or keep the mirror out of "
                "locations that must stream request bodies",
            )


def mirror_target_missing(index: Index) -> Iterator[Finding]:
    seen: set[tuple[str, Server]] = set()
    for use in mirror_uses(index):
        if use.target is not None or "$" in use.uri:
            continue
        key = (use.directive.where, use.server)
        if key in seen:
            continue
        seen.add(key)
        yield Finding(
            code="mirror-target-missing",
            severity=Severity.ERROR,
            where=use.directive.where,
            message=(
                f"`mirror {use.uri}` (used by {use.source.label}) names a URI that no location "
                f"in the server at {use.server.where} serves: each copy ends as a 404 inside "
                "nginx and nothing reaches the stage"
            ),
            fix=f"add `location = {use.uri.split('?', 1)[0]} {{ internal; proxy_pass ...; }}` to "
            "that server",
        )


def mirror_duplicated(index: Index) -> Iterator[Finding]:
    for source, uses in _sources(index).items():
        seen: dict[str, MirrorUse] = {}
        for use in uses:
            if use.uri in seen:
                yield Finding(
                    code="mirror-duplicate",
                    severity=Severity.WARNING,
                    where=use.directive.where,
                    message=(
                        f"{source.label} mirrors to {use.uri} twice (also at "
                        f"{seen[use.uri].directive.where}): the stage gets two copies of each "
                        "request, so the queue holds duplicates"
                    ),
                    fix="keep one `mirror` line per target",
                )
            seen.setdefault(use.uri, use)


def mirror_at_server_level(index: Index) -> Iterator[Finding]:
    """``mirror`` in server/http reaches every location that has none of its own."""
    reported: set[Directive] = set()
    for server in index.servers:
        outer = index.effective(server.chain, "mirror")
        for line in outer:
            if line in reported or not line.args or line.args[0] == "off":
                continue
            reported.add(line)
            inheriting = [
                loc
                for loc in server.all_locations()
                if line in index.effective(loc.chain, "mirror") and not is_internal(index, loc)
            ]
            overriding = [
                loc
                for loc in server.all_locations()
                if index.own(loc.directive, "mirror")
                and line not in index.effective(loc.chain, "mirror")
            ]
            parts = [
                f"`mirror {line.args[0]}` at {line.where} applies to every location without "
                f"a mirror of its own ({_list(inheriting)}): every request to them is copied "
                "to the stage, not only callbacks, and a request that `error_page` sends on "
                "to another location (a 404 or an app's 502 turned into a fallback page) is "
                "copied again there: duplicates in the queue"
            ]
            if overriding:
                parts.append(
                    f"{_list(overriding)} declare their own mirror, which replaces this one "
                    "there (mirror lines do not add up across levels)"
                )
            yield Finding(
                code="mirror-server-level",
                severity=Severity.WARNING,
                where=line.where,
                message="; ".join(parts),
                fix="move the mirror into the callback location only",
            )


def mirror_twice_via_error_page(index: Index) -> Iterator[Finding]:
    """``error_page`` redirects internally after the content phase, and nginx resets the mirror
    state on an internal redirect, to a named location too: a target location that mirrors
    copies the request again (seen on nginx 1.22: one request, two copies)."""
    for source, uses in _sources(index).items():
        for page in index.effective(source.chain, "error_page"):
            uri = page.args[-1] if page.args else ""
            if uri.startswith("@"):
                landing = _named(uses[0].server, uri)
            elif uri.startswith("/") and "$" not in uri:
                landing = uses[0].server.match(uri.split("?", 1)[0])
            else:
                continue
            if landing is None or index.own(landing.directive, "return"):
                continue  # a return answers before the mirror there
            again = [
                d for d in index.effective(landing.chain, "mirror") if d.args and d.args[0] != "off"
            ]
            if not again:
                continue
            yield Finding(
                code="mirror-twice-via-error-page",
                severity=Severity.WARNING,
                where=page.where,
                message=(
                    f"`{page.text}` sends failed requests of {source.label} "
                    f"to {landing.label} ({landing.where}), which mirrors too (`mirror "
                    f"{again[0].args[0]}` at {again[0].where}): nginx resets the mirror on "
                    "that internal redirect, so each such request is copied twice and the "
                    "queue holds duplicates"
                ),
                fix="keep the mirror out of the error_page target (`mirror off;` there), or "
                "serve the error page from a location that does not mirror",
            )


def _list(locations: list[Location], limit: int = 4) -> str:
    if not locations:
        return "none"
    shown = ", ".join(f"{loc.label} ({loc.where})" for loc in locations[:limit])
    more = len(locations) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def mirror_holds_callback(index: Index) -> Iterator[Finding]:
    """A copy sent straight to the stage holds the callback: nginx finalizes a request, and
    reads the next one on a keep-alive connection, only when every mirror subrequest has
    ended. A local relay that answers at once and mirrors on moves that wait off the
    callback's connection (a relay's own mirror is that relay, not a callback)."""
    relays = mirror_path_locations(index)
    for source, uses in _sources(index).items():
        if source in relays or unix_only(index, uses[0].server):
            continue
        for use in uses:
            if use.target is None or answers_first(index, use.target):
                continue
            yield Finding(
                code="mirror-holds-callback",
                severity=Severity.WARNING,
                where=use.directive.where,
                message=(
                    f"the copy holds the callback: `mirror {use.uri}` in {source.label} sends "
                    f"the copy on to the stage from {use.target.label} ({use.target.where}), "
                    "and nginx finishes each callback (and reads the next one on a keep-alive "
                    "connection) only when its copy has ended, so every callback waits for the "
                    "stage: its latency is added to each one, and a stage that hangs holds "
                    "each until the proxy timeouts run out"
                ),
                fix="send the copy to a local relay that answers at once and copies on to the "
                "stage (`hookshift mirror apply` writes one)",
            )


def relay_unfed(index: Index) -> Iterator[Finding]:
    """A relay (a server on unix sockets only, whose location mirrors copies on) that no
    mirror hands anything: the lines that fed it were taken out, by hand or by a tool that
    writes its file again (Plesk, gitlab-ctl, an ingress controller)."""
    fed = mirror_path_locations(index)
    for source, uses in _sources(index).items():
        if source in fed or not unix_only(index, uses[0].server):
            continue
        yield Finding(
            code="relay-unfed",
            severity=Severity.WARNING,
            where=source.where,
            message=(
                f"{source.label} copies on ({_mirror_text(uses)}) what local servers hand it "
                "over its unix socket, but no location of this config mirrors to it: no "
                "callback is copied (the mirror lines that fed it were taken out, by hand or "
                "by a tool that wrote their file again)"
            ),
            fix="run `hookshift mirror apply` again to put the mirror back (or `hookshift "
            "mirror remove` to take the relay out too)",
        )


CREDENTIALS = ("authorization", "cookie", "proxy-authorization")


def mirror_forwards_credentials(index: Index) -> Iterator[Finding]:
    """The location of the mirror path that proxies off this host passes the vendor's
    credentials on unless it clears them (``proxy_set_header NAME ""``)."""
    for loc in sorted(mirror_path_locations(index), key=lambda loc: loc.where):
        found = proxy_target_of(index, loc)
        if found is None or not proxies_off_host(index, loc):
            continue
        if (passing := index.value(loc.chain, "proxy_pass_request_headers")) is not None and (
            passing.args[:1] == ("off",)
        ):
            continue
        cleared = {
            d.args[0].lower()
            for d in index.effective(loc.chain, "proxy_set_header")
            if len(d.args) == 2 and d.args[1] == ""
        }
        passed = [name for name in CREDENTIALS if name not in cleared]
        if not passed:
            continue
        names = ", ".join(passed)
        yield Finding(
            code="mirror-forwards-credentials",
            severity=Severity.WARNING,
            where=found[0].where,
            message=(
                f"{loc.label} sends the copies to the stage with the caller's credential "
                f"headers ({names}): the vendor's secrets leave this host with every copy and "
                "land wherever the stage logs or stores requests"
            ),
            fix='clear them there, e.g. `proxy_set_header Authorization "";` for each one the '
            "stage does not need (hookshift's relay does so unless told --keep-header)",
        )
