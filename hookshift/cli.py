"""The ``hookshift`` console script: one click group per area, loaded lazily.

Each area owns its commands in its own package (``mirror.cli``, ``verify.cli``, ...). The root
group only knows their import paths, so ``hookshift --help`` stays fast and an area's heavy
imports (boto3, duckdb) are paid only by the commands that use them.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from hookshift import __version__
from hookshift.errors import HookshiftError, MissingExtra, is_missing_extra

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "mirror": "hookshift.mirror.cli:mirror",
    "doctor": "hookshift.doctor.cli:doctor",
    "apigw": "hookshift.apigw.cli:apigw",
    "rehearse": "hookshift.rehearsal.cli:rehearse",
    "verify": "hookshift.verify.cli:verify",
    "cutover": "hookshift.cutover.cli:cutover",
    "probe": "hookshift.cutover.cli:probe",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # the area is not built yet
                return None
            if is_missing_extra(exc):
                return _needs_extra(name)
            raise
        command = getattr(module, attr, None)
        return command if isinstance(command, click.Command) else None


def _needs_extra(name: str) -> click.Command:
    """A stand-in for a command whose optional dependencies are not installed: it says which."""

    def refuse() -> None:
        raise MissingExtra(f"hookshift {name}")

    return click.Command(
        name,
        callback=refuse,
        help=f"(not installed: {MissingExtra(f'hookshift {name}').fix})",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hookshift")
def cli() -> None:
    """Move a webhook receiver from nginx -> app to API Gateway -> SQS without losing a callback.

    \b
    The migration, in order:
      hookshift doctor --config /etc/nginx/nginx.conf
      hookshift mirror plan --config /etc/nginx/nginx.conf --path /callback \\
          --stage-url https://abc123.execute-api.ap-northeast-2.amazonaws.com/prod
      hookshift mirror apply ...        (same options, validated with nginx -t)
      hookshift verify parity --app nginx:/var/log/nginx/hookshift-parity.log --queue sqs:URL
      hookshift cutover init|status|advance|rollback --state cutover.jsonl
    Rehearse all of it locally first:  hookshift rehearse
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning known errors into one line and an exit code."""
    try:
        # NO_COLOR (no-color.org), set to anything but empty, turns colour off on a TTY too
        color = False if os.environ.get("NO_COLOR") else None
        rv = cli.main(args=argv, prog_name="hookshift", standalone_mode=False, color=color)
        if isinstance(rv, int) and not isinstance(rv, bool):
            sys.exit(rv)  # ctx.exit(code) in non-standalone mode comes back as a return value
        return rv
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        # a group run without its command: its help is the answer, not an error line around it
        click.echo(exc.format_message(), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        # one line like every other refusal; click's own is three (usage, hint, error)
        command = exc.ctx.command_path if exc.ctx is not None else _command_path(argv)
        fix = f"see `{command} --help`"
        click.echo(f"hookshift: error: {exc.format_message()} (fix: {fix})", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except HookshiftError as exc:
        click.echo(f"hookshift: error: {exc.line()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def _command_path(argv: list[str] | None) -> str:
    """The command a usage error belongs to when click did not say (an option's missing
    value is refused before the command's context exists): the leading words of the command
    line that name a group's command, so the fix points at that command's --help."""
    words = sys.argv[1:] if argv is None else argv
    path = ["hookshift"]
    command: click.Command = cli
    ctx = click.Context(cli, info_name="hookshift")
    for word in words:
        if not isinstance(command, click.Group):
            break
        found = command.get_command(ctx, word)
        if found is None:
            break
        path.append(word)
        command = found
    return " ".join(path)


if __name__ == "__main__":
    main()
