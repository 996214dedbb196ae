"""How a need-help case's personal parts are sealed at rest and opened for responders.

A case's details and notes are free text a person or a responder wrote, sealed under the data
keys and bound to the case id; everything else on a case is plain, for queues and aggregates.
"""

from __future__ import annotations

import json
from typing import Any

from registry.crypto import KeyRing
from registry.keys import case_aad
from registry.times import iso


def _aad(case_id: int, field: str) -> str:
    return case_aad(field)({"id": case_id})


def seal_details(keys: KeyRing, case_id: int, details: str) -> bytes:
    """The kind of help asked for, in the person's words, sealed to its case."""
    return keys.encrypt(details, _aad(case_id, "details"))


def seal_notes(keys: KeyRing, case_id: int, notes: list[dict[str, str]]) -> bytes:
    """Responders' notes on a case, sealed to it."""
    return keys.encrypt(json.dumps(notes, ensure_ascii=False), _aad(case_id, "notes"))


def open_notes(keys: KeyRing, case_id: int, sealed: bytes | None) -> list[dict[str, str]]:
    """A case's notes, oldest first."""
    return json.loads(keys.decrypt(sealed, _aad(case_id, "notes"))) if sealed else []


def view(keys: KeyRing, row: Any) -> dict[str, Any]:
    """A case as responders see it (personal details decrypted: audit the read)."""
    return {
        "id": row.id, "registrant_id": row.registrant_id, "broadcast_id": row.broadcast_id, "area": row.area_id,
        "category": row.category, "status": row.status, "assignee": row.assignee,
        "details": keys.decrypt(row.details_ct, _aad(row.id, "details")) if row.details_ct else None,
        "notes": open_notes(keys, row.id, row.notes_ct),
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at),
    }
