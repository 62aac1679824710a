"""Files and directories verify writes are their owner's only (files 0600, directories 0700),
whatever the umask and also when an older run left them more open.

They hold callbacks (archive segments, reports, the heal ledger) or what points at them
(MessageIds, keys, body hashes, counts: the archive's index, the watch's state). The one
exception is the metrics textfile (verify.metrics), which node_exporter reads as a user of its
own and which holds counts and times only. The rule itself is `hookshift.private`, shared with
the stage emulator's log and the rehearsal.
"""

from __future__ import annotations

from hookshift.private import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    SQLITE_COMPANIONS,
    connect_private,
    make_dirs,
    owner_only,
    write_private,
)

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "SQLITE_COMPANIONS",
    "connect_private",
    "make_dirs",
    "owner_only",
    "write_private",
]
