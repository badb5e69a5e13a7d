"""The one error type for bad input: a file, line or config key the user must fix.

The CLI turns a :class:`UserError` into one line (``svbench: error: …``) and exit status 2; any other
exception is a bug in svbench and keeps its traceback. The message names the file (and line) or the
config key, and what to do.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the file, line or config key. A ValueError, so existing callers that
    catch ValueError keep working."""
