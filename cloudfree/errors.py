"""One exception hierarchy: every error says what was wrong and where."""


class CloudfreeError(Exception):
    """Base class of every error raised by cloudfree."""


class ConfigError(CloudfreeError):
    """A config value is missing, of the wrong type or inconsistent (names the key)."""


class InputDataError(CloudfreeError):
    """An input file, tile or date is unreadable or inconsistent (names the file/tile/date)."""


class ModelFileError(CloudfreeError):
    """A model file is missing, incomplete or of an unknown version."""


class StorageError(CloudfreeError, OSError):
    """An output could not be written: the disk or quota is full (names the output)."""
