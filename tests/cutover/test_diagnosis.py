"""From observations to cause + fix: every failure the runbook knows, named correctly."""

from __future__ import annotations

import pytest

from hookshift.cutover.diagnosis import (
    Diagnosis,
    DnsObservation,
    HttpObservation,
    ProbeObservation,
    QueueObservation,
    TlsObservation,
    diagnose,
)

STAGE = "https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod/callback"
DOMAIN = "https://hooks.example.com/callback"
NOW = 1_800_000_000.0
SENT = '{"hookshift_probe": "m", "USERDATA": "a=1&b=2+3 100% 한글"}'
REGIONAL = "d-xyz789.execute-api.ap-northeast-2.amazonaws.com"
GOOD_DNS = DnsObservation("NOERROR", (REGIONAL,), ("127.0.0.1",), "127.0.0.1:5353")
GOOD_TLS = TlsObservation(sans=("hooks.example.com",), not_after=NOW + 90 * 86400)


def _obs(url: str = DOMAIN, **kw: object) -> ProbeObservation:
    base: dict[str, object] = {
        "dns": GOOD_DNS,
        "tls": GOOD_TLS,
        "http": HttpObservation(200, ""),
        "queue": QueueObservation(True, 1, SENT),
    }
    base.update(kw)
    return ProbeObservation(url, SENT, NOW, **base)  # type: ignore[arg-type]


def _codes(d: Diagnosis) -> list[str]:
    return [f.code for f in d.findings]


def test_a_probe_that_landed_intact_is_ok_with_no_findings() -> None:
    d = diagnose(_obs())
    assert d.ok and d.landed is True and d.findings == ()


def test_nxdomain_on_a_custom_domain_means_not_created_or_not_propagated() -> None:
    d = diagnose(
        _obs(
            dns=DnsObservation("NXDOMAIN", resolver="127.0.0.1:5353"),
            tls=None,
            http=None,
            queue=None,
        )
    )
    assert _codes(d) == ["dns-nxdomain"]
    assert "not propagated" in d.findings[0].cause
    assert "d-XXXX.execute-api.REGION.amazonaws.com" in d.findings[0].fix
    assert not d.ok


def test_nxdomain_on_a_stage_host_means_a_wrong_api_id_or_region() -> None:
    d = diagnose(_obs(STAGE, dns=DnsObservation("NXDOMAIN"), tls=None, http=None, queue=None))
    assert "wrong API id or region" in d.findings[0].cause


def test_a_custom_domain_that_points_elsewhere_is_a_wrong_target() -> None:
    dns = DnsObservation("NOERROR", ("old-lb.example.net",), ("10.0.0.5",))
    d = diagnose(_obs(dns=dns))
    assert _codes(d) == ["dns-wrong-target"]
    assert "old-lb.example.net" in d.findings[0].cause


def test_a_resolver_that_never_answers_is_the_seeds_timeout() -> None:
    d = diagnose(
        _obs(dns=DnsObservation("TIMEOUT", resolver="10.0.0.2:53"), tls=None, http=None, queue=None)
    )
    assert _codes(d) == ["dns-timeout"]
    assert "110: Operation timed out" in d.findings[0].cause


def test_a_certificate_without_the_host_in_its_sans_is_named_with_its_sans() -> None:
    tls = TlsObservation("hostname", "Hostname mismatch", ("other.example.org",), NOW + 1e7)
    d = diagnose(_obs(tls=tls, http=None, queue=None))
    assert _codes(d) == ["tls-hostname"]
    assert "other.example.org" in d.findings[0].cause


def test_a_certificate_expiring_within_30_days_warns_but_does_not_block() -> None:
    tls = TlsObservation(sans=("hooks.example.com",), not_after=NOW + 5 * 86400)
    d = diagnose(_obs(tls=tls))
    assert _codes(d) == ["tls-expiring"]
    assert d.findings[0].severity == "warning"
    assert d.ok


