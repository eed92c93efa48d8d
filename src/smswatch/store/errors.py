"""What opening a store can fail with, whichever the back end."""


class CannotOpen(Exception):
    """The database cannot be opened at start (the message says why, for the operator)."""
