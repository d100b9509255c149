"""Bearer authentication: a JWT (HS256) whose sub is the caller's users.id.

The token only says who the caller is. What they may do, and whether the user
exists at all, is decided by the database functions (MB401 for an unknown user).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from flask import current_app, g, request

from .errors import ApiError
from .parse import BIGINT_MAX, ID_PATTERN

ALGORITHM = "HS256"


def mint(secret: str, user_id: int, *, lifetime: timedelta = timedelta(hours=12)) -> str:
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def current_user_id() -> int:
    """The users.id of the signed-in caller, or a 401 problem."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "A bearer token is required.")
    try:
        claims = jwt.decode(token.strip(), current_app.config["JWT_SECRET"], algorithms=[ALGORITHM],
                            options={"require": ["sub", "exp"]})
    except jwt.PyJWTError:
        raise ApiError(401, "The bearer token is invalid or expired.") from None
    sub = claims["sub"]
    if not isinstance(sub, str) or not ID_PATTERN.fullmatch(sub) or not 1 <= int(sub) <= BIGINT_MAX:
        raise ApiError(401, "The bearer token does not name a user.")
    g.user_id = int(sub)
    return g.user_id