def test_expired_and_untrusted_certificates_are_errors() -> None:
    assert _codes(
        diagnose(
            _obs(tls=TlsObservation("expired", "certificate has expired"), http=None, queue=None)
        )
    ) == ["tls-expired"]
    assert _codes(
        diagnose(_obs(tls=TlsObservation("untrusted", "self-signed"), http=None, queue=None))
    ) == ["tls-untrusted"]


def test_an_endpoint_that_needs_sni_is_noted_for_nginx() -> None:
    tls = TlsObservation(sans=("hooks.example.com",), not_after=NOW + 1e7, sni_required=True)
    d = diagnose(_obs(tls=tls))
    assert _codes(d) == ["tls-sni-required"]
    assert "proxy_ssl_server_name on" in d.findings[0].fix
    assert d.ok


def test_missing_authentication_token_on_a_domain_points_at_the_base_path_mapping() -> None:
    http = HttpObservation(403, '{"message":"Missing Authentication Token"}')
    d = diagnose(_obs(http=http, queue=None))
    assert _codes(d) == ["missing-auth-token"]
    assert "base path mapping" in d.findings[0].cause


def test_missing_authentication_token_on_a_stage_url_points_at_stage_and_resource() -> None:
    http = HttpObservation(403, '{"message":"Missing Authentication Token"}')
    d = diagnose(
        _obs(STAGE, dns=DnsObservation("NOERROR", (), ("127.0.0.1",)), http=http, queue=None)
    )
    assert "wrong stage name or resource path" in d.findings[0].cause


def test_415_is_the_content_type_and_passthrough() -> None:
    d = diagnose(
        _obs(http=HttpObservation(415, '{"message": "Unsupported Media Type"}'), queue=None)
    )
    assert _codes(d) == ["unsupported-media-type"]
    assert "passthrough" in d.findings[0].cause


def test_unknown_operation_names_the_content_type_and_action() -> None:
    d = diagnose(_obs(http=HttpObservation(404, "<UnknownOperationException/>"), queue=None))
    assert _codes(d) == ["unknown-operation"]
    assert "application/x-www-form-urlencoded" in d.findings[0].cause
    assert "Action=SendMessage" in d.findings[0].cause


def test_access_denied_names_role_queue_policy_kms_and_urlencode() -> None:
    body = '{"Error":{"Code":"AccessDenied","Message":"Access to the resource ... is denied."}}'
    d = diagnose(_obs(http=HttpObservation(500, body), queue=None))
    assert _codes(d) == ["access-denied"]
    cause = d.findings[0].cause
    for needle in ("sqs:SendMessage", "access policy", "KMS", "$util.urlEncode"):
        assert needle in cause


def test_200_without_a_message_is_the_default_integration_response_trap() -> None:
    d = diagnose(_obs(queue=QueueObservation(False, 12)))
    assert _codes(d) == ["accepted-not-queued"]
    assert "default integration response" in d.findings[0].cause
    assert d.landed is False and not d.ok


def test_a_body_cut_at_the_first_ampersand_is_the_missing_urlencode() -> None:
    d = diagnose(_obs(queue=QueueObservation(True, 1, SENT.split("&")[0])))
    assert _codes(d) == ["body-altered"]
    assert "$util.urlEncode" in d.findings[0].fix
    assert d.landed is True and not d.ok


def test_errors_come_before_warnings() -> None:
    tls = TlsObservation(sans=("hooks.example.com",), not_after=NOW + 86400)
    d = diagnose(_obs(tls=tls, queue=QueueObservation(False, 0)))
    assert _codes(d) == ["accepted-not-queued", "tls-expiring"]


def test_without_a_queue_the_probe_judges_http_only() -> None:
    d = diagnose(_obs(queue=None))
    assert d.landed is None and d.ok


@pytest.mark.parametrize(
    "stopped",
    [
        {"dns": DnsObservation("NXDOMAIN"), "tls": None, "http": None},
        {"tls": TlsObservation(error_kind="hostname", error="mismatch"), "http": None},
        {"http": HttpObservation(403, '{"message":"Forbidden"}')},
    ],
)
def test_with_a_queue_a_probe_stopped_before_the_search_did_not_land(
    stopped: dict[str, object],
) -> None:
    d = diagnose(_obs(DOMAIN, queue=None, queue_given=True, **stopped))
    assert d.landed is False and not d.ok
    assert d.to_json()["landed"] is False


