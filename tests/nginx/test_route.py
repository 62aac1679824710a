"""The route follows nginx's internal redirects to the location whose content handler runs;
the server choice is per socket family and refuses what is not the callback's receiver."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hookshift.errors import InputError
from hookshift.nginx.matching import Match, match
from hookshift.nginx.source import load_source


def _match(
    tmp_path: Path,
    servers: str,
    path: str = "/callback",
    *,
    host: str | None = None,
    listen: str | None = None,
) -> Match:
    config = tmp_path / "nginx.conf"
    config.write_text("events {}\nhttp {\n" + servers + "\n}\n")
    return match(load_source(config).config, path, host=host, listen=listen)


def _final(m: Match) -> str:
    return " ".join(m.location.args)


APP = "proxy_pass http://127.0.0.1:9000;"


def test_try_files_to_a_named_location_ends_in_it(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        f"server {{ listen 80; location / {{ try_files /nonexistent @app; }}\n"
        f"location @app {{ {APP} }} }}",
    )
    assert _final(m) == "@app"
    assert m.route.describe() == "/callback -> location / (try_files) -> location @app"
    assert any("route: /callback -> location / (try_files) -> location @app" in i for i in m.info)
    assert any("taken as absent" in i for i in m.info)


def test_try_files_to_a_uri_is_matched_again(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; root /srv/app/public;\n"
        "location / { try_files $uri $uri/ /index.php?$query_string; }\n"
        "location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
    )
    assert _final(m) == "~ \\.php$"
    assert m.route.final.uri == "/index.php"
    assert "location ~ \\.php$ as /index.php" in m.route.describe()


def test_rewrite_last_into_an_exact_location(tmp_path: Path) -> None:
    text = (
        f"server {{ listen 80; location = /callback {{ {APP} }}\n"
        "location ~ ^/[^/]+/callback$ { rewrite ^ /callback last; } }"
    )
    m = _match(tmp_path, text, "/tenant1/callback")
    assert _final(m) == "= /callback"
    assert "(rewrite ... last" in m.route.describe()


def test_rewrite_break_stays_and_a_redirect_answers(tmp_path: Path) -> None:
    text = (
        f"server {{ listen 80; location /cb {{ rewrite ^/cb(.*)$ /app$1 break; {APP} }}\n"
        "location /app { return 404; }\n"
        "location /old { rewrite ^ https://example.com/ permanent; } }"
    )
    assert _final(_match(tmp_path, text, "/cb")) == "/cb"
    with pytest.raises(InputError, match=re.escape("`rewrite ^ https://example.com/ permanent`")):
        _match(tmp_path, text, "/old")


def test_server_level_rewrites_run_before_the_location_is_chosen(tmp_path: Path) -> None:
    text = (
        "server { listen 80; rewrite ^/v1/(.*)$ /$1 last;\n"
        f"location / {{ return 404; }} location = /callback {{ {APP} }} }}"
    )
    m = _match(tmp_path, text, "/v1/callback")
    assert _final(m) == "= /callback"


def test_a_server_level_rewrite_is_shown_in_the_route(tmp_path: Path) -> None:
    text = (
        "server { listen 80; rewrite ^/hooks/(.*)$ /api/v2/$1 last;\n"
        f"location / {{ return 404; }} location = /api/v2/callback {{ {APP} }} }}"
    )
    m = _match(tmp_path, text, "/hooks/callback")
    assert _final(m) == "= /api/v2/callback"
    assert any(
        i.startswith("route: /hooks/callback (the server's rewrite at ")
        and i.endswith("-> location = /api/v2/callback as /api/v2/callback")
        for i in m.info
    ), m.info


def test_the_servers_own_try_files_applies_where_no_location_takes_the_path(
    tmp_path: Path,
) -> None:
    """Puma's and Passenger's templates: nginx inherits try_files into no location."""
    text = (
        "server { listen 80; root /srv/app/public;\n"
        "try_files $uri/index.html $uri @puma;\n"
        "location ^~ /assets/ { expires max; }\n"
        f"location @puma {{ {APP} }} }}"
    )
    m = _match(tmp_path, text, "/webhooks/status")
    assert _final(m) == "@puma"
    assert m.route.describe().startswith("/webhooks/status (the server's try_files at ")
    with pytest.raises(InputError, match="not passed to an app"):
        _match(tmp_path, text, "/assets/callback")  # a location takes it: no try_files there


def test_the_servers_404_is_handed_on_by_error_page_where_no_location_takes_the_path(
    tmp_path: Path,
) -> None:
    text = f"server {{ listen 80; error_page 404 = @app; location @app {{ {APP} }} }}"
    assert _final(_match(tmp_path, text)) == "@app"


def test_a_php_location_passes_its_existing_script_to_the_app(tmp_path: Path) -> None:
    """Debian's snippets/fastcgi-php.conf checks `$fastcgi_script_name` before fastcgi_pass:
    the front controller (or the callback's script) is there, or the site would not work."""
    text = (
        "server { listen 80; root /var/www/wordpress; index index.php;\n"
        "location / { try_files $uri $uri/ /index.php$is_args$args; }\n"
        "location ~ \\.php$ { try_files $fastcgi_script_name =404;\n"
        "  fastcgi_pass unix:/run/php/php8.2-fpm.sock; } }"
    )
    for path in ("/wp-json/wc/v3/webhooks/1", "/pg/notify.php"):
        m = _match(tmp_path, text, path)
        assert _final(m) == "~ \\.php$"
        assert any("taken as present" in i for i in m.info)


def test_an_if_on_the_host_is_decided_for_the_server_name_given(tmp_path: Path) -> None:
    """certbot's redirect server: `if ($host = NAME) { return 301 ...; }` then `return 404`."""
    text = (
        "server { listen 80; server_name shop.test;\n"
        "  if ($host = shop.test) { return 301 https://$host$request_uri; }\n"
        "  return 404; }\n"
        f"server {{ listen 443; server_name shop.test; location / {{ {APP} }} }}"
    )
    with pytest.raises(InputError) as err:
        _match(tmp_path, text, host="Shop.Test", listen="80")
    line = err.value.line()
    assert "`return 301 https://$host$request_uri`" in line and "before any location" in line
    assert "--listen 443" in line
    assert _final(_match(tmp_path, text, host="shop.test", listen="443")) == "/"


def test_error_page_is_followed_when_it_is_how_the_app_is_reached(tmp_path: Path) -> None:
    text = (
        "server { listen 80; error_page 404 = @app;\n"
        f"location / {{ try_files $uri =404; }} location @app {{ {APP} }} }}"
    )
    m = _match(tmp_path, text)
    assert _final(m) == "@app"
    assert "error_page 404" in m.route.describe()


def test_a_file_test_if_rewrites_to_the_front_controller(tmp_path: Path) -> None:
    """The legacy PHP pattern: the callback is not a file, so the `if` holds."""
    m = _match(
        tmp_path,
        "server { listen 80; root /srv/app;\n"
        "location / { if (!-e $request_filename) { rewrite ^(.*)$ /index.php?q=$1 last; } }\n"
        "location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; } }",
    )
    assert _final(m) == "~ \\.php$"
    assert any("`if (!-e $request_filename)`" in i and "taken as absent" in i for i in m.info)


def test_an_if_on_the_method_is_decided_and_any_other_is_said_to_be_skipped(
    tmp_path: Path,
) -> None:
    m = _match(
        tmp_path,
        "server { listen 80;\n"
        "location / { if ($http_x_test) { return 403; }\n"
        "  if ($request_method != POST) { return 405; }\n"
        "  if ($request_method ~* ^post$) { proxy_pass http://127.0.0.1:9000; } } }",
    )
    assert _final(m) == "/"
    assert m.route.end is not None and m.route.end.name == "proxy_pass"
    assert any("`if ($http_x_test)`" in i and "taken as false" in i for i in m.info)


def test_an_if_on_the_uri_is_decided_and_one_comparing_with_a_variable_is_not(
    tmp_path: Path,
) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; location / {\n"
        "  if ($request_uri ~ ^/other) { return 403; }\n"
        "  if ($uri ~ ^/callback$) { proxy_pass http://127.0.0.1:9000; }\n"
        "  if ($uri = $host) { return 403; } } }",
    )
    assert m.route.end is not None and m.route.end.name == "proxy_pass"
    assert any("`if ($uri = $host)`" in i and "taken as false" in i for i in m.info)
    assert not any("$request_uri ~ ^/other" in i for i in m.info)


def test_return_of_an_error_code_is_handed_on_by_error_page(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        f"server {{ listen 80; location / {{ error_page 418 = @app; return 418; }}\n"
        f"location @app {{ {APP} }} }}",
    )
    assert _final(m) == "@app"
    assert "location / (error_page 418" in m.route.describe()


def test_a_server_level_return_is_handed_on_by_error_page(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; error_page 418 = @app;\n"
        "if ($request_method = POST) { return 418; }\n"
        f"location / {{ return 404; }} location @app {{ {APP} }} }}",
    )
    assert _final(m) == "@app"
    assert m.route.describe().startswith("/callback (error_page 418 at ")


def test_error_page_hands_a_request_on_once_unless_recursive(tmp_path: Path) -> None:
    """nginx answers a second error itself: a loop through error_page is no redirect cycle."""
    looping = (
        "server { listen 80; error_page 404 /missing;\n"
        "location / { return 404; } location @app { proxy_pass http://127.0.0.1:9000; } }"
    )
    with pytest.raises(InputError, match=r"location / as /missing\) with `return 404`"):
        _match(tmp_path, looping)
    chained = (
        "server {{ listen 80;\n"
        "location / {{ {rec} error_page 404 = @one; return 404; }}\n"
        "location @one {{ error_page 404 = @app; return 404; }}\n"
        f"location @app {{{{ {APP} }}}} }}}}"
    )
    with pytest.raises(InputError, match=r"is answered by location @one"):
        _match(tmp_path, chained.format(rec=""))
    assert _final(_match(tmp_path, chained.format(rec="recursive_error_pages on;"))) == "@app"


def test_index_leads_to_the_app_for_a_directory_uri(tmp_path: Path) -> None:
    text = (
        "server { listen 80; index index.php;\n"
        "location / { } location ~ \\.php$ { fastcgi_pass unix:/run/php.sock; } }"
    )
    m = _match(tmp_path, text, "/hooks/")
    assert _final(m) == "~ \\.php$" and m.route.final.uri == "/hooks/index.php"


def test_a_redirect_cycle_is_refused(tmp_path: Path) -> None:
    text = (
        "server { listen 80; location /a { rewrite ^ /b last; }\n"
        "location /b { rewrite ^ /a last; } }"
    )
    with pytest.raises(InputError, match="more than 10 times"):
        _match(tmp_path, text, "/a")


def test_a_hand_off_to_a_missing_named_location_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="@gone"):
        _match(tmp_path, "server { listen 80; location / { try_files $uri @gone; } }")


