"""``python -m bench`` (``make bench``): run every benchmark module in turn.

Each module exposes ``main() -> None`` and writes its own section of RESULTS.md.
"""

from __future__ import annotations

import importlib
import sys

from bench import stop_on_sigterm

BENCHMARKS = ["bench.isolation", "bench.parity", "bench.plan_speed"]


def run(names: list[str]) -> int:
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            print(f"bench: {name} not present, skipped", file=sys.stderr)
            continue
        print(f"bench: running {name}", file=sys.stderr)
        module.main()
    return 0


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(run(sys.argv[1:] or BENCHMARKS))
