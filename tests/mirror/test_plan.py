"""What the plan inserts, for each nginx version, mode and inheritance situation."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.mirror.plan import MirrorOptions, make_plan, parse_stage_url
from hookshift.mirror.render import Tuning

STAGE = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod"


def _write(tmp_path: Path, http_body: str) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text("events {}\nhttp {\n" + http_body + "\n}\n")
    return path


SIMPLE = """    access_log /var/log/app/access.log main buffer=32k;
    proxy_set_header X-Real-IP $remote_addr;
    server {
        listen 80;
        location = /cb {
            proxy_pass http://127.0.0.1:9000;
        }
    }"""


def _opts(config: Path, **kw: object) -> MirrorOptions:
    base = MirrorOptions(
        config=config,
        path="/cb",
        stage_url=STAGE,
        parity_log=Path("/var/log/nginx/hookshift-parity.log"),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _added(plan_text: str) -> list[str]:
    return [
        line.strip().removesuffix("# hookshift").strip()
        for line in plan_text.splitlines()
        if line.endswith("# hookshift")
    ]


def _block(text: str, opening: str) -> str:
    """The lines of the block that starts with `opening` (up to its closing brace)."""
    rest = text[text.index(opening) :]
    depth, out = 0, []
    for line in rest.splitlines():
        out.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0:
            break
    return "\n".join(out)


def _front_copy_ends_at_the_relay(added: list[str]) -> None:
    """The callback's copy goes to the local relay only, which answers before the stage."""
    front = _block("\n".join(added), "location = /__hookshift_mirror {").splitlines()
    assert "proxy_pass http://unix:/run/hookshift/relay.sock:$request_uri;" in front
    assert "proxy_set_header X-Request-Id $request_id;" in front
    assert not any("https://" in line or "keepalive" in line for line in front)


def test_old_nginx_gets_the_answer_first_relay_with_a_stage_hop(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), stage_dns="runtime"), (1, 22, 1))
    text = plan.changes[0].new_text
    added = _added(text)
    assert plan.layout == "two-hop"
    _front_copy_ends_at_the_relay(added)
    relay = _block(text, "location = /cb {  # hookshift")
    for line in (
        "mirror /__hookshift_stage;",
        "empty_gif;",
        "error_page 405 =204 @hookshift_accepted;",
        "limit_conn hookshift_copies 16;",  # 4 connections each, an eighth of nginx's 512
    ):
        assert line in relay, line
    # the breaker sits where the relay meets the stage: its primary is the stage hop
    breaker = _block(text, "upstream hookshift_stage {")
    assert "server unix:/run/hookshift/relay-stage.sock max_fails=1 fail_timeout=10s;" in breaker
    assert "server unix:/nonexistent/hookshift-breaker-open.sock backup;" in breaker
    assert "zone hookshift_stage 64k;" in breaker, "the breaker state is shared by all workers"
    assert "proxy_pass http://hookshift_stage$request_uri;" in added
    assert (
        "proxy_next_upstream error timeout http_500 http_502 http_503 http_504 non_idempotent;"
        in added
    )
    hop = _block(text, "listen unix:/run/hookshift/relay-stage.sock;")
    for line in (
        "resolver 1.1.1.1 8.8.8.8 valid=10s ipv6=off;",
        "proxy_pass https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod$request_uri;",
        "proxy_ssl_server_name on;",
        "proxy_ssl_verify on;",
        'proxy_set_header Authorization "";',
    ):
        assert line in text[text.index("listen unix:/run/hookshift/relay-stage.sock;") :], line
    assert hop
    assert "mirror /__hookshift_mirror;" in added


def test_nginx_1_27_3_relay_meets_the_stage_in_a_resolving_upstream(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE)), (1, 27, 3))
    text = plan.changes[0].new_text
    added = _added(text)
    assert plan.layout == "upstream-resolve"
    _front_copy_ends_at_the_relay(added)
    breaker = _block(text, "upstream hookshift_stage {")
    assert "zone hookshift_stage 64k;" in breaker
    assert (
        "server abc123.execute-api.ap-northeast-2.amazonaws.com:443 resolve max_fails=1 "
        "fail_timeout=10s;"
    ) in breaker
    assert "keepalive 32;" in breaker, "as many idle connections as copies may be in flight"
    stage = _block(text, "location = /__hookshift_stage {")
    assert "proxy_pass https://hookshift_stage/prod$request_uri;" in stage
    assert "proxy_ssl_name abc123.execute-api.ap-northeast-2.amazonaws.com;" in stage
    assert "relay-stage.sock" not in text, "no stage hop: the upstream re-resolves"
    assert "error_log /var/log/nginx/hookshift-mirror.error.log warn;" in added


@pytest.mark.parametrize(
    ("version", "stage_dns", "cap"),
    [((1, 22, 1), "runtime", 24), ((1, 22, 1), "reload", 48), ((1, 27, 3), "runtime", 48)],
)
def test_copies_in_flight_hold_at_most_an_eighth_of_worker_connections(
    tmp_path: Path, version: tuple[int, int, int], stage_dns: str, cap: int
) -> None:
    """A copy holds 2 connections (relay in, stage out), 4 through the run-time stage hop; the
    cap counts copies of every worker, and they may all sit in the busiest one."""
    config = _write(tmp_path, SIMPLE)
    config.write_text(config.read_text().replace("events {}", "events { worker_connections 768; }"))
    added = _added(make_plan(_opts(config, stage_dns=stage_dns), version).changes[0].new_text)
    assert f"limit_conn hookshift_copies {cap};" in added
    assert "limit_conn_zone $server_name zone=hookshift_copies:1m;" in added


