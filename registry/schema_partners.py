"""The tables of what Beacon exchanges with other organisations: sharing arrangements and their special runs,
outbound webhooks and their delivery queue, and the CAP alerts received (re-exported by ``registry.schema``)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from registry.schema_base import Id, metadata

# Sharing arrangements (MICIC guidelines): what a partner organisation may fetch, how and until when.
arrangements = Table(
    "arrangements",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("partner", String(200), nullable=False),  # the organisation
    Column("contact", String(200), nullable=False),  # the organisation's data-sharing contact point
    Column("purposes", JSON, nullable=False),  # accepted purposes, as agreed
    Column("dimensions", JSON, nullable=False),  # the stats dimensions the partner may ask for
    Column("area_level", Integer, nullable=False),  # the deepest gazetteer level (0: top) it may see
    Column("min_cell", Integer, nullable=False),  # never below BEACON_MIN_CELL
    Column("formats", JSON, nullable=False),  # json, csv, geojson, hxl
    Column("frequency", String(32), nullable=False),  # how often the data is updated for the partner
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),  # from this day on the arrangement no longer works
    Column("legal_basis", String(500), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# On-demand special runs under an arrangement: requested by the partner, decided by an admin, then produced.
special_runs = Table(
    "special_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("arrangement_id", Id, ForeignKey("arrangements.id", ondelete="CASCADE"), nullable=False),
    Column("dimensions", JSON, nullable=False),
    Column("level", Integer, nullable=False),
    Column("purpose", String(500), nullable=False),
    Column("status", String(16), nullable=False),  # requested | rejected | ready
    Column("requested_by", String(64), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", DateTime(timezone=True)),
    Column("produced_at", DateTime(timezone=True)),
    Column("content", Text),  # the published table as JSON: suppressed aggregates only
)
Index("ix_special_runs_arrangement", special_runs.c.arrangement_id, special_runs.c.id)
# Outbound webhooks: who is told of which events, and each notification's delivery (the queue is the log).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),  # case.opened case.assigned case.closed checkins.changed ...
    Column("secret_ct", LargeBinary, nullable=False),  # the signing secret, sealed to the subscription
    Column("include_personal_data", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("webhook_id", Id, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(32), nullable=False),
    Column("event_id", String(32), nullable=False),  # random: the receiver's idempotency key
    Column("payload_ct", LargeBinary),  # the JSON body, sealed; emptied once delivered or given up
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("status_code", Integer),  # the receiver's last HTTP status
    Column("error", String(64)),  # the last failure's class name, never its message
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_webhook", webhook_deliveries.c.webhook_id, webhook_deliveries.c.id)

# CAP 1.2 messages received (by POST or from the feed): a message is taken once (sender + identifier);
# an Alert makes a draft broadcast, an Update or Cancel changes or withdraws it while it is a draft.
cap_alerts = Table(
    "cap_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("sender", String(200), nullable=False),
    Column("identifier", String(200), nullable=False),
    Column("sent", String(40), nullable=False),
    Column("msg_type", String(16), nullable=False),  # Alert | Update | Cancel
    Column("headline", Text),  # public alert text
    Column("broadcast_id", Id, ForeignKey("broadcasts.id", ondelete="SET NULL")),
    Column("outcome", String(32), nullable=False),  # drafted | updated | withdrawn | noted | no_area | ...
    Column("received_by", String(64), nullable=False),  # the token's name, or "cap-feed"
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("sender", "identifier", name="uq_cap_alerts_message"),
)
Index("ix_cap_alerts_broadcast", cap_alerts.c.broadcast_id)
