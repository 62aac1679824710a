"""The shape of the mirror: a copy sent straight to the stage holds the callback; a relay that
answers first does not. And the copy must not carry the vendor's credentials off the host."""

from __future__ import annotations

from hookshift.doctor import Severity
from tests.doctor.conftest import Diagnose, codes, only
from tests.doctor.samples import STAGE, protected_mirror, seed_mirror

# What hookshift wrote before its relay answered first: the copy goes through a local server
# that proxies on to the stage, so the callback still waits for the stage.
PASS_THROUGH_RELAY = protected_mirror().replace(
    """    location = /bizppurio/callback {
        mirror /_hookshift_stage;
        empty_gif;
        error_page 405 =204 @accepted;
    }""",
    """    location = /bizppurio/callback {
        proxy_pass http://hookshift_stage$request_uri;
    }""",
)


def test_the_direct_shape_is_named_the_copy_holds_the_callback(diagnose_http: Diagnose) -> None:
    finding = only(diagnose_http(seed_mirror()), "mirror-holds-callback")
    assert finding.severity is Severity.WARNING
    assert finding.message.startswith("the copy holds the callback")
    assert "latency is added to each one" in finding.message
    assert "local relay that answers at once" in finding.fix


def test_a_relay_that_only_passes_the_copy_on_still_holds_the_callback(
    diagnose_http: Diagnose,
) -> None:
    assert protected_mirror() != PASS_THROUGH_RELAY
    assert "mirror-holds-callback" in codes(diagnose_http(PASS_THROUGH_RELAY))


def test_a_relay_that_answers_first_does_not_hold_the_callback(diagnose_http: Diagnose) -> None:
    """Nor is the relay's own mirror (to the stage) taken for a callback's."""
    assert "mirror-holds-callback" not in codes(diagnose_http(protected_mirror()))


def test_a_copy_that_forwards_credentials_is_flagged_with_the_headers_it_passes(
    diagnose_http: Diagnose,
) -> None:
    seed = only(diagnose_http(seed_mirror()), "mirror-forwards-credentials")
    assert "(authorization, cookie, proxy-authorization)" in seed.message
    cookie_kept = protected_mirror().replace('proxy_set_header Cookie "";\n', "")
    finding = only(diagnose_http(cookie_kept), "mirror-forwards-credentials")
    assert "(cookie)" in finding.message
    assert "mirror-forwards-credentials" not in codes(diagnose_http(protected_mirror()))


# A certbot-managed site: the callback server listens on 443 on every address, and its mirror
# sends the copy straight to the stage, also on 443.
CERTBOT_SITE = f"""
upstream app {{ server 127.0.0.1:9000; }}
server {{
    server_name hooks.example.com;
    proxy_set_header Host $host;
    location /bizppurio/callback {{
        mirror /mirror_api_gw;
        proxy_pass http://app;
    }}
    location /admin/ {{
        proxy_set_header X-Admin 1;
        proxy_pass http://app;
    }}
    location = /mirror_api_gw {{
        internal;
        proxy_set_header Host {STAGE};
        proxy_pass https://{STAGE}/dev$request_uri;
    }}
    listen 443 ssl; # managed by Certbot
    listen [::]:443 ssl ipv6only=on; # managed by Certbot
}}
"""


def test_a_server_on_the_stages_port_is_not_taken_for_a_relay(diagnose_http: Diagnose) -> None:
    """`listen 443` takes what is sent to this host's port 443, not to the stage's: the copy
    still goes to the stage from the callback's own request, and the site's other locations
    are the app's, not the mirror's."""
    found = diagnose_http(CERTBOT_SITE)
    held = only(found, "mirror-holds-callback")
    assert "`mirror /mirror_api_gw` in location /bizppurio/callback" in held.message
    dropped = [f for f in found if f.code == "proxy-set-header-drops-inherited"]
    admin = next(f for f in dropped if "location /admin/" in f.message)
    assert admin.severity is Severity.WARNING
    assert "sends to the stage" not in admin.message


def test_a_relay_on_a_loopback_port_of_a_wildcard_listen_answers_first(
    diagnose_http: Diagnose,
) -> None:
    """The other side: a relay server on `listen 8099` (every address) is reached through
    127.0.0.1:8099, so the callback does not wait for the stage."""
    relay = (
        protected_mirror()
        .replace(
            "proxy_pass http://unix:/run/hookshift/relay.sock:$request_uri;",
            "proxy_pass http://127.0.0.1:8099$request_uri;",
        )
        .replace("listen unix:/run/hookshift/relay.sock;", "listen 8099;")
    )
    assert relay.count("8099") == 2
    assert "mirror-holds-callback" not in codes(diagnose_http(relay))