@pytest.mark.parametrize(("worker_connections", "handoffs"), [(768, 24), (8192, 256), (None, 16)])
def test_a_worker_hands_copies_of_a_bounded_number_of_callbacks_to_the_relay(
    tmp_path: Path, worker_connections: int | None, handoffs: int
) -> None:
    """A hand-off holds two more connections of the callback's worker; past a thirty-second of
    worker_connections (16 at least) a worker drops the copy at once, counted per worker
    ($pid) and logged below nginx's default error_log level."""
    config = _write(tmp_path, SIMPLE)
    if worker_connections is not None:
        events = f"events {{ worker_connections {worker_connections}; }}"
        config.write_text(config.read_text().replace("events {}", events))
    plan = make_plan(_opts(config), (1, 22, 1))
    added = _added(plan.changes[0].new_text)
    front = _block("\n".join(added), "location = /__hookshift_mirror {").splitlines()
    assert f"limit_conn hookshift_handoffs {handoffs};" in front
    assert "limit_conn_log_level info;" in front
    assert "limit_conn_zone $pid zone=hookshift_handoffs:1m;" in added
    (said,) = [i for i in plan.info if "callbacks in flight per nginx worker" in i]
    assert f"copies of at most {handoffs} callbacks" in said, "the plan names the bound"
    assert f"worker_connections {worker_connections or 512}" in said
    assert "raise worker_connections in the events block" in said


def test_the_relay_takes_only_the_callback_path_and_post(tmp_path: Path) -> None:
    text = make_plan(_opts(_write(tmp_path, SIMPLE)), (1, 27, 3)).changes[0].new_text
    relay = _block(text, "server {  # hookshift")
    assert "location = /cb {  # hookshift" in relay
    assert _block(relay, "limit_except POST {").splitlines()[1].strip().startswith("deny all;")
    assert "return 404;" in _block(relay, "location / {")


@pytest.mark.parametrize(
    ("keep", "stripped"),
    [
        ((), ["Authorization", "Cookie", "Proxy-Authorization"]),
        (("authorization", "X-Signature"), ["Cookie", "Proxy-Authorization"]),
    ],
)
def test_credentials_are_stripped_from_the_copy_unless_kept(
    tmp_path: Path, keep: tuple[str, ...], stripped: list[str]
) -> None:
    for version in ((1, 22, 1), (1, 27, 3)):
        plan = make_plan(_opts(_write(tmp_path, SIMPLE), keep_headers=keep), version)
        added = _added(plan.changes[0].new_text)
        assert [a.split()[1] for a in added if a.endswith(' "";') and "Connection" not in a] == (
            stripped
        )


def test_the_relay_directory_is_private_only_when_it_is_hookshifts_own(tmp_path: Path) -> None:
    config = _write(tmp_path, SIMPLE)
    plan = make_plan(_opts(config), (1, 22, 1))
    assert "client_body_temp_path /run/hookshift;" in _added(plan.changes[0].new_text)
    assert not any("other local users" in w for w in plan.warnings)
    shared = make_plan(_opts(config, relay_socket="/run/hm.sock"), (1, 22, 1))
    assert not any("client_body_temp_path" in a for a in _added(shared.changes[0].new_text))
    assert any("/run, which other local users may reach" in w for w in shared.warnings)


def test_timeouts_are_short_by_default_and_configurable(tmp_path: Path) -> None:
    config = _write(tmp_path, SIMPLE)
    runtime = _opts(config, stage_dns="runtime")
    added = _added(make_plan(runtime, (1, 22, 1)).changes[0].new_text)
    assert "proxy_read_timeout 2s;" in added and "resolver_timeout 1s;" in added
    added = _added(make_plan(replace(runtime, timeout=0.5), (1, 22, 1)).changes[0].new_text)
    assert "proxy_read_timeout 500ms;" in added and "resolver_timeout 500ms;" in added


def test_inherited_access_logs_are_redeclared_next_to_the_parity_log(tmp_path: Path) -> None:
    added = _added(make_plan(_opts(_write(tmp_path, SIMPLE)), (1, 22, 1)).changes[0].new_text)
    assert (
        "access_log /var/log/nginx/hookshift-parity.log hookshift_parity if=$hookshift_callback;"
        in added
    )
    assert "access_log /var/log/app/access.log main buffer=32k;" in added
    assert added[0].startswith("log_format hookshift_parity escape=json")


def test_the_compiled_default_log_is_redeclared_when_none_is_configured(tmp_path: Path) -> None:
    config = _write(
        tmp_path, "server { listen 80; location = /cb { proxy_pass http://127.0.0.1:1; } }"
    )
    added = _added(make_plan(_opts(config), (1, 22, 1)).changes[0].new_text)
    assert "access_log /var/log/nginx/access.log combined;" in added


def test_access_log_off_is_not_redeclared_and_the_parity_log_is_told(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "access_log off;\nserver { listen 80; location = /cb { proxy_pass http://127.0.0.1:1; } }",
    )
    plan = make_plan(_opts(config), (1, 22, 1))
    (told,) = [w for w in plan.warnings if w.startswith("`access_log off;`")]
    assert f"({config}:3)" in told and "body included" in told and "--no-parity-log" in told
    added = _added(plan.changes[0].new_text)
    in_location = added[added.index("mirror /__hookshift_mirror;") :]
    assert [a for a in in_location if a.startswith("access_log")] == [
        "access_log /var/log/nginx/hookshift-parity.log hookshift_parity if=$hookshift_callback;"
    ]


