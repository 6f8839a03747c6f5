class IpftError(Exception):
    """An error the user can act on; printed without a traceback."""


class UsageError(IpftError):
    """Bad user input (an option's value, a filter expression): exit status 2."""
