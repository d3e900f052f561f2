"""Errors a user can cause and fix.

The command line turns a `UserError` into one line on stderr and exit code 2;
any other exception is a bug (exit code 1).
"""


class UserError(Exception):
    """Something the user gave is wrong; the message says what and what to do."""