def test_request_id_to_app_redeclares_inherited_headers(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), request_id_to_app=True), (1, 22, 1))
    added = _added(plan.changes[0].new_text)
    mirror_at = added.index("mirror /__hookshift_mirror;")
    in_location = added[mirror_at:]
    assert "proxy_set_header X-Request-Id $request_id;" in in_location
    assert "proxy_set_header X-Real-IP $remote_addr;" in in_location


def test_directives_the_location_already_has_are_not_duplicated(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "server { listen 80; location = /cb { client_body_buffer_size 1m;"
        " mirror_request_body on; proxy_pass http://127.0.0.1:1; } }",
    )
    added = _added(make_plan(_opts(config), (1, 22, 1)).changes[0].new_text)
    in_location = added[added.index("mirror /__hookshift_mirror;") :]
    assert not any(
        a.startswith(("client_body_buffer_size", "mirror_request_body")) for a in in_location
    )


def test_forward_mode_sends_the_request_itself_and_says_so(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), mode="forward"), (1, 22, 1))
    data = plan.to_json()
    assert data["mode"] == "forward" and data["layout"] == "direct"
    added = _added(plan.changes[0].new_text)
    assert "rewrite ^/cb$ /__hookshift_forward last;" in added
    assert "location = /__hookshift_forward {" in added
    assert (
        "proxy_pass https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod$request_uri;"
        in added
    )
    assert "proxy_read_timeout 10s;" in added
    assert "access_log /var/log/nginx/hookshift-parity.log hookshift_parity;" in added
    assert not any(a.startswith("mirror ") for a in added)


def test_stage_path_sends_to_a_fixed_resource(tmp_path: Path) -> None:
    options = _opts(_write(tmp_path, SIMPLE), stage_path="/prod/callbacks")
    plan = make_plan(replace(options, stage_dns="reload"), (1, 22, 1))
    assert "proxy_pass https://hookshift_stage/prod/callbacks$is_args$args;" in _added(
        plan.changes[0].new_text
    )
    plan = make_plan(options, (1, 22, 1))
    assert (
        "proxy_pass https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod/callbacks"
        "$is_args$args;"
    ) in _added(plan.changes[0].new_text)


