"""jinja2 templates shipped as package data: ``templates/nginx/*.j2``, ``templates/apigw/*``.

`render(name, **context)` renders one template by its path under this package with strict
undefined variables, so a missing value fails loudly instead of writing an empty directive.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hookshift.templates", ""),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, **context: Any) -> str:
    """Render the template at `name` (e.g. ``nginx/mirror_location.conf.j2``)."""
    return environment().get_template(name).render(**context)
