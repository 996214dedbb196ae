"""Times are UTC everywhere; SQLite hands them back without a zone."""

from __future__ import annotations

from datetime import UTC, datetime


def aware(value: datetime) -> datetime:
    """The same instant, zone-aware (UTC when the database dropped the zone)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with the UTC offset, or None."""
    return aware(value).isoformat() if value is not None else None