def test_json_names_the_chosen_blocks_with_file_and_line(tmp_path: Path) -> None:
    config = _write(tmp_path, SIMPLE)
    data = make_plan(_opts(config), (1, 22, 1)).to_json()
    assert data["server"]["where"] == f"{config}:5"
    assert data["location"]["where"] == f"{config}:7"
    assert data["location"]["description"] == "location = /cb"
    (entry,) = data["files"]
    assert {i["after_line"] for i in entry["insertions"]} == {2, 5, 7}
    numbered = make_plan(_opts(config), (1, 22, 1)).changes[0].new_text.splitlines()
    for insertion in entry["insertions"]:
        first, last = insertion["new_lines"]
        assert len(insertion["lines"]) == last - first + 1
        assert all(numbered[n - 1].endswith("# hookshift") for n in range(first, last + 1))
        assert not numbered[last].endswith("# hookshift")
    assert entry["diff"].startswith(f"--- a{config}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://abc123.execute-api.ap-northeast-2.amazonaws.com/prod", "must be https"),
        ("https://abc123.execute-api.ap-northeast-2.amazonaws.com", "without a stage"),
        ("https:///prod", "has no host"),
        ("https://hooks.example.com/x?y=1", "query"),
        ("https://[::1", "is not a URL"),
        ("https://-bad.example.com/prod", "not a host name DNS can hold"),
        ("https://host_name.example.com/prod", "not a host name DNS can hold"),
        ("https://" + "a" * 64 + ".example.com/prod", "not a host name DNS can hold"),
    ],
)
def test_bad_stage_urls_are_input_errors(url: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_stage_url(url)


@pytest.mark.parametrize(
    ("url", "host", "authority"),
    [
        ("https://콜백.example.com/prod", "xn--3h3bn46a.example.com", "xn--3h3bn46a.example.com"),
        ("https://Hooks.Example.COM./prod", "hooks.example.com", "hooks.example.com"),
        ("https://[::1]:8443/prod", "::1", "[::1]:8443"),
    ],
)
def test_the_stage_host_is_written_as_dns_tls_and_host_carry_it(
    url: str, host: str, authority: str
) -> None:
    stage, warnings = parse_stage_url(url)
    assert (stage.host, stage.authority) == (host, authority)
    if host != "::1":
        assert any(f"is written as {host}" in w for w in warnings)


def test_a_custom_domain_is_accepted_with_a_warning() -> None:
    stage, warnings = parse_stage_url("https://hooks.example.com")
    assert stage.kind == "custom-domain" and stage.base_path == ""
    assert "not an execute-api host" in warnings[0]


def test_a_location_serving_more_than_the_path_says_only_the_path_is_copied(
    tmp_path: Path,
) -> None:
    config = _write(tmp_path, "server { listen 80; location / { proxy_pass http://a; } }")
    plan = make_plan(_opts(config), (1, 22, 1))
    assert any("serves other paths too; only /cb is copied" in i for i in plan.info)
    assert not any("keep going to the app only" in w for w in plan.warnings)


def test_a_location_that_returns_is_refused(tmp_path: Path) -> None:
    config = _write(tmp_path, "server { listen 80; location = /cb { return 200; } }")
    with pytest.raises(InputError, match=r"`return 200`.*not passed to an app"):
        make_plan(_opts(config), (1, 22, 1))


def test_an_app_reached_through_error_page_to_a_uri_is_refused_and_a_named_one_is_not(
    tmp_path: Path,
) -> None:
    """error_page to a URI makes the vendor's POST a GET; to a named location it stays a POST."""
    served = "location / {{ return 404; }} location {target} {{ proxy_pass http://127.0.0.1:9; }}"
    config = _write(
        tmp_path,
        "server { listen 80; error_page 404 /app;\n" + served.format(target="= /app") + " }",
    )
    with pytest.raises(InputError, match=r"made the vendor's POST a GET.*error_page CODE = @app"):
        make_plan(_opts(config), (1, 22, 1))
    config = _write(
        tmp_path,
        "server { listen 80; error_page 404 = @app;\n" + served.format(target="@app") + " }",
    )
    assert make_plan(_opts(config), (1, 22, 1)).changes


def test_http_level_gates_are_warned_about(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;\nlimit_req zone=z;\n"
        "server { listen 80; rewrite ^/old(.*)$ /new$1;\n"
        "location = /cb { proxy_pass http://127.0.0.1:1; } }",
    )
    warnings = make_plan(_opts(config), (1, 22, 1)).warnings
    assert any(w.startswith("http-level `limit_req`") and f"{config}:4" in w for w in warnings)
    assert not any("server-level" in w for w in warnings)  # it leaves hookshift's URIs alone


@pytest.mark.parametrize(
    "server_level",
    [
        "rewrite ^ /elsewhere last;",
        "if ($request_method = POST) { return 418; } error_page 418 = @app;",
        "if ($uri ~ ^/__) { return 403; }",
    ],
)
def test_a_server_level_line_that_takes_the_copy_subrequest_is_refused(
    tmp_path: Path, server_level: str
) -> None:
    """nginx runs a server's own rewrites for the mirror subrequest too: the copy would be
    answered there, or sent where that line sends it (even to the app, a second time)."""
    config = _write(
        tmp_path,
        f"server {{ listen 80; {server_level}\n"
        "location = /cb { proxy_pass http://127.0.0.1:1; }\n"
        "location = /elsewhere { proxy_pass http://127.0.0.1:1; }\n"
        "location @app { proxy_pass http://127.0.0.1:1; } }",
    )
    with pytest.raises(InputError, match=r"also takes hookshift's subrequest to /__hookshift"):
        make_plan(_opts(config), (1, 22, 1))
    # forward mode's rewrite ... last goes to location selection, past the server's rewrites
    assert make_plan(_opts(config, mode="forward"), (1, 22, 1)).changes


def test_the_copy_subrequest_sees_the_request_uri_as_the_main_request_does(tmp_path: Path) -> None:
    """The subrequest keeps its main request's $request_uri, which the route takes as most
    HTTP libraries send a path outside ASCII: escaped. A server-level guard on the raw form
    takes neither the callback nor its copy, and is no reason to refuse."""
    config = _write(
        tmp_path,
        'server { listen 80; if ($request_uri = "/콜백") { return 403; }\n'
        "location = /콜백 { proxy_pass http://127.0.0.1:1; } }",
    )
    plan = make_plan(_opts(config, path="/콜백"), (1, 22, 1))
    assert plan.location.where.endswith(":4")


def test_a_server_level_guard_on_the_request_uri_leaves_the_copy_alone(tmp_path: Path) -> None:
    """A subrequest keeps its main request's $request_uri (the callback's path), so a guard
    on it does not see hookshift's internal URI."""
    config = _write(
        tmp_path,
        "server { listen 80; if ($request_uri ~ ^/__) { return 403; }\n"
        "location = /cb { proxy_pass http://127.0.0.1:1; } }",
    )
    assert make_plan(_opts(config), (1, 22, 1)).changes


@pytest.mark.parametrize(
    ("server_level", "raised"),
    [("", True), ("client_body_buffer_size 16k;", True), ("client_body_buffer_size 1m;", False)],
)
def test_the_body_buffer_is_raised_but_never_lowered(
    tmp_path: Path, server_level: str, raised: bool
) -> None:
    config = _write(
        tmp_path,
        f"server {{ listen 80; {server_level}\n"
        "location = /cb { proxy_pass http://127.0.0.1:1; } }",
    )
    added = _added(make_plan(_opts(config), (1, 22, 1)).changes[0].new_text)
    in_location = added[added.index("mirror /__hookshift_mirror;") :]
    assert ("client_body_buffer_size 128k;" in in_location) is raised


def test_stage_dns_reload_puts_the_stage_in_the_breaker_with_keepalive(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), stage_dns="reload"), (1, 22, 1))
    text = plan.changes[0].new_text
    assert plan.layout == "two-hop" and plan.stage_dns == "reload"
    breaker = _block(text, "upstream hookshift_stage {")
    assert "server abc123.execute-api.ap-northeast-2.amazonaws.com:443 max_fails=1" in breaker
    assert "server unix:/nonexistent/hookshift-breaker-open.sock backup;" in breaker
    assert "keepalive 32;" in breaker, "as many idle connections as copies may be in flight"
    stage = _block(text, "location = /__hookshift_stage {")
    for line in (
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_next_upstream error timeout http_500 http_502 http_503 http_504 non_idempotent;",
        "proxy_next_upstream_tries 2;",
        "proxy_ssl_server_name on;",
        "proxy_ssl_name abc123.execute-api.ap-northeast-2.amazonaws.com;",
        "proxy_ssl_verify on;",
        "proxy_set_header Host abc123.execute-api.ap-northeast-2.amazonaws.com;",
        "proxy_pass https://hookshift_stage/prod$request_uri;",
    ):
        assert line in stage, line
    assert "resolver " not in text, "no run-time DNS: the upstream holds the names"
    assert "relay-stage.sock" not in text, "no stage hop"
    assert any("hookshift mirror refresh" in i and "system resolver" in i for i in plan.info)
    as_json = plan.to_json()
    assert as_json["stage_dns"] == "reload" and as_json["keepalive_to_stage"] is True