@pytest.mark.parametrize(
    "location",
    [
        "location / { try_files $uri $uri/ =404; }",
        "location / { return 200; }",
        "location / { root /srv; }",
    ],
)
def test_a_location_that_hands_the_path_to_no_app_is_refused(tmp_path: Path, location: str) -> None:
    with pytest.raises(InputError, match=r"not passed to an app.*--server-name") as err:
        _match(tmp_path, f"server {{ listen 80; {location} }}")
    assert "\n" not in str(err.value)


STOCK = (
    "server { listen 80 default_server; listen [::]:80 default_server; root /var/www/html;\n"
    "  index index.html index.htm index.nginx-debian.html; server_name _;\n"
    "  location / { try_files $uri $uri/ =404; } }\n"
    "server { listen 80; server_name hooks.example.com;\n"
    f"  location /bizppurio/callback {{ {APP} }} }}"
)


def test_the_stock_debian_layout_works_with_the_server_name_alone(tmp_path: Path) -> None:
    m = _match(tmp_path, STOCK, "/bizppurio/callback", host="hooks.example.com")
    assert _final(m) == "/bizppurio/callback"
    assert [str(s) for s in m.sockets] == ["*:80"]
    assert any(
        "on [::]:80 a request for it would only reach the default server" in i for i in m.info
    )


