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

_STATEMENT_ENDS = ("open", "close", "semi")


def _is_quoted(text: str, token: lexer.Token) -> bool:
    return text[token.start : token.start + 1] in ("'", '"')


def check_statement_ends(text: str, where: str) -> None:
    """Raise `InputError` at the first line that seems to miss its ``;``."""
    tokens = [t for t in lexer.lex(text, where) if t.kind != "comment"]
    statement: lexer.Token | None = None
    for i, tok in enumerate(tokens):
        if tok.kind in _STATEMENT_ENDS or tok.kind == "raw":
            statement = None
            continue
        if statement is None:
            statement = tok
            continue
        previous = tokens[i - 1]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if (
            tok.line > previous.line
            and tok.text in DIRECTIVES
            and not _is_quoted(text, tok)
            and following is not None
            and following.kind == "word"
            and following.line == tok.line
        ):
            raise InputError(
                f"`{statement.text}` runs on into line {tok.line}, so nginx reads "
                f"`{tok.text}` as one of its arguments",
                where=f"{where}:{previous.line}",
                fix=f"end line {previous.line} with ';'",
            )
