"""Error types that separate user mistakes (exit code 2) from internal failures (exit 1)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: bad path, bad CSV, corrupt image, bad config key.

    The message is shown as one line, without a traceback; it must name the
    culprit (file, key, id) and say what to do about it.
    """
