class IpftError(Exception):
    """An error the user can act on; printed without a traceback."""
