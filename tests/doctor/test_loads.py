"""A config nginx -t refuses is not given a clean bill: what doctor can see of such a refusal
without running nginx, checked against the real nginx -t."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookshift.doctor import diagnose_file
from tests.doctor.conftest import codes, line_of, nginx_t, only, write_config


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("locations", "again"),
    [
        ("location /cb { return 200; } location /cb { return 201; }", "location /cb { return 201"),
        ("location /cb { return 200; } location ^~ /cb { return 201; }", "location ^~ /cb"),
        ("location = /cb { return 200; } location = /cb { return 201; }",
         "location = /cb { return 201"),
        ("location /a { location /a/b { return 200; } location /a/b { return 201; } }",
         "location /a/b { return 201"),
    ],
    ids=["prefix", "prefix-and-caret", "exact", "nested"],
)  # fmt: skip
def test_a_repeated_location_is_an_error_as_nginx_t_says(
    tmp_path: Path, nginx_bin: str, locations: str, again: str
) -> None:
    lines = locations.replace("} location", "}\nlocation").replace("} }", "}\n}")
    config = write_config(tmp_path, f"server {{\nlisten 127.0.0.1:8081;\n{lines}\n}}")
    refused = nginx_t(nginx_bin, config)
    assert refused.returncode != 0 and "duplicate location" in refused.stderr
    finding = only(diagnose_file(config), "duplicate-location")
    assert finding.where == line_of(config, again)
    assert finding.severity.label == "error" and "nginx -t fails" in finding.message


@pytest.mark.e2e
def test_an_exact_and_a_prefix_location_of_one_path_and_repeated_regexes_and_names_load(
    tmp_path: Path, nginx_bin: str
) -> None:
    config = write_config(
        tmp_path,
        "server {\nlisten 127.0.0.1:8081;\nlocation = /cb { return 200; }\n"
        "location /cb { return 201; }\nlocation ~ ^/x { return 200; }\n"
        "location ~ ^/x { return 201; }\nlocation @n { return 200; }\n"
        "location @n { return 201; }\n}",
    )
    assert nginx_t(nginx_bin, config).returncode == 0
    assert "duplicate-location" not in codes(diagnose_file(config))
