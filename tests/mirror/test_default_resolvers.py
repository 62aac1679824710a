"""Without --resolver, hookshift's lines make nginx ask the public resolvers for the stage's
address. The plan says so in one info line, with what that trades and the resolver to pass
instead: this host's (the first nameserver of /etc/resolv.conf) when there is one. `hookshift
doctor` leaves hookshift's own resolver lines out of `resolver-public` for that reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift import mirror
from hookshift.mirror import api
from hookshift.mirror.dnscheck import host_resolver
from hookshift.mirror.plan import DEFAULT_RESOLVERS
from tests.in_process import run_in_process
from tests.mirror.helpers import STAGE_URL, copy_case

PUBLIC = "--resolver not given: the relay asks the public resolvers 1.1.1.1 and 8.8.8.8"


def _request(config: Path, ca_file: Path, **changes: object) -> mirror.MirrorRequest:
    base: dict[str, object] = {
        "config": config,
        "path": "/kakao/result",
        "stage_url": STAGE_URL,
        "trusted_ca": ca_file,
        "relay_socket": str(config.parent / "r.sock"),
        "parity_log": config.parent / "logs" / "parity.log",
        "nginx_bin": "/nonexistent/nginx",
        "nginx_version": "1.22.1",
        "dns_check": False,
        "stage_dns": "runtime",
    }
    return mirror.MirrorRequest(**{**base, **changes})  # type: ignore[arg-type]


def _told(planned: mirror.PlanResult) -> list[str]:
    return [text for text in planned.info if text.startswith("--resolver not given")]


def test_the_default_resolvers_are_said_with_this_host_s_resolver_to_pass_instead(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "host_resolver", lambda: "127.0.0.53")
    config = copy_case("crlf", tmp_path)
    planned = mirror.plan(_request(config, ca_file))
    assert "resolver 1.1.1.1 8.8.8.8 valid=10s ipv6=off;  # hookshift" in planned.diff()
    (line,) = _told(planned)
    assert line.startswith(PUBLIC + " for the stage's address, over plain UDP")
    assert line.endswith(
        "To ask this host's resolver instead, pass --resolver 127.0.0.53 (the first nameserver "
        "in /etc/resolv.conf)"
    )
    assert line in planned.to_json()["info"]


def test_without_a_nameserver_the_line_says_which_resolver_to_look_for(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "host_resolver", lambda: None)
    config = copy_case("crlf", tmp_path)
    (line,) = _told(mirror.plan(_request(config, ca_file)))
    assert line.endswith("pass --resolver ADDR (the nameserver in /etc/resolv.conf; "
                         "169.254.169.253 in an AWS VPC)")  # fmt: skip


def test_a_resolver_given_or_none_asked_says_nothing(tmp_path: Path, ca_file: Path) -> None:
    config = copy_case("crlf", tmp_path)
    # the user chose, even the same public ones
    assert not _told(mirror.plan(_request(config, ca_file, resolvers=DEFAULT_RESOLVERS)))
    assert not _told(mirror.plan(_request(config, ca_file, resolvers=("10.0.0.2",))))
    # --stage-dns reload: nginx resolves the stage with the system resolver, no `resolver`
    reload = mirror.plan(_request(config, ca_file, stage_dns="reload"))
    assert not _told(reload) and "resolver " not in reload.diff()


@pytest.mark.parametrize(
    ("changes", "who"),
    [
        ({"stage_dns": "runtime"}, "the relay"),
        ({"stage_dns": "reload"}, None),
        ({"nginx_version": "1.27.3", "stage_dns": None}, "the relay"),
        ({"mode": "forward", "stage_dns": None}, "the forward location"),
    ],
    ids=["relay-runtime", "relay-reload", "upstream-resolve", "forward"],
)
def test_the_line_comes_exactly_when_hookshift_s_lines_hold_a_resolver(
    tmp_path: Path, ca_file: Path, changes: dict[str, object], who: str | None
) -> None:
    config = copy_case("crlf", tmp_path)
    planned = mirror.plan(_request(config, ca_file, **changes))
    asks = any(
        line.lstrip().startswith("resolver ")
        for change in planned.plan.changes
        for insertion in change.insertions
        for line in insertion.lines
    )
    assert planned.plan.asks_resolvers == asks == (who is not None)
    told = _told(planned)
    assert [line.split(" asks ")[0] for line in told] == (
        [f"--resolver not given: {who}"] if who else []
    )


def test_the_command_prints_it_as_an_info_line(
    tmp_path: Path, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "host_resolver", lambda: "10.0.0.2")
    config = copy_case("crlf", tmp_path)
    code, _, stderr = run_in_process(
        "mirror", "plan", "--config", str(config), "--path", "/kakao/result",
        "--stage-url", STAGE_URL, "--trusted-ca", str(ca_file),
        "--relay-socket", str(config.parent / "r.sock"), "--no-dns-check",
        "--nginx-bin", "/nonexistent/nginx", "--nginx-version", "1.22.1",
    )  # fmt: skip
    assert code == 0, stderr
    (line,) = [ln for ln in stderr.splitlines() if PUBLIC in ln]
    assert line.startswith(f"info: {PUBLIC}") and "pass --resolver 10.0.0.2 " in line


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("nameserver 10.255.255.53\n", "10.255.255.53"),
        ("# systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\n", "127.0.0.53"),
        ("search example.internal\nnameserver 169.254.169.253\nnameserver 10.0.0.2\n",
         "169.254.169.253"),
        ("nameserver fd00::53\n", "[fd00::53]"),
        ("nameserver fe80::1%eth0\n", None),  # a zone nginx's resolver cannot take
        ("nameserver fe80::1%eth0\nnameserver 10.0.0.2\n", "10.0.0.2"),
        ("search example.internal\n", None),
        ("", None),
    ],
)  # fmt: skip
def test_this_host_s_resolver_is_the_first_nameserver_nginx_can_use(
    tmp_path: Path, text: str, found: str | None
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(text)
    assert host_resolver(resolv) == found
    assert host_resolver(tmp_path / "missing") is None
