"""The one exception type the CLI turns into a one-line message."""


class TiltguardError(Exception):
    """Bad input or an unusable environment, said in one line for the user.

    Raise it (or a subclass) wherever input is refused; ``tiltguard`` prints
    ``tiltguard: error: <message>`` and exits with status 2, never a traceback.
    """


class InputError(TiltguardError):
    """A file or stream that cannot be read as what it claims to be."""
