"""Domain errors. The library raises these; the CLI turns each into one line on stderr
and the exit code of its kind (see EXIT_CODES and the README)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_GENERATION_FAILED = 1  # the model or the file system failed while working
EXIT_BAD_INPUT = 2  # bad world, request, setting, model file or usage
EXIT_SERVER_STATE = 3  # `metagen serve`: one runs already; --stop or --status: none runs
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
# What a Ctrl-C prints wherever it lands (in a command, before one starts, while a client waits for a
# busy server): nothing is written before a piece is whole, so the line is the same in each case.
INTERRUPTED_MESSAGE = "error: interrupted (SIGINT); nothing partial was written"
EXIT_TERMINATED = 143  # SIGTERM
EXIT_HUNG_UP = 129  # SIGHUP: the terminal was closed (as SIGTERM, 128 + the signal's number)


class MetagenError(Exception):
    """Base of every error metagen reports to the user; `exit_code` says how it exits."""

    exit_code = EXIT_GENERATION_FAILED

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and hint as a single line for stderr."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class WorldError(MetagenError):
    """A world file is missing, unreadable or invalid."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])


class RequestError(MetagenError):
    """A request names things the world does not have, or cannot fit the model."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(MetagenError):
    """An impossible decoding or command setting."""

    exit_code = EXIT_BAD_INPUT


class ModelError(MetagenError):
    """A model file is missing, damaged, of another architecture, or cannot be fetched."""

    exit_code = EXIT_BAD_INPUT


class CacheWriteError(ModelError):
    """The model cache cannot be written (a full disk, a read-only folder): a failure of the disk,
    like an output that cannot be written, not bad input."""

    exit_code = EXIT_GENERATION_FAILED


class OutputExistsError(MetagenError):
    """An output file exists and --overwrite was not given."""

    exit_code = EXIT_BAD_INPUT


class OutputError(MetagenError):
    """An output could not be written (permissions, full disk)."""

    exit_code = EXIT_GENERATION_FAILED


class OutputFolderError(OutputError):
    """A file where an output folder goes (--out names a file, or a file sits on the way to it):
    the user's input, like an output that exists, not a failure of the disk."""

    exit_code = EXIT_BAD_INPUT


class OutputLinkError(OutputError):
    """A symbolic link inside the output folder, an output folder that is a link to nothing, or one replaced during a run."""

    exit_code = EXIT_BAD_INPUT


class InputError(MetagenError):
    """A file given to check is missing, unreadable, binary or too large, or a folder holds too many."""

    exit_code = EXIT_BAD_INPUT


class ModerationRefused(MetagenError):
    """--moderation enforce: a piece still exceeds the world's rating after its candidates, so it was not written."""

    exit_code = EXIT_GENERATION_FAILED


class GenerationError(MetagenError):
    """The model failed while generating."""

    exit_code = EXIT_GENERATION_FAILED


class ServerStateError(MetagenError):
    """`metagen serve` when a server already runs in METAGEN_HOME, or --stop when none does."""

    exit_code = EXIT_SERVER_STATE


class Interrupted(MetagenError):
    """The run was stopped by a signal; `exit_code` is 130 (SIGINT) or 143 (SIGTERM)."""

    def __init__(self, message: str, exit_code: int = EXIT_INTERRUPTED):
        super().__init__(message)
        self.exit_code = exit_code


class Terminated(BaseException):
    """Raised by the CLI's SIGTERM and SIGHUP handler. A BaseException, like KeyboardInterrupt, so
    that no `except Exception` (a cache load, a damaged-file check) can swallow the signal."""

    def __init__(self, message: str = "terminated by SIGTERM", exit_code: int = EXIT_TERMINATED):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
