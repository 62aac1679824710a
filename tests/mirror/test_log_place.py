"""Where hookshift's logs go when the user does not say: beside the access log nginx writes for
the callback, resolved as nginx resolves it, so that they land in the directory the operators
already read and rotate (and that this nginx, not another one, writes to).

nginx resolves a relative log path under its prefix (``-p``, else the compiled ``--prefix``),
and writes its compiled-in access log wherever no ``access_log`` applies. `--parity-log` and
`--mirror-error-log` always win. The real nginx confirms the placement in
tests/mirror/test_parity_log.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hookshift.mirror.plan import BESIDE_ACCESS_LOG, MirrorOptions, MirrorPlan, make_plan
from tests.mirror.helpers import STAGE_URL

VERSION = (1, 22, 1)
PREFIX = Path("/srv/sandbox/ng")


def _config(tmp_path: Path, http: str = "", server: str = "", location: str = "") -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(
        "events {}\n"
        "http {\n"
        f"    {http}\n"
        "    server {\n"
        "        listen 80;\n"
        f"        {server}\n"
        "        location /callback {\n"
        f"            {location}\n"
        "            proxy_pass http://127.0.0.1:9000;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    return path


def _plan(config: Path, **changes: object) -> MirrorPlan:
    options = MirrorOptions(
        config=config,
        path="/callback",
        stage_url=STAGE_URL,
        parity_log=BESIDE_ACCESS_LOG,
        default_access_log="/var/log/nginx/access.log",  # Debian's nginx -V
        nginx_prefix=PREFIX,
        stage_dns="runtime",
    )
    return make_plan(replace(options, **changes), VERSION)  # type: ignore[arg-type]


def _written(plan: MirrorPlan) -> tuple[str, str]:
    """The parity log and the relay's error log as the plan writes them into the config."""
    text = plan.changes[0].new_text
    parity = next(ln for ln in text.splitlines() if "hookshift_parity if=" in ln).split()[1]
    error = next(ln for ln in text.splitlines() if ln.strip().startswith("error_log")).split()[1]
    return parity, error


def test_a_relative_access_log_puts_the_logs_in_the_prefix_logs_directory(
    tmp_path: Path,
) -> None:
    plan = _plan(_config(tmp_path, http="access_log logs/access.log;"))
    assert _written(plan) == (
        f"{PREFIX}/logs/hookshift-parity.log",
        f"{PREFIX}/logs/hookshift-mirror.error.log",
    )
    assert plan.parity_log == PREFIX / "logs" / "hookshift-parity.log"
    assert plan.to_json()["parity_log"] == f"{PREFIX}/logs/hookshift-parity.log"
    said = (
        f"the parity log goes to {PREFIX}/logs/hookshift-parity.log and the relay's error log to "
        f"{PREFIX}/logs/hookshift-mirror.error.log, beside the access log nginx writes for the "
        "callback "
        f"(`access_log logs/access.log` at {tmp_path}/nginx.conf:3); --parity-log and "
        "--mirror-error-log put them elsewhere"
    )
    assert said in plan.info


def test_the_access_log_in_effect_for_the_location_is_the_one_followed(tmp_path: Path) -> None:
    """A server or location with logs of its own writes only those (nginx drops the inherited
    ones), so that is the directory the site's operators rotate."""
    http = "access_log /var/log/nginx/access.log;"
    in_server = _plan(_config(tmp_path, http, server="access_log /var/log/hooks/access.log;"))
    assert _written(in_server)[0] == "/var/log/hooks/hookshift-parity.log"
    in_location = _plan(
        _config(tmp_path, http, location="access_log /var/log/hooks/cb/access.log combined;")
    )
    assert _written(in_location)[0] == "/var/log/hooks/cb/hookshift-parity.log"


@pytest.mark.parametrize(
    "logs",
    [
        "access_log syslog:server=127.0.0.1 combined;",
        "access_log /dev/stdout;",
        "access_log /var/log/nginx/$host/access.log;",
    ],
    ids=["syslog", "a device", "a variable directory"],
)
def test_a_log_that_is_no_file_in_a_fixed_directory_is_passed_over(
    tmp_path: Path, logs: str
) -> None:
    alone = _plan(_config(tmp_path, server=logs))
    assert _written(alone)[0] == "/var/log/nginx/hookshift-parity.log"  # nginx's compiled-in
    beside = _plan(_config(tmp_path, server=f"{logs} access_log /srv/logs/hooks.log;"))
    assert _written(beside)[0] == "/srv/logs/hookshift-parity.log"


def test_without_an_access_log_they_go_beside_nginxs_compiled_in_one_even_under_a_prefix(
    tmp_path: Path,
) -> None:
    """Debian's nginx, run with -p, still writes /var/log/nginx/access.log when no access_log
    applies: its compiled path is absolute."""
    plan = _plan(_config(tmp_path))
    assert _written(plan) == (
        "/var/log/nginx/hookshift-parity.log",
        "/var/log/nginx/hookshift-mirror.error.log",
    )
    assert any(
        "beside nginx's compiled-in access log /var/log/nginx/access.log" in i for i in plan.info
    )
    source_built = _plan(_config(tmp_path), default_access_log=f"{PREFIX}/logs/access.log")
    assert _written(source_built)[0] == f"{PREFIX}/logs/hookshift-parity.log"


def test_the_users_choices_win_and_the_relay_log_follows_a_chosen_parity_log(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, http="access_log logs/access.log;")
    chosen = _plan(config, parity_log=Path("/data/p.log"), mirror_error_log=Path("/data/e.log"))
    assert _written(chosen) == ("/data/p.log", "/data/e.log")
    assert not any("--parity-log" in i for i in chosen.info)
    beside_parity = _plan(config, parity_log=Path("/data/p.log"))
    assert _written(beside_parity) == ("/data/p.log", "/data/hookshift-mirror.error.log")
    error_only = _plan(config, mirror_error_log=Path("/data/e.log"))
    assert _written(error_only) == (f"{PREFIX}/logs/hookshift-parity.log", "/data/e.log")
    assert any(i.endswith("; --parity-log puts it elsewhere") for i in error_only.info)


def test_without_a_known_prefix_a_relative_log_stays_relative(tmp_path: Path) -> None:
    """No binary to ask: nginx resolves the parity log under the same prefix as the access log
    written beside it."""
    plan = _plan(_config(tmp_path, http="access_log logs/access.log;"), nginx_prefix=None)
    assert _written(plan)[0] == "logs/hookshift-parity.log"
