"""``nginx -t`` on a result before it is written (`nginx.shadow`): the real nginx (Debian's
1.22 and mainline) judges the copies as it judges the same files in place, names the user's
files and lines, and the user's files are never touched."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from hookshift.durable import TEMP_SUFFIX
from hookshift.nginx import binary
from hookshift.nginx.shadow import SHADOW_PREFIX, ShadowUnavailable, check_result
from hookshift.procs import free_port
from tests.mirror.helpers import CORPUS, copy_case


@pytest.fixture
def nginx(each_nginx: str) -> str:
    """Each nginx binary there is (conftest's each_nginx)."""
    return each_nginx


def debian_stock(dest: Path, absolute: bool) -> Path:
    """Debian's stock layout (sites-enabled/* linking to sites-available), listening on free
    loopback ports and logging inside the tree; its includes absolute, as Debian ships them
    (``include /etc/nginx/conf.d/*.conf``), or relative (``include conf.d/*.conf``)."""
    root = dest / "nginx"
    shutil.copytree(CORPUS / "debian_stock", root, symlinks=True)
    (root / "logs").mkdir()
    main = root / "nginx.conf"
    text = main.read_text()
    text = text.replace("user www-data;", "").replace("/run/nginx.pid", f"{root}/logs/nginx.pid")
    text = text.replace("/var/log/nginx/", f"{root}/logs/")
    if absolute:
        for pattern in ("modules-enabled/*.conf", "mime.types", "conf.d/*.conf", "sites-enabled/*"):
            text = text.replace(f"include {pattern};", f"include {root}/{pattern};")
        assert text.count(f"include {root}/") == 4
    main.write_text(text)
    default = root / "sites-available" / "default"
    default.write_text(
        default.read_text()
        .replace("listen 80 default_server;", f"listen 127.0.0.1:{free_port()} default_server;")
        .replace("listen [::]:80 default_server;", "# one loopback address is enough here")
    )
    hooks = root / "sites-available" / "hooks"
    hooks.write_text(hooks.read_text().replace("listen 80;", f"listen 127.0.0.1:{free_port()};"))
    return main


def tree_state(root: Path) -> dict[str, tuple[int, int, bytes | str]]:
    """Every name under `root` (logs left out): inode, mtime and bytes (a link: its target)."""
    state: dict[str, tuple[int, int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        if "logs" in path.relative_to(root).parts or (path.is_dir() and not path.is_symlink()):
            continue
        st = os.lstat(path)
        data = os.readlink(path) if path.is_symlink() else path.read_bytes()
        state[str(path.relative_to(root))] = (st.st_ino, st.st_mtime_ns, data)
    return state


def in_place(config: Path, texts: Mapping[Path, str], nginx: str) -> binary.TestResult:
    """The oracle: `nginx -t` on a copy of `config`'s tree with `texts` written into it."""
    root = config.parent
    twin = root.parent / "in-place"
    shutil.copytree(root, twin, symlinks=True)
    for path in twin.rglob("*"):  # the twin's own absolute paths, as the user's tree has
        if path.is_file() and not path.is_symlink():
            path.write_text(path.read_text().replace(str(root), str(twin)))
    for real, text in texts.items():
        (twin / real.relative_to(root)).write_text(text.replace(str(root), str(twin)))
    try:
        result = binary.test_config(twin / config.name, nginx_bin=nginx, prefix=twin)
    finally:
        shutil.rmtree(twin)
    return binary.TestResult(
        result.ok,
        result.output.replace(str(twin), str(root)),
        None if result.error is None else result.error.replace(str(twin), str(root)),
    )


def said(result: binary.TestResult) -> str:
    """nginx's error line without its time and process id (they differ between runs)."""
    assert result.error is not None
    return re.sub(r"^.*?\[(\w+)\] (\d+#\d+: )?", r"[\1] ", result.error)


BROKEN_SITES = {
    "an unknown directive": "server {\n    listen 127.0.0.1:{port};\n    no_such_thing on;\n}\n",
    "a missing include, relative to the main file": (
        "server {\n    listen 127.0.0.1:{port};\n\n    include snippets/missing.conf;\n}\n"
    ),
    "a brace left open": "server {\n    listen 127.0.0.1:{port};\n    location / {\n}\n",
    "a certificate that does not exist": (
        "server {\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate certs/none.pem;\n"
        "    ssl_certificate_key certs/none.key;\n}\n"
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize("absolute", [True, False], ids=["absolute-includes", "relative-includes"])
@pytest.mark.parametrize("broken", list(BROKEN_SITES))
def test_a_rejected_site_is_rejected_as_in_place_naming_the_users_file_and_line(
    tmp_path: Path, nginx: str, absolute: bool, broken: str
) -> None:
    config = debian_stock(tmp_path, absolute)
    site = config.parent / "sites-available" / "hooks"
    before = tree_state(config.parent)
    texts = {site: BROKEN_SITES[broken].replace("{port}", str(free_port()))}
    result = check_result(config, texts, nginx_bin=nginx, prefix=config.parent)
    oracle = in_place(config, texts, nginx)
    assert not result.ok and not oracle.ok
    assert said(result) == said(oracle)
    assert SHADOW_PREFIX not in result.output
    if broken != "a certificate that does not exist":  # nginx names no line for that one
        assert f"{config.parent}/sites-enabled/hooks:" in said(result), said(result)
    assert tree_state(config.parent) == before  # nothing written, nothing left behind


@pytest.mark.e2e
@pytest.mark.parametrize("absolute", [True, False], ids=["absolute-includes", "relative-includes"])
def test_a_result_nginx_accepts_passes_with_every_relative_path_resolved_as_in_place(
    tmp_path: Path, nginx: str, absolute: bool
) -> None:
    """The changed site and main file use paths relative to the main file's directory (an
    include, a certificate): nginx finds them from the copies as it does in place."""
    config = debian_stock(tmp_path, absolute)
    root = config.parent
    certs = copy_case("tls", tmp_path / "tls").parent / "certs"
    shutil.copytree(certs, root / "certs")
    (root / "snippets" / "tls.conf").write_text(
        "ssl_certificate certs/server.pem;\nssl_certificate_key certs/server.key;\n"
    )
    site = root / "sites-available" / "hooks"
    main_text = config.read_text().replace("http {", "http {\n\tlog_format extra $request;", 1)
    texts = {
        config: main_text,
        site: f"server {{\n    listen 127.0.0.1:{free_port()} ssl;\n"
        "    include snippets/tls.conf;\n    access_log logs/hooks.log extra;\n}\n",
    }
    before = tree_state(root)
    result = check_result(config, texts, nginx_bin=nginx, prefix=root)
    assert result.ok, result.output
    assert in_place(config, texts, nginx).ok
    assert tree_state(root) == before
    # and it is the result that was checked: without the main file's log_format, it fails
    missing = check_result(config, {site: texts[site]}, nginx_bin=nginx, prefix=root)
    assert not missing.ok and 'unknown log format "extra"' in said(missing), missing.output
    assert f"{root}/sites-enabled/hooks:4" in said(missing)


@pytest.mark.e2e
def test_a_file_included_twice_and_a_glob_are_copied_where_each_include_is(
    tmp_path: Path, nginx: str
) -> None:
    """A changed file included under two names, next to siblings its glob matches: each of
    its includes reads the change, the siblings stay in the glob's order."""
    root = tmp_path / "conf"
    (root / "conf.d").mkdir(parents=True)
    (root / "logs").mkdir()
    port = free_port()
    (root / "nginx.conf").write_text(
        "events {}\nhttp {\n    include conf.d/*.conf;\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n"
        "            include\n                shared.inc;\n        }\n    }\n}\n"
    )
    (root / "conf.d" / "a.conf").write_text("map $uri $a { default 1; }\n")
    (root / "conf.d" / "b.conf").write_text("include shared-http.inc;\n")
    (root / "conf.d" / "c.conf").write_text("map $uri $c { default $a$b; }\n")
    (root / "shared-http.inc").write_text("map $uri $b { default 2; }\n")
    (root / "shared.inc").write_text("return 204;\n")
    config = root / "nginx.conf"
    before = tree_state(root)
    good = check_result(
        config, {root / "shared.inc": "return 200 $c;\n"}, nginx_bin=nginx, prefix=root
    )
    assert good.ok, good.output
    # c.conf uses $b from b.conf's include: order kept; the include split over lines keeps
    # the lines after it where they were
    bad = {root / "shared-http.inc": "map $uri $b { default 2; }\nbogus;\n"}
    result = check_result(config, bad, nginx_bin=nginx, prefix=root)
    assert said(result) == said(in_place(config, bad, nginx))
    assert f"{root}/shared-http.inc:2" in said(result)
    main_bad = {config: (root / "nginx.conf").read_text().replace("}\n}\n", "}\n    bogus;\n}\n")}
    result = check_result(config, {**main_bad, **bad}, nginx_bin=nginx, prefix=root)
    oracle = in_place(config, {**main_bad, **bad}, nginx)
    assert said(result) == said(oracle) and f"{root}/shared-http.inc:2" in said(result)
    assert tree_state(root) == before


@pytest.mark.e2e
def test_a_path_an_include_cannot_name_exactly_makes_no_copy(tmp_path: Path, nginx: str) -> None:
    """A file its glob matches has ``[`` in its name: spelled out, nginx would take it as a
    pattern (which may match nothing, and pass): no check on copies, the caller checks in
    place."""
    root = tmp_path / "conf"
    (root / "conf.d").mkdir(parents=True)
    (root / "nginx.conf").write_text("events {}\nhttp {\n    include conf.d/*.conf;\n}\n")
    (root / "conf.d" / "a[1].conf").write_text("map $uri $a { default 1; }\n")
    (root / "conf.d" / "b.conf").write_text("map $uri $b { default 2; }\n")
    before = tree_state(root)
    with pytest.raises(ShadowUnavailable, match=r"a\[1\]\.conf holds a glob character"):
        check_result(
            root / "nginx.conf",
            {root / "conf.d" / "b.conf": "bogus;\n"},
            nginx_bin=nginx,
            prefix=root,
        )
    assert tree_state(root) == before


@pytest.mark.e2e
def test_copies_that_cannot_be_written_are_said_and_none_is_left(
    tmp_path: Path, nginx: str
) -> None:
    """The main file's directory takes no new file (a read-only mount): no check on copies,
    the caller checks in place."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount")
    root = tmp_path / "conf"
    root.mkdir()
    (root / "nginx.conf").write_text("events {}\nhttp {}\n")
    mount = subprocess.run(["mount", "--bind", str(root), str(root)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount here: {mount.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(root)], check=True)
        with pytest.raises(ShadowUnavailable, match="cannot write a copy of the config in"):
            check_result(
                root / "nginx.conf", {root / "nginx.conf": "x;\n"}, nginx_bin=nginx, prefix=root
            )
    finally:
        subprocess.run(["umount", str(root)], check=True)
    assert [p.name for p in root.iterdir()] == ["nginx.conf"]


def test_copies_are_named_as_the_temp_files_the_next_run_removes() -> None:
    """Hidden, so that no include glob matches a copy unless it asks for dot files."""
    assert SHADOW_PREFIX.startswith(".") and not TEMP_SUFFIX.endswith(".conf")
