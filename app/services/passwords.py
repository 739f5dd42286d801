"""Dashboard passwords, hashed with Argon2id (argon2-cffi): memory-hard, so a stolen table
cannot be searched cheaply on GPUs.

Hashing costs tens of milliseconds of CPU and 64 MiB by design: it runs in a thread, never on
the event loop, and a few at a time, so a burst of sign-ins cannot exhaust the process's
memory.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import RequestError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # Argon2 hashes any length; this bounds the work a caller can ask for
CONCURRENT_HASHES = 2

_hasher = PasswordHasher()


class Passwords:
    def __init__(self) -> None:
        self._slots = asyncio.Semaphore(CONCURRENT_HASHES)
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        check_password(password)
        async with self._slots:
            return await asyncio.to_thread(_hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches. With no stored hash (no such user, or no password
        set) a decoy is verified instead, so that timing does not tell the cases apart."""
        if len(password) > MAX_LENGTH:
            return False
        if self._decoy is None:
            self._decoy = await self.hash("a decoy, the password of no one")
        async with self._slots:
            matches = await asyncio.to_thread(_verify, stored_hash or self._decoy, password)
        return matches and stored_hash is not None


def check_password(password: str, loc: tuple[str, ...] = ("body", "password")) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise RequestError(
            f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters, not {len(password)}",
            loc=loc,
        )


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