def test_stage_dns_runtime_is_the_default_and_keeps_connections_to_the_planned_address(
    tmp_path: Path,
) -> None:
    """An upstream naming the stage's host would make nginx resolve it to start at all (a DNS
    failure at a restart would stop every site), so that is never the default. The default
    keeps connections to the address the resolver gave when planning, written as an address,
    and says how to keep it current; without one every copy goes by the name."""
    config = _write(tmp_path, SIMPLE)
    plan = make_plan(_opts(config), (1, 22, 1))
    assert plan.stage_dns == "runtime"
    assert plan.to_json()["keepalive_to_stage"] is False
    assert "hookshift_stage_keepalive" not in plan.changes[0].new_text
    (line,) = [i for i in plan.info if "(the default)" in i]
    assert "not resolved when planning" in line and "new TCP and TLS connection" in line
    assert not plan.warnings
    known = make_plan(_opts(config, stage_addresses=("192.0.2.10", "192.0.2.11")), (1, 22, 1))
    assert known.stage_addresses == ("192.0.2.10",), "one address: the breaker's one server"
    as_json = known.to_json()
    assert as_json["keepalive_to_stage"] is True and as_json["stage_addresses"] == ["192.0.2.10"]
    text = known.changes[0].new_text
    assert "upstream hookshift_stage_keepalive {" in text
    assert "server 192.0.2.10:443 max_fails=1 fail_timeout=10s;" in text
    assert not re.search(r"server \S*execute-api", text), "no name for nginx to resolve at start"
    (line,) = [i for i in known.info if "(the default)" in i]
    assert "192.0.2.10" in line and f"hookshift mirror refresh --config {config}" in line
    reload = make_plan(_opts(config, stage_dns="reload"), (1, 22, 1))
    assert reload.to_json()["stage_dns"] == "reload"
    assert reload.to_json()["keepalive_to_stage"] is True
    (line,) = [i for i in reload.info if "hookshift mirror refresh" in i]
    assert f"--config {config}" in line and "refresh-units" in line
    assert "cannot start" in line
    assert not any("mirror refresh" in i for i in make_plan(_opts(config), (1, 27, 3)).info)


def test_stage_dns_reload_has_no_effect_on_1_27_3_and_says_so(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), stage_dns="reload"), (1, 27, 3))
    assert plan.layout == "upstream-resolve" and plan.stage_dns == "runtime"
    assert "hookshift_stage_keepalive" not in plan.changes[0].new_text
    assert any("--stage-dns reload has no effect" in w for w in plan.warnings)
    assert plan.to_json()["keepalive_to_stage"] is True


def test_the_relay_logs_errors_beside_the_parity_log_else_beside_the_access_log(
    tmp_path: Path,
) -> None:
    config = _write(tmp_path, SIMPLE)
    plan = make_plan(_opts(config), (1, 22, 1))
    added = _added(plan.changes[0].new_text)
    assert "error_log /var/log/nginx/hookshift-mirror.error.log warn;" in added
    assert plan.to_json()["mirror_error_log"] == "/var/log/nginx/hookshift-mirror.error.log"
    beside = make_plan(_opts(config, parity_log=tmp_path / "logs" / "parity.log"), (1, 22, 1))
    assert f"error_log {tmp_path}/logs/hookshift-mirror.error.log warn;" in _added(
        beside.changes[0].new_text
    )
    chosen = make_plan(_opts(config, mirror_error_log=Path("/srv/log/m.log")), (1, 22, 1))
    assert "error_log /srv/log/m.log warn;" in _added(chosen.changes[0].new_text)
    no_parity = make_plan(_opts(config, parity_log=None), (1, 22, 1))
    assert "error_log /var/log/app/hookshift-mirror.error.log warn;" in _added(
        no_parity.changes[0].new_text
    )
    assert (
        "the relay's error log goes to /var/log/app/hookshift-mirror.error.log, beside the "
        "access log nginx writes for the callback (`access_log /var/log/app/access.log main "
        f"buffer=32k` at {config}:3); --mirror-error-log puts it elsewhere"
    ) in no_parity.info


def test_the_mirror_error_log_is_only_in_hookshifts_servers(tmp_path: Path) -> None:
    """nginx applies a location's error_log to main requests only, never to a mirror
    subrequest, so one in the internal location would be a no-op; the user's own error logs
    are left alone."""
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), stage_dns="runtime"), (1, 22, 1))
    added = _added(plan.changes[0].new_text)
    assert sum(line.startswith("error_log") for line in added) == 2  # relay and stage hop
    for name in ("hookshift-mirror-relay", "hookshift-mirror-stage"):
        assert added[added.index(f"server_name {name};") + 2].startswith("error_log ")
    newer = make_plan(_opts(_write(tmp_path, SIMPLE)), (1, 27, 3))
    assert sum(line.startswith("error_log") for line in _added(newer.changes[0].new_text)) == 1


@pytest.mark.parametrize("version", [(1, 22, 1), (1, 27, 3)])
def test_http_level_gates_reach_every_relay_layout(
    tmp_path: Path, version: tuple[int, int, int]
) -> None:
    """The relay is a server of its own on every layout: it turns the http level's allow/deny
    list and authentication off for itself (each relay server once), and says which
    http-level limits it cannot turn off."""
    config = _write(
        tmp_path,
        "deny 10.0.0.0/8;\nauth_basic hooks;\nlimit_req zone=z;\n"
        "server { listen 80; location = /cb { proxy_pass http://127.0.0.1:9000; } }",
    )
    plan = make_plan(_opts(config), version)
    added = _added(plan.changes[0].new_text)
    relays = added.count("server_name hookshift-mirror-relay;") + added.count(
        "server_name hookshift-mirror-stage;"
    )
    assert relays >= 1
    assert added.count("allow all;") == added.count("auth_basic off;") == relays
    assert "auth_request off;" not in added  # not used: a build without the module is fine
    gated = [w for w in plan.warnings if w.startswith("http-level")]
    assert len(gated) == 1 and gated[0].startswith("http-level `limit_req`")


