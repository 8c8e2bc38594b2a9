"""The admin CLI's exit codes, and the one error type that carries its own.

Scripts that drive the CLI branch on the exit code, so each code means one kind of outcome whatever the
command: the table below is printed by ``jupyter-vnc --help``.
"""

from __future__ import annotations

OK = 0
FAILED = 1  # the command ran and the answer is no: a check FAILed, nothing by that name, the hub said no
USAGE = 2  # what the admin gave is wrong (arguments, options, config file, token): nothing was done
UNREACHABLE = 3  # the hub or the registry did not answer: nothing was done, try again later

EXIT_CODES = f"""\
exit codes (every command):
  {OK}  done (doctor: nothing FAILed; WARN lines do not change the code)
  {FAILED}  the command ran and the answer is no: doctor found a FAIL; cancel: no such user or server,
     or the hub refused the request
  {USAGE}  bad input, nothing was done: a wrong argument, --options, user name, configuration file,
     hub URL or token (argparse's own errors exit {USAGE} too)
  {UNREACHABLE}  the hub or the registry (Redis) did not answer: nothing was done; try again later
"""


class CLIError(RuntimeError):
    """An outcome the admin can act on: printed as ``error: MESSAGE`` (never a traceback), with its code."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