@pytest.mark.parametrize("listen", ["80", "*:80", "0.0.0.0:80", "10.0.0.1:80"])
def test_ipv4_listen_forms_pick_the_ipv4_socket(tmp_path: Path, listen: str) -> None:
    m = _match(tmp_path, STOCK, "/bizppurio/callback", host="hooks.example.com", listen=listen)
    assert [str(s) for s in m.sockets] == ["*:80"]


def test_the_ipv6_wildcard_is_its_own_socket(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no server named hooks.example.com listens on \[::\]:80"):
        _match(tmp_path, STOCK, "/bizppurio/callback", host="hooks.example.com", listen="[::]:80")


def test_an_ipv6only_off_wildcard_takes_ipv4_too(tmp_path: Path) -> None:
    text = f"server {{ listen [::]:8080 ipv6only=off; location /callback {{ {APP} }} }}"
    m = _match(tmp_path, text, listen="127.0.0.1:8080")
    assert [str(s) for s in m.sockets] == ["[::]:8080"]


def test_an_explicit_address_wins_over_the_wildcard_of_its_family(tmp_path: Path) -> None:
    text = (
        f"server {{ listen 80; location /callback {{ {APP} }} }}\n"
        "server { listen 127.0.0.1:80; location /callback { proxy_pass http://127.0.0.1:2; } }\n"
        "server { listen [::1]:80; location /callback { proxy_pass http://127.0.0.1:3; } }"
    )
    assert _match(tmp_path, text, listen="127.0.0.1:80").server.line == 4
    assert _match(tmp_path, text, listen="10.1.1.1:80").server.line == 3
    assert _match(tmp_path, text, listen="[::1]:80").server.line == 5


def test_an_unknown_server_name_lists_the_closest_names_first(tmp_path: Path) -> None:
    text = STOCK + "\nserver { listen 80; server_name api.example.org; location / { return 1; } }"
    with pytest.raises(InputError) as err:
        _match(tmp_path, text, "/bizppurio/callback", host="hooks.exmaple.com")
    assert "no server is named hooks.exmaple.com" in str(err.value)
    assert "--server-name: hooks.example.com, api.example.org" in str(err.value)


def test_without_a_server_name_the_only_server_that_passes_the_path_is_chosen(
    tmp_path: Path,
) -> None:
    m = _match(tmp_path, STOCK, "/bizppurio/callback")
    assert m.server.line == 6
    assert any("the only server that passes /bizppurio/callback to an app" in i for i in m.info)


def test_a_server_named_in_a_line_is_cited_at_its_server_name_line(tmp_path: Path) -> None:
    """Debian's site file: `server {` on line 1, `server_name hooks.example.com;` on line 3."""
    (tmp_path / "sites-enabled").mkdir()
    site = tmp_path / "sites-enabled" / "hooks"
    site.write_text(
        f"server {{\n\tlisten 80;\n\tserver_name hooks.example.com;\n"
        f"\tlocation /bizppurio/callback {{\n\t\t{APP}\n\t}}\n}}\n"
    )
    config = tmp_path / "nginx.conf"
    config.write_text(
        "events {}\nhttp {\n"
        "server { listen 80 default_server; location / { return 404; } }\n"
        "include sites-enabled/*;\n}\n"
    )
    m = match(load_source(config).config, "/bizppurio/callback")
    (line,) = [i for i in m.info if "the only server" in i]
    assert line.startswith(f"server_name hooks.example.com ({site}:3) is the only server")
    # a server without a name is cited at its `server {` line
    with pytest.raises(InputError) as refused:
        match(load_source(config).config, "/other")
    assert f'server_name "" ({config}:3)' in str(refused.value)


def test_without_a_server_name_several_receivers_are_refused_by_name(tmp_path: Path) -> None:
    text = STOCK + f"\nserver {{ listen 80; server_name b.example.com; location / {{ {APP} }} }}"
    with pytest.raises(InputError) as err:
        _match(tmp_path, text, "/bizppurio/callback")
    message = str(err.value)
    assert "more than one server could receive" in message
    assert "hooks.example.com" in message and "b.example.com" in message
    assert "--server-name" in message


@pytest.mark.parametrize(
    "listen", ["garbage:xx", "99999", "a b:80", "[::1]:x", "", "[::1", "1.2.3.4.5:80", "unix:"]
)
def test_a_listen_option_that_names_no_socket_is_refused(tmp_path: Path, listen: str) -> None:
    with pytest.raises(InputError, match="is not a socket nginx listens on"):
        _match(tmp_path, f"server {{ listen 80; location / {{ {APP} }} }}", listen=listen)


def test_a_host_with_a_port_is_matched_by_its_name_as_nginx_does(tmp_path: Path) -> None:
    servers = (
        f"server {{ listen 80 default_server; location / {{ {APP} }} }}\n"
        f"server {{ listen 80; server_name hooks.test; location /callback {{ {APP} }} }}"
    )
    assert _final(_match(tmp_path, servers, host="Hooks.Test:80")) == "/callback"


def test_an_unknown_name_where_no_server_has_one_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no server is named x\.test:80") as err:
        _match(tmp_path, f"server {{ listen 80; location / {{ {APP} }} }}", host="x.test:80")
    assert "add `server_name x.test;`" in err.value.line()


def test_the_server_line_that_takes_a_uri_is_the_one_named(tmp_path: Path) -> None:
    from hookshift.nginx.route import server_takes

    config_path = tmp_path / "nginx.conf"
    config_path.write_text(
        "events {}\nhttp { server { listen 80;\n"
        "rewrite ^/v1/(.*)$ /$1;\nrewrite ^/__ /x;\n"
        "if ($uri ~ ^/blocked) { return 403; }\nlocation / { return 200; } } }\n"
    )
    config = load_source(config_path).config
    (server,) = config.servers()
    taken = server_takes(config, server, "/__hookshift_mirror")
    assert taken is not None and taken.args == ("^/__", "/x")
    blocked = server_takes(config, server, "/blocked")
    assert blocked is not None and blocked.name == "return"
    assert server_takes(config, server, "/callback") is None


def test_a_vendor_posting_to_an_address_gets_the_default_server(tmp_path: Path) -> None:
    text = (
        f"server {{ listen 80; server_name www.test; location / {{ {APP} }} }}\n"
        f"server {{ listen 80 default_server; server_name _; location /api/ {{ {APP} }} }}"
    )
    m = _match(tmp_path, text, "/api/callback", host="203.0.113.5")
    assert _final(m) == "/api/"
    assert any(i.startswith("no server is named 203.0.113.5: nginx gives") for i in m.info)
    with pytest.raises(InputError, match=r"no server is named ww\.test"):
        _match(tmp_path, text, "/api/callback", host="ww.test")  # a name: a typo, refused


@pytest.mark.parametrize(
    "front",
    [
        "location / { try_files $uri $uri/ /index.php$request_uri; }",  # Nextcloud's current
        "location / { rewrite ^ /index.php; }",  # its older config: a rewrite without a flag
    ],
)
def test_nextclouds_front_controller_is_followed(tmp_path: Path, front: str) -> None:
    text = f"server {{ listen 80; {front}\nlocation ~ \\.php(?:$|/) {{ {APP} }} }}"
    m = _match(tmp_path, text, "/apps/integration_github/webhook")
    assert _final(m) == "~ \\.php(?:$|/)"


def test_a_rewrite_without_a_flag_that_matches_again_is_a_cycle(tmp_path: Path) -> None:
    """nginx chooses the location again after any rewrite without a flag, even one that
    leaves the URI as it was: ten times, then 500."""
    text = f"server {{ listen 80; location / {{ rewrite ^(.*)$ $1; {APP} }} }}"
    with pytest.raises(InputError, match="redirected inside nginx more than 10 times"):
        _match(tmp_path, text)


def test_a_redirect_on_the_same_scheme_asks_for_the_path_the_vendor_posts_to(
    tmp_path: Path,
) -> None:
    text = (
        "server { listen 80; server_name ci.test; rewrite ^/jenkins$ /jenkins/ permanent;\n"
        f"location /jenkins/ {{ {APP} }} }}"
    )
    with pytest.raises(InputError) as err:
        _match(tmp_path, text, "/jenkins", host="ci.test")
    assert "a vendor does not follow a redirect with its POST" in err.value.line()
    assert "443" not in err.value.line()


def test_an_empty_host_test_is_shown_and_decided_for_a_named_vendor(tmp_path: Path) -> None:
    """GitLab's `if ($http_host = "")`: a vendor posting to a name sends that Host."""
    text = (
        'server { listen 80; server_name git.test; if ($http_host = "") { return 444; }\n'
        f"location / {{ {APP} }} }}"
    )
    assert _final(_match(tmp_path, text, host="git.test")) == "/"
    unnamed = _match(tmp_path, text)
    assert any('`if ($http_host = "")`' in i and "taken as false" in i for i in unnamed.info)


def test_a_path_one_slash_short_of_a_proxied_location_is_nginx_s_own_redirect(
    tmp_path: Path,
) -> None:
    """nginx answers /callback with a 301 to /callback/ when `location /callback/` passes to
    an app, before any regex or `location /`: a vendor's POST never reaches an app there."""
    servers = (
        "server { listen 80; location /callback/ { proxy_pass http://127.0.0.1:9000; }\n"
        "location ~ ^/callback$ { proxy_pass http://127.0.0.1:9001; }\n"
        "location / { proxy_pass http://127.0.0.1:9002; } }"
    )
    with pytest.raises(InputError) as refused:
        _match(tmp_path, servers)
    assert refused.value.where is not None and refused.value.where.endswith("nginx.conf:3")
    assert "with nginx's own 301 redirect to /callback/" in refused.value.what
    assert refused.value.fix is not None
    assert refused.value.fix.startswith("if the vendor posts to /callback/, pass --path /callback/")


@pytest.mark.parametrize(
    "taken_by",
    [
        "location = /callback { proxy_pass http://127.0.0.1:9001; }",
        "location /callback { proxy_pass http://127.0.0.1:9001; }",
    ],
    ids=["exact", "prefix"],
)
def test_a_location_named_the_path_itself_takes_it_before_the_redirect(
    tmp_path: Path, taken_by: str
) -> None:
    m = _match(
        tmp_path,
        f"server {{ listen 80; location /callback/ {{ {APP} }}\n{taken_by} }}",
    )
    assert m.route.reaches_app and _final(m).endswith("/callback")


def test_a_pass_inside_an_if_makes_no_redirect(tmp_path: Path) -> None:
    """The `if` is a location of its own to nginx: the redirect is the location's only."""
    m = _match(
        tmp_path,
        "server { listen 80;\n"
        "location /callback/ { if ($request_method = POST) { proxy_pass http://127.0.0.1:9; } }\n"
        f"location / {{ {APP} }} }}",
    )
    assert _final(m) == "/" and m.route.reaches_app


def test_an_internal_location_answers_a_client_s_own_request_with_404(tmp_path: Path) -> None:
    with pytest.raises(InputError) as refused:
        _match(tmp_path, f"server {{ listen 80; location /callback {{ internal; {APP} }} }}")
    assert "nginx's own 404: the location is `internal`" in refused.value.what


def test_an_internal_location_is_reached_by_a_redirect_inside_nginx(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; rewrite ^/callback$ /app/callback last;\n"
        f"location /app/ {{ internal; {APP} }} }}",
    )
    assert _final(m) == "/app/" and m.route.reaches_app


@pytest.mark.parametrize(
    "guard",
    ["deny all;", "limit_except GET { deny all; }", "limit_except GET HEAD { deny all; }"],
)
def test_a_location_that_denies_the_callback_s_post_is_refused(tmp_path: Path, guard: str) -> None:
    with pytest.raises(InputError) as refused:
        _match(tmp_path, f"server {{ listen 80; location /callback {{ {guard} {APP} }} }}")
    assert "with `deny all`" in refused.value.what


def test_limit_except_that_names_post_or_lets_the_vendor_through_reaches_the_app(
    tmp_path: Path,
) -> None:
    named = _match(
        tmp_path,
        f"server {{ listen 80; location /callback {{ limit_except POST {{ deny all; }} {APP} }} }}",
    )
    assert named.route.reaches_app
    by_address = _match(
        tmp_path,
        "server { listen 80; location /callback {\n"
        f"limit_except GET {{ allow 203.0.113.0/24; deny all; }} {APP} }} }}",
    )
    assert by_address.route.reaches_app
    assert any("allow 203.0.113.0/24" in i and "taken as one of them" in i for i in by_address.info)


def test_a_limited_method_skips_the_location_s_return_as_nginx_does(tmp_path: Path) -> None:
    """The block is a configuration of its own: a `return` of the location is not in it."""
    m = _match(
        tmp_path,
        "server { listen 80; location /callback {\n"
        f"return 403; limit_except GET {{ }} {APP} }} }}",
    )
    assert m.route.reaches_app


def test_a_pass_inside_limit_except_is_the_content_handler_for_the_method_it_limits(
    tmp_path: Path,
) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; location /callback {\n"
        "limit_except GET { proxy_pass http://127.0.0.1:9001; } return 403; } }",
    )
    assert m.route.reaches_app and m.route.end is not None
    assert m.route.end.args == ("http://127.0.0.1:9001",)


def test_an_internal_location_named_with_a_slash_answers_404_before_its_redirect(
    tmp_path: Path,
) -> None:
    """nginx checks `internal` before it redirects: error_page 404 may then hand it on."""
    m = _match(
        tmp_path,
        "server { listen 80; error_page 404 = @app;\n"
        f"location /callback/ {{ internal; {APP} }} location @app {{ {APP} }} }}",
    )
    assert _final(m) == "@app"


def test_nginx_s_own_redirect_is_handed_on_by_error_page_301(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; error_page 301 = @app;\n"
        f"location /callback/ {{ {APP} }} location @app {{ {APP} }} }}",
    )
    assert _final(m) == "@app" and m.route.reaches_app


def test_satisfy_any_lets_authentication_pass_what_deny_all_refuses(tmp_path: Path) -> None:
    m = _match(
        tmp_path,
        "server { listen 80; location /callback { satisfy any; deny all;\n"
        f'auth_basic "vendor"; auth_basic_user_file /etc/nginx/htpasswd; {APP} }} }}',
    )
    assert m.route.reaches_app
    assert any("under `satisfy any`" in i for i in m.info)


def test_deny_rules_for_addresses_before_deny_all_deny_everyone(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="with `deny all`"):
        _match(
            tmp_path,
            f"server {{ listen 80; location /callback {{ deny 10.0.0.0/8; deny all; {APP} }} }}",
        )


def test_a_redirect_reached_inside_nginx_is_not_fixed_by_another_path(tmp_path: Path) -> None:
    """The vendor posts /callback; nginx's 301 is of the URI a rewrite made of it."""
    with pytest.raises(InputError) as refused:
        _match(
            tmp_path,
            "server { listen 80; location /callback { rewrite ^ /app last; }\n"
            f"location /app/ {{ {APP} }} }}",
        )
    assert refused.value.fix is not None
    assert refused.value.fix.startswith("make /callback reach the app without nginx's redirect")
