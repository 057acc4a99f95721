"""``python -m tests.reliability.write_audit LOG ARGS…``: run ``ctqc ARGS…`` and log every file it opens for writing.

An audit hook (:func:`sys.addaudithook`) sees each ``open`` — ``open()``,
``io.open``, ``os.open`` (so also ``tempfile.mkstemp``) — and appends
``<path>\\t<mode or flags>`` to ``LOG`` for those that may write. Writes made
inside native code (``torch.save``'s zip writer) are invisible to it, but the
temporary file they go to is created by ``mkstemp`` first, which is logged.
"""

from __future__ import annotations

import os
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _install(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)  # opened before the hook: not logged

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
        if writes:
            os.write(fd, f"{os.path.abspath(os.fsdecode(path))}\t{mode if isinstance(mode, str) else flags}\n".encode())

    sys.addaudithook(hook)


if __name__ == "__main__":
    _install(sys.argv[1])
    sys.argv = ["ctqc", *sys.argv[2:]]
    from ctqc.cli import main

    main()
