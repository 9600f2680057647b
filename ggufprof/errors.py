"""The one exception type the CLI turns into a one-line ``Error: ...`` and exit code 2, and the exit
codes every gate (``compare``, ``check``, ``sweep``) answers with."""

from enum import IntEnum


class GgufprofError(Exception):
    """A problem the user can fix (bad file, bad setting); its message says what and how."""


class ExitCode(IntEnum):
    """What a command's exit status means, the same for every command (one definition).

    A CI gate must tell "nothing wrong was found" apart from "nothing could be judged": INCONCLUSIVE
    is neither a pass nor a regression, so a pipeline can treat it as its own state."""

    PASS = 0  # everything compared or checked, within its limits
    FAIL = 1  # a regression, a broken limit, a failed run, or something the baseline had is lost
    BAD_INPUT = 2  # a file, flag or value refused: one ``Error: ...`` line on stderr
    INCONCLUSIVE = 3  # what was measured cannot be judged (noise, too few samples, no reading)
