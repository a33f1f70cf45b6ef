"""How what a client sends is compared with what is stored: tokens by their hash, e-mails normalised.

A bearer token (a session's, an invitation's) is 256 random bits handed to the client once; the database
keeps only its SHA-256, so a copy of a table of them lets nobody in, and so much randomness needs no
slow hash. An e-mail address is compared trimmed and lower-cased, the way logins find an account.
"""

from __future__ import annotations

import hashlib


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()
