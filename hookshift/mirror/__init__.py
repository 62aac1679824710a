"""Copy (or forward) the callback path to API Gateway by editing nginx byte-preservingly.

Use from Python (what ``hookshift mirror``, the cut-over and the rehearsal call)::

    from pathlib import Path
    from hookshift import mirror

    request = mirror.MirrorRequest(
        config=Path("/etc/nginx/nginx.conf"),
        path="/callback",
        stage_url="https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod",
    )
    planned = mirror.plan(request)        # PlanResult: .diff(), .lines, .to_json(); no writes
    done = mirror.apply(request, reload=True)   # ApplyResult: .changed, .backup_dir, .lines
    mirror.remove(request.config, reload=True)  # RemoveResult: every file byte for byte back

`MirrorRequest` holds what the user chooses; ``None`` leaves a choice to hookshift (the main
config nginx was built with, the parity log beside its access log, the system's CA bundle,
...). Nothing is printed: each result carries its info and warning lines (`Line`). Errors
are `hookshift.errors.HookshiftError`; bad input is `InputError` (exit code 2), raised before
anything is written. `recover(config)` undoes a change a killed run left unfinished (apply and
remove do it first); `write_back(config, texts)` puts files back to texts recorded earlier
through the same safe pipeline (the cut-over's rollback). `check_prefix(prefix)` refuses an
nginx ``-p`` that is not a directory; every call above that takes one refuses it first. With
``stage_dns="reload"`` (nginx before 1.27.3), `hookshift.mirror.refresh.refresh(config)`
reloads nginx when the stage's addresses changed (what ``hookshift mirror refresh`` and its
systemd timer run).

Inside: `plan` decides (pure: `plan.make_plan`), `render` holds the templates' choices and why
(read it before changing the layout), `apply`/`remove` are the only writers, `api` resolves
defaults from the nginx binary, `cli` is ``hookshift mirror``. The submodules ``plan``,
``apply`` and ``remove`` are imported by their full names (``from hookshift.mirror.plan
import make_plan``): in this package's namespace those names are the API's functions.
"""

from hookshift.mirror.api import (
    NO_LOG,
    ApplyResult,
    Line,
    MirrorRequest,
    NoLog,
    PlanResult,
    RemoveResult,
    apply,
    check_prefix,
    plan,
    recover,
    remove,
    write,
    write_back,
)

__all__ = [
    "NO_LOG",
    "ApplyResult",
    "Line",
    "MirrorRequest",
    "NoLog",
    "PlanResult",
    "RemoveResult",
    "apply",
    "check_prefix",
    "plan",
    "recover",
    "remove",
    "write",
    "write_back",
]
