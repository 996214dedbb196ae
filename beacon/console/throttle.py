"""Sign-in attempts: the limits every web process shares (registry.signins), and a cap on how many
checks this process has under way at once."""

from __future__ import annotations

from dataclasses import dataclass

from registry import signins, users
from registry.db import Database

# Password and token checks this process runs or queues at once (scrypt runs HASHING_THREADS at a
# time); beyond that an attempt is turned away at once rather than left to queue.
IN_FLIGHT = 32
BUSY_WAIT = 1.0  # seconds an attempt turned away for that is told to wait


@dataclass(frozen=True)
class SignInResult:
    """A sign-in attempt's answer: refused for ``wait`` seconds, signed in as ``actor``, or wrong."""

    wait: float = 0.0
    actor: str | None = None  # "user:NAME" or "token:NAME"
    role: str | None = None


class Throttle:
    """Checks sign-ins within the limits; one per web process."""

    def __init__(self) -> None:
        self._in_flight = 0

    async def sign_in(self, db: Database, address: str, *, username: str, password: str, token: str) -> SignInResult:
        """Check a username and password, or an API token, from a client address."""
        if self._in_flight >= IN_FLIGHT:
            return SignInResult(wait=BUSY_WAIT)
        self._in_flight += 1
        try:
            attempt = await signins.claim(db, address, signins.token_key(address) if token
                                          else signins.user_key(username))
            if attempt.wait:
                return SignInResult(wait=attempt.wait)
            if token:
                found = await users.verify_token(db, token)
                result = SignInResult(actor=f"token:{found[0]}", role=found[1]) if found else SignInResult()
            else:
                role = await users.verify_user(db, username, password)
                result = SignInResult(actor=f"user:{username}", role=role) if role else SignInResult()
            if result.actor:
                await signins.succeeded(db, attempt)
            return result
        finally:
            self._in_flight -= 1
