"""nginx's inheritance rules in `nginx.inheritance`, and the real nginx agreeing with them."""

from __future__ import annotations

import http.client as http_client
import textwrap
from pathlib import Path

import pytest

from hookshift.nginx.config import Directive, NginxConfig, load
from hookshift.nginx.inheritance import (
    ARRAY_DIRECTIVES,
    Inheritance,
    effective,
    inherited_from,
    is_array,
)
from hookshift.procs import LOOPBACK, ManagedProcess, free_port, wait_for_port


def _load(tmp_path: Path, http: str, files: dict[str, str] | None = None) -> NginxConfig:
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n{textwrap.dedent(http)}\n}}\n"
    )
    return load(main)


def _chain(config: NginxConfig, *path: str) -> tuple[Directive, ...]:
    """The chain of blocks down to the last one of `path`: each step names a block by its
    name and arguments as written (``"server 8081"``, ``"location /api"``, ``"if"``)."""
    for d, parents in config.walk():
        chain = (*parents, d)
        if (
            d.is_block
            and len(chain) == len(path)
            and all(
                f"{b.name} {' '.join(b.args)}".startswith(step)
                for b, step in zip(chain, path, strict=True)
            )
        ):
            return chain
    raise AssertionError(f"no block {path}")


def _args(lines: tuple[Directive, ...]) -> list[str]:
    return [" ".join(d.args) for d in lines]


NESTED = """
    client_body_buffer_size 16k;
    proxy_set_header X-Http 1;
    add_header X-Http 1;
    server {
        listen 8081;
        proxy_set_header X-Server 1;
        proxy_set_header X-Server-Two 2;
        deny all;
        root /srv/site;
        location /api {
            proxy_set_header X-Api 1;
            client_body_buffer_size 64k;
            allow 127.0.0.1;
            proxy_pass http://127.0.0.1:9;
            location /api/v2 { return 204; }
            if ($arg_x) { add_header X-If 1; }
            limit_except GET { deny all; }
        }
        location /static { alias /srv/static; }
        location /plain { }
    }
"""


def test_scalar_comes_from_the_nearest_block_that_sets_it(tmp_path: Path) -> None:
    config = _load(tmp_path, NESTED)
    model = Inheritance(config)
    api = _chain(config, "http", "server", "location /api")
    plain = _chain(config, "http", "server", "location /plain")
    assert _args(model.effective(api, "client_body_buffer_size")) == ["64k"]
    assert _args(model.effective(plain, "client_body_buffer_size")) == ["16k"]
    assert model.inherited_from(plain, "client_body_buffer_size") is plain[0]
    assert model.inherited_from(api, "client_body_buffer_size") is None
    nested = _chain(config, "http", "server", "location /api", "location /api/v2")
    assert _args(model.effective(nested, "client_body_buffer_size")) == ["64k"]
    assert model.inherited_from(nested, "client_body_buffer_size") is api[-1]
    assert model.effective(plain, "resolver") == ()


def test_array_is_inherited_only_by_a_block_that_sets_none(tmp_path: Path) -> None:
    config = _load(tmp_path, NESTED)
    model = Inheritance(config)
    api = _chain(config, "http", "server", "location /api")
    plain = _chain(config, "http", "server", "location /plain")
    assert _args(model.effective(api, "proxy_set_header")) == ["X-Api 1"]
    assert _args(model.effective(plain, "proxy_set_header")) == ["X-Server 1", "X-Server-Two 2"]
    assert _args(model.dropped(api, "proxy_set_header")) == ["X-Server 1", "X-Server-Two 2"]
    assert model.dropped(plain, "proxy_set_header") == ()
    assert is_array("proxy_set_header") and is_array("mirror") and not is_array("resolver")


def test_allow_and_deny_are_one_list(tmp_path: Path) -> None:
    """The location's ``allow`` drops the server's ``deny all``: every client gets in."""
    config = _load(tmp_path, NESTED)
    model = Inheritance(config)
    api = _chain(config, "http", "server", "location /api")
    plain = _chain(config, "http", "server", "location /plain")
    assert model.effective(api, "deny") == ()
    assert _args(model.effective(api, "allow")) == ["127.0.0.1"]
    assert _args(model.dropped(api, "deny")) == ["all"]
    assert _args(model.effective(plain, "deny")) == ["all"]
    assert {"allow", "deny", "proxy_hide_header", "proxy_pass_header"} <= ARRAY_DIRECTIVES


