"""Sensor tokens: ``shs_`` + 32 base62 characters of secret + 6 base62 characters of CRC32.

The shape follows GitHub's ``ghp_`` tokens:

- the prefix makes a leaked token recognisable to secret scanners and log redaction
  (the core's ``sensorhub.identity.TOKEN_IN_TEXT``);
- the secret is 32 characters drawn with :mod:`secrets` from 62 symbols: about 190 bits;
- the checksum (CRC32 of prefix and secret, base62, zero-padded to 6 characters) catches typos
  and truncation *before* any database lookup. It is not a MAC and adds no secrecy.

Only ``SHA-256(token)`` is stored. A slow password hash (bcrypt, argon2) protects *low-entropy*
secrets against offline guessing; a 190-bit random secret cannot be guessed offline anyway, and
an unsalted fast hash keeps authentication to one indexed equality lookup on the hash column.
The stored hash is compared again in constant time (:func:`hmac.compare_digest`) after the
lookup, so the answer never depends on how many bytes of a guess matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib

from sensorhub.identity import TOKEN_PREFIX

PREFIX = TOKEN_PREFIX
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
TOKEN_LENGTH = len(PREFIX) + SECRET_LENGTH + CHECKSUM_LENGTH
_SHAPE = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}}")


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def new_token() -> str:
    body = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return body + checksum(body)


def looks_like_token(candidate: str) -> bool:
    """True when ``candidate`` has the shape of a sensor token (prefix, length, charset)."""
    return _SHAPE.fullmatch(candidate) is not None


def checksum_ok(token: str) -> bool:
    """Call only on a token that :func:`looks_like_token`; catches typos without the database."""
    body, check = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    return hmac.compare_digest(checksum(body), check)


def token_hash(token: str) -> bytes:
    """The 32-byte SHA-256 digest stored in, and looked up by, ``sensor_tokens.token_hash``."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def hint(token: str) -> str:
    """What operators see to tell a sensor's tokens apart: the prefix and 4 secret characters
    (24 of 190 bits: no help to a guesser)."""
    return token[: len(PREFIX) + 4] + "…"


def same_hash(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
