"""Find the ``;`` a user forgot between two directives, which no parser can see by itself.

``listen 8080`` followed on the next line by ``server_name hooks.example.com;`` is one
statement to nginx's tokenizer: ``listen 8080 server_name hooks.example.com``. nginx rejects
it only when the first directive's arguments do not fit (``invalid parameter``), and some it
accepts (``server_name a`` + ``root /srv;`` is three server names). The sign is a known
directive name that starts a line inside another statement and has words after it there.
"""

from __future__ import annotations

from crossplane.analyzer import DIRECTIVES  # type: ignore[import-untyped]

from hookshift.errors import InputError
from hookshift.nginx import lexer

_STATEMENT_ENDS = ("open", "close", "semi", "raw")


def check_statement_ends(text: str, where: str) -> None:
    """Raise `InputError` at the first line that seems to miss its ``;``.

    The tokens are read once, as they come (`lexer.scan`), so a big file is never held as a
    list of them: a directive name that starts a line inside a statement is held until the
    next token says whether words follow it on that line.
    """
    statement: str | None = None  # the first word of the statement being read
    previous_line = 0  # the line of the token before this one, comments left out
    suspect: tuple[str, int, int] | None = None  # (name, its line, the line before it)
    for kind, word, start, _, line in lexer.scan(text, where):
        if kind == "comment":
            continue
        if suspect is not None:
            name, name_line, before = suspect
            suspect = None
            if statement is not None and kind == "word" and line == name_line:
                raise InputError(
                    f"`{statement}` runs on into line {name_line}, so nginx reads "
                    f"`{name}` as one of its arguments",
                    where=f"{where}:{before}",
                    fix=f"end line {before} with ';'",
                )
        if kind in _STATEMENT_ENDS:
            statement = None
        elif statement is None:
            statement = word
        elif line > previous_line and word in DIRECTIVES and text[start] not in "'\"":
            suspect = (word, line, previous_line)
        previous_line = line
