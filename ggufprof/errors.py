"""The one exception type the CLI turns into a one-line ``Error: ...`` and exit code 2."""


class GgufprofError(Exception):
    """A problem the user can fix (bad file, bad setting); its message says what and how."""
