"""Errors that end a command with one line for the operator instead of a traceback."""


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""
