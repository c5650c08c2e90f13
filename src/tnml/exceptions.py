"""The exceptions ``tnml`` raises for bad input, bad files and bad models.

Every error a user can cause derives from :class:`TnmlError`, so the command-line tool can
turn it into one line and exit code 2. Each also derives from the builtin that callers of a
scientific Python library expect (``ValueError``, ``FileNotFoundError``), so
``except ValueError`` keeps working.
"""

__all__ = [
    "DataFileError",
    "InvalidInputError",
    "ModelFileError",
    "TnmlError",
    "TrainingError",
    "TrainingWarning",
]


class TnmlError(Exception):
    """Base class of every error ``tnml`` raises for a problem the user can fix."""


class InvalidInputError(TnmlError, ValueError):
    """An argument or data set has the wrong shape, type or values (NaN, outside [0, 1], ...)."""


class DataFileError(TnmlError, FileNotFoundError):
    """A data file or directory is missing or cannot be read as the format it claims."""


class ModelFileError(TnmlError, ValueError):
    """A model file is missing, truncated, corrupt, or not written by ``tnml``."""


class TrainingError(TnmlError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class TrainingWarning(UserWarning):
    """Training ran but did not do what was asked: no progress in the first epoch after the
    learning-rate warm-up, or the loss still falling when the epochs ran out (fast, or while
    the training accuracy is below 90%)."""
