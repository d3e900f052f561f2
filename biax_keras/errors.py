"""Errors a user can cause and fix.

The command line turns a `UserError` into one line on stderr and exit code 2;
any other exception is a bug (exit code 1).
"""


class UserError(Exception):
    """Something the user gave is wrong; the message says what and what to do."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) after some outputs were finished; the message names them.

    A `KeyboardInterrupt`, so whatever stops on Ctrl-C stops on it too; the
    command line prints its message after "interrupted".
    """
