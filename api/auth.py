"""Bearer authentication: a JWT (HS256) whose sub is the caller's users.id.

The token only says who the caller is. What they may do, and whether the user
exists at all, is decided by the database functions (MB401 for an unknown user).

A client sends the same token with every request until it expires, so a
verified token is remembered (per worker, the most recent TOKEN_CACHE_SIZE):
its signature and claims are checked once, and only its expiry on every later
request. A token that fails verification is never remembered.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from flask import current_app, g, request

from .errors import ApiError
from .parse import BIGINT_MAX, ID_PATTERN

ALGORITHM = "HS256"
TOKEN_CACHE_SIZE = 4096


def mint(secret: str, user_id: int, *, lifetime: timedelta = timedelta(hours=12)) -> str:
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


@lru_cache(maxsize=TOKEN_CACHE_SIZE)
def _verified(secret: str, token: str) -> tuple[int, float]:
    """The user id and expiry (epoch seconds) of a token whose signature and claims hold; raises ApiError otherwise."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError:
        raise ApiError(401, "The bearer token is invalid or expired.") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not ID_PATTERN.fullmatch(sub) or not 1 <= int(sub) <= BIGINT_MAX:
        raise ApiError(401, "The bearer token does not name a user.")
    return int(sub), float(claims["exp"])


def current_user_id() -> int:
    """The users.id of the signed-in caller, or a 401 problem."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "A bearer token is required.")
    user_id, expires = _verified(current_app.config["JWT_SECRET"], token.strip())
    # PyJWT's own rule, re-applied to a remembered token: expired once now >= exp.
    if time.time() >= expires:
        raise ApiError(401, "The bearer token is invalid or expired.")
    g.user_id = user_id
    return user_id