def test_alias_hides_the_inherited_root(tmp_path: Path) -> None:
    config = _load(tmp_path, NESTED)
    static = _chain(config, "http", "server", "location /static")
    assert effective(config, static, "root") == ()
    assert _args(effective(config, static, "alias")) == ["/srv/static"]


def test_handler_reaches_if_and_limit_except_but_not_a_nested_location(tmp_path: Path) -> None:
    config = _load(tmp_path, NESTED)
    model = Inheritance(config)
    inside_if = _chain(config, "http", "server", "location /api", "if")
    limited = _chain(config, "http", "server", "location /api", "limit_except")
    nested = _chain(config, "http", "server", "location /api", "location /api/v2")
    assert _args(model.effective(inside_if, "proxy_pass")) == ["http://127.0.0.1:9"]
    assert model.inherited_from(limited, "proxy_pass") is inside_if[-2]
    assert model.effective(nested, "proxy_pass") == ()


def test_an_if_block_inherits_and_overrides_like_a_location(tmp_path: Path) -> None:
    config = _load(tmp_path, NESTED)
    model = Inheritance(config)
    inside_if = _chain(config, "http", "server", "location /api", "if")
    api = inside_if[:-1]
    assert _args(model.effective(api, "add_header")) == ["X-Http 1"]
    assert _args(model.effective(inside_if, "add_header")) == ["X-If 1"]
    assert _args(model.effective(inside_if, "proxy_set_header")) == ["X-Api 1"]


def test_rewrite_directives_apply_only_where_written(tmp_path: Path) -> None:
    config = _load(tmp_path, NESTED)
    nested = _chain(config, "http", "server", "location /api", "location /api/v2")
    assert _args(effective(config, nested, "return")) == ["204"]
    assert effective(config, nested[:-1], "return") == ()
    assert inherited_from(config, nested, "return") is None


def test_included_lines_count_as_the_including_block(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        f"""
        server {{
            listen 8081;
            include {tmp_path}/headers.conf;
            location /a {{ }}
            location /b {{ include {tmp_path}/one.conf; }}
        }}
        """,
        files={
            "headers.conf": "proxy_set_header X-A 1;\nproxy_set_header X-B 2;\n",
            "one.conf": "proxy_set_header X-C 3;\n",
        },
    )
    model = Inheritance(config)
    a = _chain(config, "http", "server", "location /a")
    b = _chain(config, "http", "server", "location /b")
    assert _args(model.effective(a, "proxy_set_header")) == ["X-A 1", "X-B 2"]
    assert model.inherited_from(a, "proxy_set_header") is a[1]
    assert _args(model.effective(b, "proxy_set_header")) == ["X-C 3"]


