"""The stage-reaching steps the probe and `verify heal` share, where no network is needed:
what a failure says, and hosts no DNS server is asked about."""

from __future__ import annotations

import socket
import ssl

import pytest

from hookshift.stagehttp import authority, plain_words, resolve, system_lookup, wire_name


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (OSError("[Errno 111] Connection refused"), "Connection refused"),  # as httpx passes it
        (
            OSError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"),
            "[SSL: WRONG_VERSION_NUMBER] wrong version number",
        ),
        (OSError(""), "no reason given"),
    ],
)
def test_a_failure_is_said_without_error_numbers_or_openssl_source_positions(
    error: OSError, words: str
) -> None:
    assert plain_words(error) == words


def test_a_certificate_error_is_said_by_its_reason() -> None:
    error = ssl.SSLError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] ... (_ssl.c:1006)")
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    assert plain_words(error) == "CERTIFICATE_VERIFY_FAILED"


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "[::1]"])
def test_an_address_is_its_own_answer_whoever_would_be_asked(host: str) -> None:
    nobody = ("127.0.0.1", 9)  # a resolver that would never answer: it is not asked
    assert resolve(host, nobody).addresses == (host.strip("[]"),)
    assert system_lookup(host).addresses == (host.strip("[]"),)


def test_an_ipv6_address_is_bracketed_in_a_url_and_a_host_header() -> None:
    assert authority("::1", 8443) == "[::1]:8443"
    assert authority("abc.example", None) == "abc.example"


def test_an_ipv6_resolver_is_named_in_brackets_as_it_is_given() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as silent:  # reads, never answers
        silent.bind(("::1", 0))
        port = silent.getsockname()[1]
        answer = resolve("stage.example.test", ("::1", port), timeout=0.2)
    assert (answer.rcode, answer.resolver) == ("TIMEOUT", f"[::1]:{port}")


def test_a_host_outside_ascii_is_carried_as_its_idna_form() -> None:
    assert wire_name("bücher.example.test") == "xn--bcher-kva.example.test"
    assert wire_name("Stage.Example.test") == "Stage.Example.test"  # ascii: as given


def test_a_fully_qualified_name_is_carried_without_its_trailing_dot() -> None:
    """``name.`` is the same name to DNS; as SNI or a Host header it matches no certificate."""
    assert wire_name("hooks.example.com.") == "hooks.example.com"
    assert wire_name("bücher.example.test.") == "xn--bcher-kva.example.test"


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        ("TLSV1_ALERT_PROTOCOL_VERSION", "no TLS version both sides accept"),
        ("UNSUPPORTED_PROTOCOL", "no TLS version both sides accept"),
        ("WRONG_VERSION_NUMBER", "the answer is not TLS"),
    ],
)
def test_a_tls_failure_whose_code_misleads_is_said_in_words_keeping_the_code(
    reason: str, says: str
) -> None:
    error = ssl.SSLError(1, f"[SSL: {reason}] ... (_ssl.c:1006)")
    error.reason = reason
    assert plain_words(error).startswith(says) and f"({reason})" in plain_words(error)


@pytest.mark.parametrize("host", [f"{'a' * 64}.example.test", "a..example.test"])
def test_a_name_dns_cannot_hold_is_an_answer_not_an_exception(host: str) -> None:
    nobody = ("127.0.0.1", 9)  # never asked: the name cannot be put in a query
    answer = resolve(host, nobody, timeout=0.2)
    assert (answer.rcode, answer.error) == ("ERROR", "not a name DNS can hold")