def test_copies_in_flight_have_a_ceiling_whatever_worker_connections_allow(
    tmp_path: Path,
) -> None:
    """Each copy in flight may need a new connection (and TLS handshake) to the stage when a
    stage slows down; a cap of thousands would spend the onset's CPU on handshakes."""
    config = _write(tmp_path, SIMPLE)
    config.write_text(
        config.read_text().replace("events {}", "events { worker_connections 32768; }")
    )
    added = _added(make_plan(_opts(config), (1, 22, 1)).changes[0].new_text)
    assert "limit_conn hookshift_copies 512;" in added
    assert "keepalive 512;" in added, "the pool is sized to the cap"
    tuned = _opts(config, tuning=Tuning(max_copies=1024))
    assert "limit_conn hookshift_copies 1024;" in _added(
        make_plan(tuned, (1, 22, 1)).changes[0].new_text
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("resolvers", ("1.1.1.1; allow all",), "is not an IP address with an optional port"),
        ("resolvers", ("",), "is not an IP address with an optional port"),
        ("relay_socket", "relay.sock", "--relay-socket must be an absolute path"),
        ("relay_socket", "/run/hook shift/r.sock", "--relay-socket must be an absolute path"),
        ("request_id_header", "X-Id $request_id", "--request-id-header must be an HTTP header"),
        ("keep_headers", ("X-Sig:1",), "--keep-header must be an HTTP header name"),
        ("timeout", -1.0, "--timeout must be a number of seconds above 0"),
        ("timeout", float("nan"), "--timeout must be a number of seconds above 0"),
    ],
)
def test_option_values_that_would_not_stay_one_nginx_word_are_refused(
    tmp_path: Path, option: str, value: object, message: str
) -> None:
    config = _write(tmp_path, SIMPLE)
    with pytest.raises(InputError, match=re.escape(message)):
        make_plan(_opts(config, **{option: value}), (1, 22, 1))


def test_a_location_in_a_snippet_two_servers_include_is_refused(tmp_path: Path) -> None:
    """Lines written into a shared snippet would mirror and log the other server's callbacks
    (its app would even get the copies: it has no internal mirror location)."""
    (tmp_path / "webhooks.conf").write_text(
        "location /webhooks/ { proxy_pass http://127.0.0.1:9000; }\n"
    )
    config = _write(
        tmp_path,
        "server { listen 80; server_name api.test; include webhooks.conf; }\n"
        "server { listen 80; server_name staging.test; include webhooks.conf; }",
    )
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(InputError) as err:
        make_plan(_opts(config, path="/webhooks/sms", server_name="api.test"), (1, 22, 1))
    line = err.value.line()
    assert f"{tmp_path / 'webhooks.conf'}:1" in line and "included in 2 places" in line
    assert "(api.test)" in line and "(staging.test)" in line
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_query_string_in_the_path_is_said_not_to_be_matched(tmp_path: Path) -> None:
    config = _write(
        tmp_path, "server { listen 80; location /cb { proxy_pass http://127.0.0.1:1; } }"
    )
    plan = make_plan(_opts(config, path="/cb?v=2"), (1, 22, 1))
    assert any(i.startswith("the query string in --path (?v=2) is not matched") for i in plan.info)
    assert r'"~^/cb(\\?|$)" 1;' in plan.changes[0].new_text  # nginx unescapes the \\


def test_a_forgotten_semicolon_is_named_instead_of_the_path(tmp_path: Path) -> None:
    """`server_name x` + `location ...` on the next line: nginx reads the location as server
    names; the plan finds no location, and says why rather than blaming --path."""
    config = _write(
        tmp_path,
        "server { listen 80;\n  server_name hooks.test\n"
        "  location /cb { proxy_pass http://127.0.0.1:1; } }",
    )
    with pytest.raises(InputError) as err:
        make_plan(_opts(config), (1, 22, 1))
    assert err.value.where == f"{config}:4" and "runs on into line 5" in err.value.line()


@pytest.mark.parametrize("path", ["", "callback", "~^/callback", "=/callback"])
def test_a_path_that_is_not_a_url_path_is_refused_with_what_to_pass(
    tmp_path: Path, path: str
) -> None:
    config = _write(
        tmp_path, "server { listen 80; location /cb { proxy_pass http://127.0.0.1:1; } }"
    )
    with pytest.raises(InputError) as err:
        make_plan(_opts(config, path=path), (1, 22, 1))
    assert err.value.line() == (
        f"--path must start with '/': {path!r} (fix: pass the path the vendor posts to, as in "
        "its URL (e.g. --path /callback), not a location pattern)"
    )


@pytest.mark.parametrize(
    "setting", ["proxy_request_buffering off;", "fastcgi_request_buffering off;"]
)
def test_a_location_that_streams_bodies_is_warned_about(tmp_path: Path, setting: str) -> None:
    config = _write(
        tmp_path,
        f"server {{ listen 80; location /cb {{ {setting} proxy_pass http://127.0.0.1:1; }} }}",
    )
    warnings = make_plan(_opts(config), (1, 22, 1)).warnings
    assert any(w.startswith(f"`{setting[:-1]}` ({config}:3) stops streaming") for w in warnings)


