"""User-facing errors: one line naming the problem and the fix, exit code 2."""


class UserError(Exception):
    """A problem with the user's input (spec, corpus, model directory, arguments).

    The CLI prints ``error: <message>`` on one line and exits with code 2, no traceback.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line
