"""The shape of the mirror: a copy sent straight to the stage holds the callback; a relay that
answers first does not. And the copy must not carry the vendor's credentials off the host."""

from __future__ import annotations

from hookshift.doctor import Severity
from tests.doctor.conftest import Diagnose, codes, only
from tests.doctor.samples import protected_mirror, seed_mirror

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