def test_a_break_or_a_rewrite_of_the_location_itself_is_not_warned_about(tmp_path: Path) -> None:
    """The route reached the app through them: they did not end the callback."""
    config = _write(
        tmp_path,
        "server { listen 80; location /api/ { rewrite ^/api/(.*)$ /$1 break;\n"
        "rewrite ^/other$ /x last; proxy_pass http://127.0.0.1:1; } }",
    )
    assert not make_plan(_opts(config, path="/api/cb"), (1, 22, 1)).warnings


def test_a_file_a_tool_writes_again_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "vhost.conf").write_text(
        "# DO NOT MODIFY THIS FILE BECAUSE IT WAS GENERATED AUTOMATICALLY\n"
        "server { listen 80; location /cb { proxy_pass http://127.0.0.1:1; } }\n"
    )
    config = _write(tmp_path, "include vhost.conf;")
    (told,) = [w for w in make_plan(_opts(config), (1, 22, 1)).warnings if "by a tool" in w]
    assert told.startswith(f"{tmp_path / 'vhost.conf'} looks written by a tool (line 1:")


@pytest.mark.parametrize(
    ("names", "warned"),
    [
        ("hooks.test", False),
        ("*.hooks.test", True),
        ("~^(?<tenant>[a-z]+)\\.hooks\\.test$", True),
        (".hooks.test", True),
    ],
)
def test_a_server_that_takes_other_hosts_too_is_warned_about(
    tmp_path: Path, names: str, warned: bool
) -> None:
    """The filter is on the path: another tenant's callbacks would be copied and logged."""
    host = "hooks.test" if names in ("hooks.test", ".hooks.test") else "acme.hooks.test"
    config = _write(
        tmp_path,
        f"server {{ listen 80; server_name {names};\n"
        "location /cb { proxy_pass http://127.0.0.1:1; } }",
    )
    warnings = make_plan(_opts(config, server_name=host), (1, 22, 1)).warnings
    assert any("for the other hosts it takes are copied" in w for w in warnings) is warned


def test_a_query_in_path_is_said_to_be_left_out_of_the_plan(tmp_path: Path) -> None:
    plan = make_plan(_opts(_write(tmp_path, SIMPLE), path="/cb?type=result"), (1, 22, 1))
    assert plan.location.where.endswith(":7")
    assert any(
        i.startswith("--path /cb?type=result: only the path /cb is planned on") for i in plan.info
    )


@pytest.mark.parametrize(
    ("name", "says", "fix"),
    [
        ("", "--server-name is empty", "leave --server-name out"),
        ("hooks.example.com ", "--server-name 'hooks.example.com ': a host name has no spaces",
         "--server-name hooks.example.com"),
    ],
    ids=["empty", "trailing-space"],
)  # fmt: skip
def test_a_server_name_nothing_could_send_is_refused(
    tmp_path: Path, name: str, says: str, fix: str
) -> None:
    with pytest.raises(InputError) as refused:
        make_plan(_opts(_write(tmp_path, SIMPLE), server_name=name), (1, 22, 1))
    assert refused.value.what == says
    assert refused.value.fix is not None and refused.value.fix.startswith(fix)


def test_a_server_with_a_repeated_location_is_refused_naming_both(tmp_path: Path) -> None:
    """nginx -t refuses it (`duplicate location`): which one nginx would use is no question."""
    config = _write(
        tmp_path,
        "    server {\n        listen 80;\n"
        "        location /cb { proxy_pass http://127.0.0.1:9000; }\n"
        "        location ^~ /cb { proxy_pass http://127.0.0.1:9001; }\n    }",
    )
    with pytest.raises(InputError) as refused:
        make_plan(_opts(config), (1, 22, 1))
    assert refused.value.where == f"{config}:6"
    assert refused.value.what.startswith(f"location ^~ /cb repeats the one at {config}:5")


def test_a_limit_except_that_takes_post_with_its_own_access_log_is_refused(
    tmp_path: Path,
) -> None:
    config = _write(
        tmp_path,
        "    server {\n        listen 80;\n        location = /cb {\n"
        "            limit_except GET { access_log off; }\n"
        "            proxy_pass http://127.0.0.1:9000;\n        }\n    }",
    )
    with pytest.raises(InputError) as refused:
        make_plan(_opts(config), (1, 22, 1))
    assert refused.value.where == f"{config}:6"
    assert "`limit_except GET` in location = /cb has its own `access_log off`" in (
        refused.value.what
    )


def test_named_locations_may_repeat_as_nginx_lets_them(tmp_path: Path) -> None:
    """nginx -t accepts two `location @app` and uses the first."""
    config = _write(
        tmp_path,
        "    server {\n        listen 80;\n"
        "        location = /cb { try_files /none @app; }\n"
        "        location @app { proxy_pass http://127.0.0.1:9000; }\n"
        "        location @app { proxy_pass http://127.0.0.1:9001; }\n    }",
    )
    plan = make_plan(_opts(config), (1, 22, 1))
    assert plan.location.where == f"{config}:6"


@pytest.mark.parametrize(
    "body",
    [
        # the location's line goes on after its `{` and ends in the mark
        "    server {\n        listen 80;\n"
        "        location = /cb { proxy_pass http://127.0.0.1:9000; }  # hookshift\n    }",
        # the same with the http-level lines going after a map hash size on such a line
        "    map_hash_bucket_size 128; proxy_buffering on;  # hookshift\n" + SIMPLE,
    ],
    ids=["location", "after a statement"],
)
def test_a_users_line_ending_in_the_mark_that_would_be_split_is_refused(
    tmp_path: Path, body: str
) -> None:
    """`mirror remove` takes out the marked lines apply added: the rest of a split user line
    that ends in the mark would read as added, and remove would take the user's statements."""
    config = _write(tmp_path, body)
    with pytest.raises(InputError) as err:
        make_plan(_opts(config), (1, 22, 1))
    line = next(n for n, text in enumerate(body.splitlines(), start=3) if "  # hookshift" in text)
    assert err.value.where == f"{config}:{line}"
    assert "ends in `# hookshift`" in str(err.value)


