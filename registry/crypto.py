"""Field encryption (AES-256-GCM) and blind indexes (HMAC-SHA256).

Envelope scheme: the *master keys* come from ``BEACON_KEYS`` (or the
development key file) and only wrap the *data keys*, which live in the
``data_keys`` table. Rotating a data key is therefore a database write that
every running process picks up, with no restart; rotating a master key is a
re-wrap of a handful of rows.

A ciphertext is ``version(1) | key-id length(1) | key id | nonce(12) | ct+tag``.
The associated data names the table, field and owning row, so a value copied
into another row or field does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = 1


class KeyringError(Exception):
    """Keys that are missing, malformed or do not open the data (never silently readable)."""


@dataclass(frozen=True)
class MasterKeys:
    """Key-encryption keys: the first one wraps new data keys."""

    keys: dict[str, bytes]
    active: str

    @classmethod
    def parse(cls, spec: str) -> MasterKeys:
        """Parse ``id:base64(32 bytes),id2:...``; the first entry is active."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, sep, material = item.partition(":")
            if not sep or not key_id or len(key_id) > 32:
                raise KeyringError("BEACON_KEYS entries must look like id:base64key")
            try:
                raw = base64.b64decode(material, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"BEACON_KEYS key {key_id!r} is not valid base64") from None
            if len(raw) != 32:
                raise KeyringError(f"BEACON_KEYS key {key_id!r} must be 32 bytes, not {len(raw)}")
            keys[key_id] = raw
            order.append(key_id)
        if not order:
            raise KeyringError("BEACON_KEYS holds no key")
        return cls(keys, order[0])

    @classmethod
    def development(cls, path: Path) -> MasterKeys:
        """Load or create the development key file (mode 0600)."""
        if path.exists():
            try:
                data = json.loads(path.read_text())
                return cls.parse(",".join(f"{k['id']}:{k['key']}" for k in data["keys"]))
            except (ValueError, KeyError, TypeError):
                raise KeyringError(f"key file {path} is malformed") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        key_id = "dev1"
        material = base64.b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": [{"id": key_id, "key": material}]}, fh)
        return cls.parse(f"{key_id}:{material}")

    def derive(self, purpose: str) -> dict[str, bytes]:
        """A 256-bit key for ``purpose`` from each master key (HKDF-SHA256), by master key id.

        Derived keys are never stored, and data-key rotations and re-wraps leave them as they are.
        """
        return {key_id: HKDF(hashes.SHA256(), 32, salt=None, info=f"beacon/{purpose}".encode()).derive(key)
                for key_id, key in self.keys.items()}

    def wrap(self, data_key: bytes, data_key_id: str) -> tuple[str, bytes]:
        """Encrypt a data key under the active master key."""
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self.keys[self.active]).encrypt(nonce, data_key, f"data_key/{data_key_id}".encode())
        return self.active, nonce + sealed

    def unwrap(self, master_id: str, wrapped: bytes, data_key_id: str) -> bytes:
        """Decrypt a data key; fail loudly when the master key is absent or wrong."""
        key = self.keys.get(master_id)
        if key is None:
            raise KeyringError(f"data key {data_key_id} needs master key {master_id!r}, which is not configured")
        try:
            return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], f"data_key/{data_key_id}".encode())
        except InvalidTag:
            raise KeyringError(f"master key {master_id!r} does not open data key {data_key_id}") from None


class KeyRing:
    """Data keys by id, one active for new ciphertexts, plus the blind-index key."""

    def __init__(self, data_keys: dict[str, bytes], active: str, index_key: bytes) -> None:
        if active not in data_keys:
            raise KeyringError("the active data key is missing")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in data_keys.items()}
        self.active = active
        self._index_key = index_key

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: str, aad: str) -> bytes:
        """Seal a text under the active key, bound to ``aad`` (table/field/row)."""
        key_id = self.active.encode()
        nonce = secrets.token_bytes(12)
        sealed = self._ciphers[self.active].encrypt(nonce, plaintext.encode("utf-8"), aad.encode())
        return bytes((_VERSION, len(key_id))) + key_id + nonce + sealed

    def key_id_of(self, blob: bytes) -> str:
        """The id of the key that sealed ``blob``."""
        if len(blob) < 2 or blob[0] != _VERSION:
            raise KeyringError("unknown ciphertext format")
        return blob[2 : 2 + blob[1]].decode()

    def decrypt(self, blob: bytes, aad: str) -> str:
        """Open a ciphertext; raise KeyringError when the key is unknown or the data was tampered with."""
        key_id = self.key_id_of(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyringError(f"data key {key_id!r} is not loaded")
        start = 2 + blob[1]
        try:
            return cipher.decrypt(blob[start : start + 12], blob[start + 12 :], aad.encode()).decode("utf-8")
        except InvalidTag:
            raise KeyringError("ciphertext does not authenticate") from None

    def blind_index(self, kind: str, address: str) -> bytes:
        """Keyed hash of a normalised address, for equality look-ups without the plaintext."""
        return hmac.new(self._index_key, f"{kind}:{address}".encode(), hashlib.sha256).digest()


def new_key() -> bytes:
    """A fresh 256-bit key."""
    return secrets.token_bytes(32)
