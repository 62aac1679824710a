"""Find the main config nginx runs: the one the user names, the one that includes the site file
they name, or the one compiled into the binary (``nginx -V``'s ``--conf-path``).

Users often pass the file they edit (``sites-enabled/hooks``), whose ``server {}`` sits outside
any ``http {}``: nginx reads it only through an ``include`` of the main config, and every
decision hookshift makes (which server answers, what a location inherits) needs that context.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hookshift.errors import InputError
from hookshift.nginx import binary, lexer
from hookshift.nginx.source import load_source, read_text

MAIN_NAME = "nginx.conf"
DEBIAN_CONF_PATH = Path("/etc/nginx/nginx.conf")
# Top-level directives only a main config has (a site file lives inside http {}).
_MAIN_ONLY = frozenset({"http", "events", "stream", "mail", "worker_processes", "pid", "user"})
# Directives that belong inside http {}: a file starting with them is included from there.
_HTTP_LEVEL = frozenset({"server", "upstream", "map", "geo", "location", "log_format"})
_PARENT_LEVELS = 2  # sites-enabled/hooks -> ../nginx.conf; conf.d/x/y.conf -> ../../nginx.conf


@dataclass(frozen=True)
class MainConfig:
    """The main config to work on, and a line saying why when it is not what the user passed."""

    path: Path
    note: str | None = None


# What nginx's configure script compiles in when it is not told otherwise: a build from source
# (``./configure && make install``) prints none of these in ``nginx -V``.
BUILT_IN_PATHS = {
    "prefix": "/usr/local/nginx",
    "conf-path": "conf/nginx.conf",
    "http-log-path": "logs/access.log",
    "error-log-path": "logs/error.log",
}


def compiled_path(defaults: Mapping[str, str] | None, key: str) -> Path | None:
    """``nginx -V``'s ``--KEY=`` path, made absolute under ``--prefix`` as nginx does; nginx's
    built-in default where ``nginx -V`` names none. None when there is no binary to ask
    (`defaults` None)."""
    if defaults is None:
        return None
    value = defaults.get(key) or BUILT_IN_PATHS.get(key)
    if not value:
        return None
    if value.startswith("/"):
        return Path(value)
    return Path(defaults.get("prefix") or BUILT_IN_PATHS["prefix"]) / value


def is_site_file(path: Path) -> bool:
    """True when `path` holds http-level blocks (``server {}``) and nothing of a main config."""
    if not path.is_file():
        return False  # a FIFO would block the read; loading it as the main config says why
    names: set[str] = set()
    try:
        for name in lexer.top_level_names(read_text(path), str(path)):
            if name in _MAIN_ONLY:
                return False  # a main config says so in its first lines: read no further
            names.add(name)
    except (OSError, InputError):
        return False  # unreadable or malformed: loading it as the main config says why
    return bool(names & _HTTP_LEVEL)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def includes(main: Path, site: Path) -> bool:
    """True when the config at `main` pulls in `site` (resolved paths; include globs expanded)."""
    try:
        files = load_source(main).config.files
    except InputError:
        return False
    return any(_same_file(f, site) for f in files if f != main)


def _candidates(site: Path, conf_path: Path | None) -> list[Path]:
    """Main configs that could include `site`: the binary's, then ``nginx.conf`` above it."""
    found: list[Path] = [conf_path] if conf_path is not None else []
    parent = Path(os.path.abspath(site)).parent
    for _ in range(_PARENT_LEVELS):
        parent = parent.parent
        found.append(parent / MAIN_NAME)
    unique: list[Path] = []
    for p in found:
        if p.is_file() and not any(_same_file(p, q) for q in unique):
            unique.append(p)
    return unique


def find_main_config(given: Path | None, conf_path: Path | None) -> MainConfig:
    """The main config for `given` (``--config``), `conf_path` being ``nginx -V``'s.

    A main config is used as it is; a site file leads to the main config that includes it;
    without `given`, the binary's compiled-in config.
    """
    if given is None:
        if conf_path is None:
            raise InputError(
                "no --config given and nginx does not say where its config is (nginx -V)",
                fix=f"pass --config {DEBIAN_CONF_PATH}",
            )
        return MainConfig(conf_path, f"using nginx's main config {conf_path} (from nginx -V)")
    if not is_site_file(given):
        return MainConfig(given)
    for main in _candidates(given, conf_path):
        if includes(main, given):
            return MainConfig(
                main, f"{given} is a site file; working on the main config {main} that includes it"
            )
    suggestion = conf_path or DEBIAN_CONF_PATH
    raise InputError(
        f"{given} is a site file (server blocks outside http {{}}) included by no main config",
        fix=f"pass the main config that includes it with --config (e.g. {suggestion}), or "
        "include it there",
    )


def locate_main_config(given: Path | None, nginx_bin: str) -> MainConfig:
    """`find_main_config`, asking the binary (``nginx -V``) only when `given` is not a main
    config: a plan on an explicit config needs no nginx on this machine."""
    conf_path = None
    if given is None or is_site_file(given):
        found = binary.find_binary(nginx_bin)
        if found is not None:
            conf_path = compiled_path(binary.compiled_defaults(found), "conf-path")
    return find_main_config(given, conf_path)
