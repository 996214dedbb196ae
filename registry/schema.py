"""The tables, as SQLAlchemy Core metadata (the migrations create the same); those of the exchange with other
organisations are defined in ``registry.schema_partners`` and named here too."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
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

from registry.schema_base import Id as Id
from registry.schema_base import metadata as metadata
from registry.schema_partners import arrangements as arrangements
from registry.schema_partners import cap_alerts as cap_alerts
from registry.schema_partners import special_runs as special_runs
from registry.schema_partners import webhook_deliveries as webhook_deliveries
from registry.schema_partners import webhooks as webhooks

data_keys = Table(
    "data_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("purpose", String(8), nullable=False),  # data | index
    Column("master_key_id", String(32), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
    Column("active", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Lists brought in by an operator: who, when, which file (its hash, never its contents), the counts.
imports = Table(
    "imports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("file_sha256", String(64), nullable=False),
    Column("region", String(2), nullable=False),  # the default region numbers without a country code are read in
    Column("legal_basis", String(24)),  # NULL: consent (invited, nothing else until YES) | vital_interests
    Column("status", String(16), nullable=False),  # running | done
    Column("counts", JSON, nullable=False, default=dict),  # the report: rows, imported, bad numbers, duplicates...
    Column("imported_by", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    UniqueConstraint("file_sha256", name="uq_imports_file"),  # the same file again resumes its import
)

# The file rows already imported: a re-run of the same file skips them.
import_rows = Table(
    "import_rows",
    metadata,
    Column("import_id", Id, ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True),
    Column("row_number", Integer, primary_key=True, autoincrement=False),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="SET NULL")),
)

registrants = Table(
    "registrants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("language", String(8)),
    Column("area_id", String(64)),
    Column("nationality", String(2)),
    Column("gender", String(8)),
    Column("age_band", String(8)),
    Column("household_size", Integer),
    Column("step", String(32), nullable=False),
    Column("context", JSON, nullable=False, default=dict),  # conversation scratch: menus, no personal data
    Column("consented", Boolean, nullable=False, default=False),
    Column("opted_out", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
    Column("last_check_in", String(16)),  # safe | need_help: what a family member may learn
    Column("last_check_in_at", DateTime(timezone=True)),
    Column("share_family", Boolean, nullable=False, default=False, server_default=false()),
    Column("family_language", String(8)),
    Column("nudged_at", DateTime(timezone=True)),
    Column("expiry_warned_at", DateTime(timezone=True)),
    Column("source_id", Id),  # the outreach source they came through: nothing else about how
    Column("import_id", Id, ForeignKey("imports.id", name="fk_registrants_import", ondelete="SET NULL")),
    Column("invited_at", DateTime(timezone=True)),  # brought in by an import and sent its one invitation
    Column("legal_basis", String(24)),  # vital_interests: crisis messages before consent (from the import)
    Column("registered_by", String(64)),  # "user:NAME" of the fieldworker who registered the person
)
Index("ix_registrants_area", registrants.c.area_id)
Index("ix_registrants_invited", registrants.c.step, registrants.c.invited_at)
Index("ix_registrants_registered_by", registrants.c.registered_by, registrants.c.created_at)

identities = Table(
    "identities",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # phone | telegram
    Column("bidx", LargeBinary(32), nullable=False, unique=True),
    Column("address_ct", LargeBinary, nullable=False),
    Column("last_channel", String(16), nullable=False),  # sms | whatsapp | telegram | simulator
    Column("preferred_channel", String(16), nullable=False),
    Column("reachable", Boolean, nullable=False, default=True),
    Column("error_code", String(16)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=False),
)
Index("ix_identities_registrant", identities.c.registrant_id)

profile_secrets = Table(
    "profile_secrets",
    metadata,
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="CASCADE"), primary_key=True),
    Column("field", String(32), primary_key=True),  # first_name | family_contact
    Column("value_ct", LargeBinary, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="CASCADE"), nullable=False),
    Column("notice_version", String(16), nullable=False),
    Column("language", String(8), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("given_at", DateTime(timezone=True), nullable=False),
    Column("withdrawn_at", DateTime(timezone=True)),
    Column("method", String(24)),  # text (NULL before 0013) | import-invitation | assisted
    Column("recorded_by", String(64)),  # assisted: the fieldworker's "user:NAME"
)
Index("ix_consents_registrant", consents.c.registrant_id)

inbound = Table(
    "inbound",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("provider", String(16), nullable=False),
    Column("provider_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="SET NULL")),
    Column("identity_id", Id, ForeignKey("identities.id", ondelete="SET NULL")),
    Column("body_ct", LargeBinary),  # emptied on erasure and by retention; the row stays for dedupe
    Column("meta", JSON, nullable=False, default=dict),  # non-personal parse results: opt-out type, hints
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),  # failed processing attempts
    Column("failed_at", DateTime(timezone=True)),  # set aside (dead letter): no longer retried by the sweep
    Column("error", String(64)),  # class name of the latest failure, never its message
    UniqueConstraint("provider", "provider_id", name="uq_inbound_provider_id"),
)
Index("ix_inbound_unprocessed", inbound.c.processed_at)
Index("ix_inbound_failed", inbound.c.failed_at)
Index("ix_inbound_registrant", inbound.c.registrant_id)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ref", String(32), nullable=False, unique=True),  # random; binds the ciphertexts to this row
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="SET NULL")),
    Column("identity_id", Id, ForeignKey("identities.id", ondelete="SET NULL")),
    Column("channel", String(16), nullable=False),
    Column("address_ct", LargeBinary),  # emptied once a message to an erased person has left
    Column("body_ct", LargeBinary),
    Column("options", JSON, nullable=False, default=dict),  # buttons, request_contact, template
    Column("broadcast_id", Id),
    Column("status", String(16), nullable=False),  # queued claimed sent delivered read failed undelivered cancelled
    Column("lease_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("provider_id", String(64)),
    Column("error_code", String(16)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt_at)
Index("ix_outbox_provider_id", outbox.c.provider_id)
Index("ix_outbox_registrant", outbox.c.registrant_id)
Index("ix_outbox_identity", outbox.c.identity_id, outbox.c.status)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(64)),
    Column("detail", Text, nullable=False),  # canonical JSON, never personal data
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(32)),  # the master key whose derived key MACs the entry; NULL: plain SHA-256 (pre-0006)
)

# One row: the first audit entry that must be keyed (entries before it were written before keying began).
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("keyed_from", Id, primary_key=True, autoincrement=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("arrangement_id", Id),  # a partner token: the one sharing arrangement it may fetch under
)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("texts", JSON, nullable=False),  # language -> text; public announcements, kept in clear
    Column("audience", JSON, nullable=False),
    Column("check_in", Boolean, nullable=False, default=False),
    Column("send_at", DateTime(timezone=True), nullable=False),
    Column("remind_after_minutes", Integer),
    Column("status", String(16), nullable=False),  # scheduled | sending | sent | cancelled
    Column("cursor", Id, nullable=False, default=0),  # last registrant id fanned out: a restart resumes here
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("draft_key", String(64)),  # the console's one-time key: a form sent twice makes one broadcast
    # {"question": {lang: text}, "options": [{lang: text}, ...]}: public, like the texts
    Column("poll", JSON(none_as_null=True)),
    # reminders to those who have not answered go by phone call (to a phone), whatever channel they prefer
    Column("call_reminders", Boolean, nullable=False, default=False, server_default=false()),
)
Index("ix_broadcasts_due", broadcasts.c.status, broadcasts.c.send_at)
Index("ux_broadcasts_draft_key", broadcasts.c.draft_key, unique=True)

recipients = Table(
    "broadcast_recipients",
    metadata,
    Column("broadcast_id", Id, ForeignKey("broadcasts.id", ondelete="CASCADE"), primary_key=True),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="CASCADE"), primary_key=True),
    Column("outbox_id", Id),
    Column("language", String(8), nullable=False),
    Column("answer", String(16)),  # safe | need_help
    Column("answered_at", DateTime(timezone=True)),
    Column("reminders_sent", Integer, nullable=False, default=0),
    Column("last_sent_at", DateTime(timezone=True), nullable=False),
    Column("poll_answer", Integer),  # the option's number (1..9); the latest answer wins, never free text
    Column("poll_answered_at", DateTime(timezone=True)),
)
Index("ix_recipients_registrant", recipients.c.registrant_id)

cases = Table(
    "cases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="CASCADE"), nullable=False),
    Column("broadcast_id", Id, ForeignKey("broadcasts.id", ondelete="SET NULL")),
    Column("area_id", String(64)),
    Column("category", String(16)),  # medical shelter food water documents evacuation other
    Column("details_ct", LargeBinary),
    Column("notes_ct", LargeBinary),  # sealed JSON list of {at, by, text}
    Column("status", String(16), nullable=False),  # open | in_progress | closed
    Column("assignee", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
)
Index("ix_cases_status", cases.c.status, cases.c.area_id)
Index("ix_cases_registrant", cases.c.registrant_id)

share_codes = Table(
    "share_codes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("registrant_id", Id, ForeignKey("registrants.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

status_lookups = Table(
    "status_lookups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("requester_bidx", LargeBinary(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("found", Boolean, nullable=False),
)
Index("ix_status_lookups_requester", status_lookups.c.requester_bidx, status_lookups.c.at)

# Console sign-in: people with a username and password, and their browser sessions.
console_users = Table(
    "console_users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),  # scrypt$n$r$p$salt$key, base64
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # sha256 of the cookie value; the cookie is never stored
    Column("actor", String(64), nullable=False),  # "user:NAME" or "token:NAME"
    Column("role", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
)
Index("ix_console_sessions_expiry", console_sessions.c.expires_at)

# Failed (and in-progress) console sign-ins, shared by every web process; none older than the window.
signin_failures = Table(
    "signin_failures",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(80), nullable=False),  # addr:ADDRESS-OR-/64 | user:NAME | token:ADDRESS-OR-/64
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_signin_failures_key", signin_failures.c.key, signin_failures.c.at)

# Lets the aggregates count area x nationality x gender from the index alone.
Index("ix_registrants_breakdown", registrants.c.area_id, registrants.c.nationality, registrants.c.gender,
      registrants.c.consented)

# Scheduled stats exports: what to produce and how often, and what was produced. A run's content is
# the published (already suppressed) aggregate file, never a row about a person.
report_schedules = Table(
    "report_schedules",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("format", String(8), nullable=False),  # csv | geojson | json
    Column("query", JSON, nullable=False),  # {"by": [...], "level": 0, "broadcast": null}: the stats query
    Column("every_hours", Integer, nullable=False),  # 1 hourly, 24 daily, 168 weekly, or any N
    Column("next_run_at", DateTime(timezone=True), nullable=False),  # the durable clock: claimed by advancing it
    Column("paused", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),  # deleted schedules keep their runs until they age out
)
Index("ix_report_schedules_due", report_schedules.c.next_run_at)

report_runs = Table(
    "report_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("schedule_id", Id, ForeignKey("report_schedules.id", ondelete="CASCADE")),  # null: an ad-hoc run
    Column("scheduled_for", DateTime(timezone=True)),  # the period a scheduled run belongs to; null on demand
    Column("format", String(8), nullable=False),
    Column("query", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("requested_by", String(64), nullable=False),  # a token's name, or "scheduler"
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),  # a running run past its lease was interrupted: redo it
    Column("attempts", Integer, nullable=False, default=0),
    Column("produced_at", DateTime(timezone=True)),
    Column("content", Text),  # the published file: suppressed aggregates only
    Column("content_type", String(64)),
    Column("size", Integer),
    Column("sha256", String(64)),
    Column("error", String(500)),
    UniqueConstraint("schedule_id", "scheduled_for", name="uq_report_runs_period"),  # one run per period
)
Index("ix_report_runs_schedule", report_runs.c.schedule_id, report_runs.c.id)
Index("ix_report_runs_lease", report_runs.c.status, report_runs.c.lease_until)
Index("ix_report_runs_started", report_runs.c.started_at)

# Provider rate limits shared by every process on PostgreSQL (registry/send_rates.py): per limit (e.g.
# "twilio:+15005550006", the organisation's sender, never a person's number) the epoch second at which its
# next message may leave.
send_rates = Table(
    "send_rates",
    metadata,
    Column("key", String(120), primary_key=True),
    Column("tat", Float(precision=53), nullable=False),
)
# Outreach sources: a poster, a community centre, a partner; each has a code for links, QR codes and JOIN <code>.
sources = Table(
    "sources",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code", String(16), nullable=False),  # upper case letters and digits
    Column("name", String(100), nullable=False),
    Column("area_id", String(64)),  # pre-selected area, if any
    Column("language", String(8)),  # pre-selected language, if any
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("code", name="uq_sources_code"),
)

# The web sign-up's one-time codes: only hashes and the number's blind index, gone soon after expiry.
signup_codes = Table(
    "signup_codes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("ref", String(32), nullable=False),  # random; what the code form carries
    Column("bidx", LargeBinary(32), nullable=False),  # blind index of the number (or Telegram: of the ref)
    Column("client", String(64), nullable=False),  # keyed hash of the client address, for the rate limit
    Column("channel", String(16), nullable=False),
    Column("code_hash", LargeBinary(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    UniqueConstraint("ref", name="uq_signup_codes_ref"),
)
Index("ix_signup_codes_bidx", signup_codes.c.bidx, signup_codes.c.created_at)
Index("ix_signup_codes_client", signup_codes.c.client, signup_codes.c.created_at)

# The personal links of invitations (/join/invited/<token>): only the token's hash; one decision each, until the
# invitation would be erased. The row outlives an erasure (registrant and identity set to NULL) so that a used
# link still says "used", and is deleted by the retention sweep once expired.
invitation_links = Table(
    "invitation_links",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", LargeBinary(32), nullable=False),  # SHA-256 of the random token
    Column("registrant_id", Id, ForeignKey("registrants.id", name="fk_invitation_links_registrant",
                                           ondelete="SET NULL")),
    Column("identity_id", Id, ForeignKey("identities.id", name="fk_invitation_links_identity", ondelete="SET NULL")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    UniqueConstraint("token_hash", name="uq_invitation_links_token_hash"),
)
Index("ix_invitation_links_expires", invitation_links.c.expires_at)
