"""hookshift: move a webhook receiver from nginx -> app to API Gateway -> SQS, losing nothing.

The Python API, one package per step (each one's docstring documents its calls)::

    from hookshift import cutover, doctor, mirror, verify

- `doctor`: ``check(config) -> Report``, what in an nginx config fails at run time;
- `mirror`: ``plan``, ``apply``, ``remove`` and ``recover`` for a `MirrorRequest`;
- `verify`: ``pull`` a queue into an archive, ``parity`` against the app, ``heal`` the gaps;
- `cutover`: ``init``, ``status``, ``advance`` and ``rollback`` through the stages.

Nothing is printed; every error is a `hookshift.errors.HookshiftError` carrying the command's
exit code (`InputError`, 2: bad input, nothing written; `OperationError`, 1: a step failed).
``hookshift.rehearsal`` is the local test bed (``hookshift[rehearse]``), not part of the API.

The packages are imported when first used (``import hookshift`` then ``hookshift.verify``
works), so that ``import hookshift`` does not pay for all of them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["__version__", "cutover", "doctor", "errors", "mirror", "verify"]

# the API's packages, loaded by the first `hookshift.NAME` (a `from hookshift import NAME`
# imports them by itself)
_LAZY = frozenset({"cutover", "doctor", "errors", "mirror", "verify"})

if TYPE_CHECKING:  # a type checker sees the packages themselves, and refuses other names
    from hookshift import cutover, doctor, errors, mirror, verify
else:

    def __getattr__(name: str) -> object:
        if name in _LAZY:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | _LAZY)