def test_a_users_line_ending_in_the_mark_that_stays_whole_is_given_back_by_remove(
    tmp_path: Path,
) -> None:
    """Lines hookshift does not split may end in the mark: the record tells them apart."""
    from hookshift.nginx import splice

    body = SIMPLE.replace("location = /cb {", "location = /cb {  # hookshift").replace(
        "listen 80;", "listen 80;  # hookshift"
    )
    config = _write(tmp_path, body)
    change = make_plan(_opts(config), (1, 22, 1)).changes[0]
    recorded, splits = splice.added_marks(change.old_text, change.new_text)
    assert splice.remove_recorded(change.new_text, recorded, splits).text == change.old_text


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (SIMPLE.replace("listen 80;", "listen 80;\n        mirror /audit;"), ["mirror /audit;"]),
        (
            "    mirror /audit;\n    mirror /shadow;\n" + SIMPLE,
            ["mirror /audit;", "mirror /shadow;"],
        ),
        (
            SIMPLE.replace(
                "location = /cb {\n            proxy_pass http://127.0.0.1:9000;\n        }",
                "location / {\n            mirror /audit;\n"
                "            location = /cb { proxy_pass http://127.0.0.1:9000; }\n        }",
            ),
            ["mirror /audit;"],
        ),
        (SIMPLE.replace("listen 80;", "listen 80;\n        mirror off;"), []),
    ],
    ids=["server", "http, two", "enclosing location", "server's off"],
)
def test_the_mirrors_a_location_inherits_are_declared_again_beside_hookshifts(
    tmp_path: Path, body: str, kept: list[str]
) -> None:
    """nginx's `mirror` is all or nothing per block: hookshift's own line in the callback's
    location would drop the mirrors it inherits (an audit copy), so they are declared again
    there, right after hookshift's, and said in a warning."""
    plan = make_plan(_opts(_write(tmp_path, body)), (1, 22, 1))
    added = _added(plan.changes[0].new_text)
    at = added.index("mirror /__hookshift_mirror;")
    assert added[at + 1 : at + 1 + len(kept)] == kept
    assert [
        line for line in added if line.startswith("mirror /") and "hookshift" not in line
    ] == kept
    said = [w for w in plan.warnings if "declares it again" in w]
    assert len(said) == (1 if kept else 0)
    assert not any("mirrors a second time" in w for w in plan.warnings)


def test_a_location_that_turns_mirroring_off_is_refused(tmp_path: Path) -> None:
    """nginx refuses any other `mirror` beside a block's own `mirror off` ("is duplicate")."""
    config = _write(
        tmp_path,
        SIMPLE.replace("listen 80;", "listen 80;\n        mirror /audit;").replace(
            "proxy_pass http://127.0.0.1:9000;",
            "mirror off;\n            proxy_pass http://127.0.0.1:9000;",
        ),
    )
    with pytest.raises(
        InputError, match=r"has `mirror off;`: nginx takes no other `mirror`"
    ) as err:
        make_plan(_opts(config), (1, 22, 1))
    assert err.value.where == f"{config}:9"


@pytest.mark.parametrize(
    ("body", "parity_said"),
    [
        (SIMPLE.replace("listen 80;", "listen 80;\n        client_body_in_file_only clean;"), 1),
        ("    client_body_in_file_only on;\n" + SIMPLE, 1),
        (
            "    client_body_in_file_only on;\n"
            + SIMPLE.replace(
                "location = /cb {", "location = /cb {\n client_body_in_file_only off;"
            ),
            0,
        ),
        ("    client_body_in_file_only off;\n" + SIMPLE, 0),
    ],
    ids=["server clean", "http on", "http on, location off", "off"],
)
def test_bodies_kept_in_files_only_are_said(tmp_path: Path, body: str, parity_said: int) -> None:
    """With client_body_in_file_only nginx keeps a body in a file only: `$request_body` is
    empty, so the parity log holds no body (checked with the real nginx). The relay turns it
    off for itself: an http-level `on` would keep every copy as a file nothing deletes."""
    plan = make_plan(_opts(_write(tmp_path, body)), (1, 22, 1))
    assert len([w for w in plan.warnings if "the parity log gets no body" in w]) == parity_said
    relay = [c.new_text for c in plan.changes if "hookshift-mirror-relay;" in c.new_text]
    assert relay and "client_body_in_file_only off;" in relay[0]
    quiet = make_plan(_opts(_write(tmp_path, body), parity_log=None), (1, 22, 1))
    assert not any("the parity log gets no body" in w for w in quiet.warnings)


def test_an_inherited_mirror_request_body_off_turned_on_for_the_kept_mirror_is_said(
    tmp_path: Path,
) -> None:
    """One mirror_request_body applies to every mirror of a location: hookshift's copies need
    the body, so the user's kept mirror gets it too there, and the plan says so."""
    body = SIMPLE.replace(
        "listen 80;", "listen 80;\n        mirror /audit;\n        mirror_request_body off;"
    )
    plan = make_plan(_opts(_write(tmp_path, body)), (1, 22, 1))
    assert "mirror_request_body on;" in _added(plan.changes[0].new_text)
    assert any("gets the callback's body too" in w for w in plan.warnings)
