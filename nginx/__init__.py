"""Understanding and editing nginx configurations without damaging them.

`config` loads a configuration (every include, comments kept) into an immutable tree;
`matching` chooses the server and location nginx would; `splice` edits text byte-preservingly;
`binary` runs the real nginx (``-t``, ``-v``, reload).
"""
