"""Understanding and editing nginx configurations without damaging them.

`config` loads a configuration with crossplane (every include, comments kept) into an immutable
tree; `lexer` and `source` read the same configuration from its text, with the exact offsets of
every block's braces (and can read texts that are not on disk); `matching` chooses the server
(sockets by address family, names), `locations` the location and `route` follows internal
redirects to where the content handler runs; `values` reads directive values (sizes, times,
``listen``, ``*_pass``, ``resolver``) and `pcre` nginx's regexes, for every part alike;
`splice` inserts and removes marked lines byte-preservingly;
`binary` runs the real nginx (``-v``, ``-t``, ``-s reload``).
"""
