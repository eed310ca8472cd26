"""The project's own error types.

Every problem with user input raises exactly one of these, with a message that names the
file or field and says what was expected. They subclass ``ValueError`` so that callers who
only know the standard library still catch them.
"""


class ParityError(ValueError):
    """Base class of every input error this project raises on purpose."""


class SpecError(ParityError):
    """A model spec field is unknown, out of range, or inconsistent with another field."""


class WeightFileError(ParityError):
    """A weight file is unreadable, incomplete, or disagrees with its spec."""


class DataError(ParityError):
    """A data file or array is malformed: bad header, wrong shape, non-finite values, bad labels."""


class BackendError(ParityError):
    """A backend cannot express a spec option exactly (it never substitutes silently)."""
