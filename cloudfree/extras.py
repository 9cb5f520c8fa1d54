"""Optional parts of the library: which pip extra installs what, and the error that says so.

A module that needs an optional package imports it at module level like this::

    try:
        import torch
    except ImportError as exc:
        raise missing_extra("torch", "train") from exc
"""

from __future__ import annotations


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


def missing_extra(package: str, extra: str) -> MissingExtraError:
    """The error to raise when ``package`` (an import name) of the ``extra`` is missing."""
    return MissingExtraError(
        f"{package} is not installed: this part of cloudfree needs the {extra!r} extra: "
        f"pip install 'cloudfree[{extra}]' (or -e '.[{extra}]' in a checkout)",
        name=package,
    )
