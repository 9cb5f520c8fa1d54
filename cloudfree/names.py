"""Names that become paths: tiles, regions, experiments, products and dates.

Every name read from a file, a manifest, a catalogue or a config passes :func:`check_name` (or
:func:`check_date`) where it is read, before it is joined to a folder: one pattern, so ``..``,
``/``, a trailing newline or an absolute path can never turn into a path outside the outputs.
"""

from __future__ import annotations

import datetime as dt
import re

from cloudfree.errors import CloudfreeError, InputDataError

MAX_NAME = 128
# Letters, digits, "_" and "-", starting with a letter or digit; matched with fullmatch, so a
# trailing newline is refused (a "$" in re.match would accept it).
NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_NAME - 1}}}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NAME_RULE = f"letters, digits, '_' and '-', starting with a letter or digit, at most {MAX_NAME}"


def check_name(
    value: object, what: str, where: str, error: type[CloudfreeError] = InputDataError
) -> str:
    """``value`` if it is a safe name, else ``error`` naming ``where`` (a file, a config key)
    and ``what`` (tile, region, ...)."""
    if not isinstance(value, str) or NAME.fullmatch(value) is None:
        raise error(f"{where}: {what} name {value!r} is not allowed ({NAME_RULE})")
    return value


def check_date(value: object, where: str, error: type[CloudfreeError] = InputDataError) -> str:
    """``value`` if it is an ISO calendar date (``YYYY-MM-DD``, a day that exists), else
    ``error`` naming ``where``."""
    if isinstance(value, str) and DATE.fullmatch(value):
        try:
            dt.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise error(f"{where}: date {value!r} is not a calendar date YYYY-MM-DD")