def test_a_queue_that_cannot_be_read_is_said_to_have_stopped_the_probe_before_it_was_sent() -> None:
    unreadable = QueueObservation(False, error="AccessDenied: not allowed")
    d = diagnose(_obs(dns=None, tls=None, http=None, queue=unreadable, queue_given=True))
    assert _codes(d) == ["queue-unreadable"]
    assert d.findings[0].cause == (
        "could not read the queue, so the probe was not sent: AccessDenied: not allowed"
    )
    assert d.landed is False


def test_forbidden_on_a_custom_domain_is_the_missing_base_path_mapping() -> None:
    d = diagnose(_obs(http=HttpObservation(403, '{"message":"Forbidden"}'), queue=None))
    assert _codes(d) == ["no-base-path-mapping"]
    assert "API mapping" in d.findings[0].fix


def test_behind_a_200_that_did_not_land_the_execution_log_names_sqs_answer() -> None:
    http = HttpObservation(200, "", execution="integration_status: 404; "
                           "integration_response: <UnknownOperationException/>")  # fmt: skip
    d = diagnose(_obs(http=http, queue=QueueObservation(False, 0)))
    assert _codes(d) == ["accepted-not-queued", "unknown-operation"]


def test_plain_a_records_on_a_custom_domain_may_be_an_alias_so_they_only_warn() -> None:
    dns = DnsObservation("NOERROR", (), ("127.0.0.1",))
    d = diagnose(_obs(dns=dns))
    assert _codes(d) == ["dns-alias-unverified"]
    assert d.findings[0].severity == "warning" and d.ok


def test_an_alias_is_checked_against_the_expected_targets_addresses() -> None:
    alias = DnsObservation("NOERROR", (), ("10.0.0.7",), expected_target=REGIONAL,
                           target_addresses=("10.0.0.7", "10.0.0.8"))  # fmt: skip
    assert _codes(diagnose(_obs(dns=alias))) == []
    elsewhere = DnsObservation("NOERROR", (), ("192.0.2.1",), expected_target=REGIONAL,
                               target_addresses=("10.0.0.7",))  # fmt: skip
    d = diagnose(_obs(dns=elsewhere))
    assert _codes(d) == ["dns-wrong-target"]
    assert "none of them an address of d-xyz789" in d.findings[0].cause


def test_a_name_only_this_machines_hosts_file_knows_is_still_missing_from_dns() -> None:
    dns = DnsObservation("NXDOMAIN", resolver="system resolver", local_addresses=("10.0.0.5",))
    d = diagnose(_obs(dns=dns, tls=None, http=None, queue=None))
    assert _codes(d) == ["dns-nxdomain"]
    assert "only this machine's hosts file gives it an address (10.0.0.5)" in d.findings[0].cause


def test_localhost_resolved_by_this_machine_gets_no_dns_record_advice() -> None:
    local = DnsObservation("NOERROR", (), ("127.0.0.1",), "this machine", source="system")
    d = diagnose(_obs("https://localhost:8443/callback", dns=local, tls=GOOD_TLS))
    assert not [c for c in _codes(d) if c.startswith("dns-")]
    unknown = DnsObservation("ERROR", resolver="this machine", error="no entry", source="system")
    d = diagnose(_obs("https://api.localhost/callback", dns=unknown, tls=None, http=None,
                      queue=None))  # fmt: skip
    assert _codes(d) == ["dns-no-address"]
    assert "custom domain" not in d.findings[0].cause and "hosts file" in d.findings[0].fix


def test_a_port_that_connects_and_never_answers_tls_is_not_a_missing_connection() -> None:
    silent = TlsObservation("silent", "no answer within 1 s", address="127.0.0.1")
    d = diagnose(_obs(tls=silent, http=None, queue=None))
    assert _codes(d) == ["tls-no-answer"]
    cause = d.findings[0].cause
    assert "hooks.example.com:443 (127.0.0.1) was made but the TLS handshake got no answer" in cause
    assert "not HTTPS" in cause and "no TCP connection" not in cause
