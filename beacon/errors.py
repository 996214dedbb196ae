"""One-line descriptions of the failures an operator can fix."""

from __future__ import annotations

from beacon.config import ConfigError
from channels.settings import SettingsError
from domain.areas import GazetteerError
from registry.crypto import KeyringError
from registry.single_process import DatabaseInUse
from registry.tokens import TokenError
from registry.users import UserError


def describe(exc: BaseException) -> str:
    """A single line saying what went wrong, without personal data."""
    if isinstance(exc, ConfigError | SettingsError | GazetteerError | KeyringError | TokenError | UserError
                       | DatabaseInUse):
        return str(exc)
    if isinstance(exc, OSError):
        # Some OSErrors carry no strerror (e.g. "Multiple exceptions: ..." from a failed connect): use the text.
        reason = exc.strerror or (str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return f"{reason}{': ' + str(exc.filename) if exc.filename else ''}"
    name = type(exc).__name__
    if "OperationalError" in name or "ConnectionRefused" in name or "InvalidCatalogName" in name:
        return f"cannot use the database: {str(exc).splitlines()[0][:200]}"
    return f"{name}: {str(exc).splitlines()[0][:200] if str(exc) else 'unexpected failure'}"