def test_add_header_inherit_merge_and_off(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
        add_header X-Http 1;
        server {
            listen 8081;
            add_header_inherit merge;
            add_header X-Server 1;
            location /merged { add_header X-Loc 1; }
            location /bare { }
            location /off { add_header_inherit off; }
            location /on { add_header_inherit on; add_header X-On 1; }
        }
        """,
    )
    model = Inheritance(config)
    server = ("http", "server")
    merged = _chain(config, *server, "location /merged")
    assert _args(model.effective(merged, "add_header")) == ["X-Loc 1", "X-Server 1", "X-Http 1"]
    assert model.dropped(merged, "add_header") == ()
    assert _args(model.effective(_chain(config, *server, "location /bare"), "add_header")) == [
        "X-Server 1",
        "X-Http 1",
    ]
    assert model.effective(_chain(config, *server, "location /off"), "add_header") == ()
    assert _args(model.effective(_chain(config, *server, "location /on"), "add_header")) == [
        "X-On 1"
    ]


# The real nginx as the oracle: each location answers with the headers it adds, and the
# upstream (a second server of the same nginx) echoes the request headers it received.
ORACLE = """
    access_log off;
    add_header X-Http http;
    proxy_set_header X-Http http;
    server {{
        listen {addr};
        proxy_set_header X-Server server;
        location /own {{
            add_header X-Loc own;
            proxy_set_header X-Loc own;
            proxy_pass http://{upstream};
        }}
        location /bare {{ proxy_pass http://{upstream}; }}
        location /nested {{
            add_header X-Outer outer;
            location /nested/inner {{ proxy_pass http://{upstream}; }}
        }}
        location /cond {{
            add_header X-Loc cond;
            if ($arg_x) {{ add_header X-If if; }}
            proxy_pass http://{upstream};
        }}
    }}
    server {{
        listen {upstream};
        # its own add_header keeps the http-level one off the answers proxied back
        add_header X-Upstream 1;
        location / {{ return 200 "X-Http=$http_x_http X-Server=$http_x_server X-Loc=$http_x_loc"; }}
    }}
"""
ECHOED = ("X-Http", "X-Server", "X-Loc")
SENT = ("X-Http", "X-Server", "X-Loc", "X-Outer", "X-If")


def _check_against(
    nginx_bin: str, tmp_path: Path, http: str, cases: dict[str, tuple[str, ...]]
) -> None:
    """Run nginx on `http` (a format string with {addr} and {upstream}); for each request of
    `cases`, the headers it answers with and those its upstream received must be the ones the
    model puts in effect in the chain of blocks named by the case."""
    port, upstream_port = free_port(), free_port()
    addr, upstream = f"{LOOPBACK}:{port}", f"{LOOPBACK}:{upstream_port}"
    config = _load(tmp_path, http.format(addr=addr, upstream=upstream))
    model = Inheritance(config)
    proc = ManagedProcess(
        name="nginx",
        argv=[nginx_bin, "-p", f"{tmp_path}/", "-c", str(config.main), "-g", "daemon off;"],
        log_path=tmp_path / "nginx.out",
    ).start(ready=lambda: wait_for_port(port))
    try:
        for uri, blocks in cases.items():
            chain = _chain(config, "http", "server", *blocks)
            conn = http_client.HTTPConnection(LOOPBACK, port, timeout=10)
            conn.request("GET", uri)
            response = conn.getresponse()
            body = response.read().decode()
            conn.close()
            added = {name for name in SENT if response.getheader(name) is not None}
            predicted = {d.args[0] for d in model.effective(chain, "add_header")}
            assert added == predicted, uri
            received = {part.split("=", 1)[0] for part in body.split() if not part.endswith("=")}
            predicted = {d.args[0] for d in model.effective(chain, "proxy_set_header")}
            assert received == predicted & set(ECHOED), uri
    finally:
        proc.stop()


@pytest.mark.e2e
def test_real_nginx_applies_the_headers_the_model_predicts(nginx_bin: str, tmp_path: Path) -> None:
    cases = {
        "/own": ("location /own",),
        "/bare": ("location /bare",),
        "/nested/inner": ("location /nested", "location /nested/inner"),
        "/cond": ("location /cond",),
        "/cond?x=1": ("location /cond", "if"),
    }
    _check_against(nginx_bin, tmp_path, ORACLE, cases)


MAINLINE = Path("/opt/hookshift-nginx-mainline/sbin/nginx")

MERGING = """
    access_log off;
    add_header X-Http http;
    server {{
        listen {addr};
        add_header_inherit merge;
        add_header X-Server server;
        location /merged {{ add_header X-Loc merged; proxy_pass http://{upstream}; }}
        location /off {{
            add_header_inherit off;
            location /off/nested {{ proxy_pass http://{upstream}; }}
            proxy_pass http://{upstream};
        }}
        location /on {{
            add_header_inherit on;
            add_header X-Loc on;
            if ($arg_x) {{ add_header X-If if; }}
            proxy_pass http://{upstream};
        }}
    }}
    server {{
        listen {upstream};
        add_header X-Upstream 1;
        location / {{ return 200 ""; }}
    }}
"""


@pytest.mark.e2e
@pytest.mark.skipif(not MAINLINE.exists(), reason="needs nginx 1.29.3+ (add_header_inherit)")
def test_mainline_nginx_merges_headers_as_the_model_predicts(tmp_path: Path) -> None:
    cases = {
        "/merged": ("location /merged",),
        "/off": ("location /off",),
        "/off/nested": ("location /off", "location /off/nested"),
        "/on": ("location /on",),
        "/on?x=1": ("location /on", "if"),
    }
    _check_against(str(MAINLINE), tmp_path, MERGING, cases)


def test_shared_list_keeps_the_written_order(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
        server {
            listen 8081;
            deny all;
            location /a { deny 10.0.0.1; allow 10.0.0.0/8; deny 192.168.0.1; }
            location /b { }
        }
        """,
    )
    model = Inheritance(config)
    a = _chain(config, "http", "server", "location /a")
    b = _chain(config, "http", "server", "location /b")
    assert [(d.name, *d.args) for d in model.shared(a, "deny")] == [
        ("deny", "10.0.0.1"),
        ("allow", "10.0.0.0/8"),
        ("deny", "192.168.0.1"),
    ]
    assert [(d.name, *d.args) for d in model.shared(b, "allow")] == [("deny", "all")]
