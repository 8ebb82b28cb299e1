"""Bearer tokens: HS256 JWTs whose `vendorId` claim is the only vendor a caller can touch.

The algorithm is pinned (a token signed otherwise, `alg: none` included, is
invalid), `exp` (a JSON number) and `vendorId` are required. Errors are 401 with
`{"detail": {"code": "missing_token" | "invalid_token" | "token_expired", "message"}}`.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBearer

ALGORITHM = "HS256"
# Always `fullmatch`ed: with `re.match` and `$`, "a\n" would pass (`$` also matches before a final newline).
VENDOR_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}"
VENDOR_ID = re.compile(VENDOR_ID_PATTERN)
LEEWAY_SECONDS = 5
# Only for OpenAPI (the security scheme a client sees); `current_caller` reads the header itself so every
# refusal carries our error code.
BEARER_SCHEME = HTTPBearer(auto_error=False, bearerFormat="JWT",
                           description="HS256 JWT with `vendorId` and `exp` claims (`ledger-sync token --vendor V`).")


class AuthError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def as_detail(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Caller:
    vendor_id: str
    expires_at: int


def is_vendor_id(value: Any) -> bool:
    """1–128 of letters, digits and `_.:@-`, starting with a letter or digit; nothing else, not even a newline."""
    return isinstance(value, str) and VENDOR_ID.fullmatch(value) is not None


def _json_number(value: Any) -> bool:
    """A finite JSON number (not a string that looks like one, not a boolean, not NaN or Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def issue_token(vendor_id: str, secret: str, ttl_seconds: int = 8 * 3600) -> str:
    """A signed token for one vendor (the CLI's `ledger-sync token --vendor V`)."""
    if not is_vendor_id(vendor_id):
        raise ValueError(f"not a valid vendor id: {vendor_id!r} (1–128 letters, digits or _.:@-, "
                         "starting with a letter or digit)")
    now = int(time.time())
    return jwt.encode({"vendorId": vendor_id, "iat": now, "exp": now + int(ttl_seconds), "sub": vendor_id},
                      secret, algorithm=ALGORITHM)


def verify_token(token: str | None, secret: str) -> Caller:
    """The caller a token stands for, or `AuthError` saying why not.

    Any input is refused with an `AuthError`, never an exception of another kind: a socket's `auth.token`
    can be any JSON value, and a token's claims any JSON (PyJWT alone takes `"exp": "9999999999"` for a
    number, and `"exp": true` for 1), so PyJWT checks the signature and the time claims are checked here,
    as JSON numbers.
    """
    if token is None or (isinstance(token, str) and not token.strip()):
        raise AuthError("missing_token", "Authentication required: send `Authorization: Bearer <token>`.")
    if not isinstance(token, str):
        raise AuthError("invalid_token", f"The token must be a string (got {type(token).__name__}).")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("invalid_token", "The token is not a valid JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError("invalid_token", f"The token must be signed with {ALGORITHM}.")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "vendorId"], "verify_exp": False, "verify_nbf": False,
                                     "verify_iat": False})
    except jwt.MissingRequiredClaimError as error:
        raise AuthError("invalid_token", f"The token lacks the `{error.claim}` claim.") from None
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        raise AuthError("invalid_token", "The token is invalid (bad signature or malformed).") from None
    for claim in ("exp", "nbf", "iat"):
        if claim in claims and not _json_number(claims[claim]):
            raise AuthError("invalid_token", f"The token's `{claim}` claim must be a number (seconds since 1970).")
    now = time.time()
    if claims["exp"] <= now - LEEWAY_SECONDS:
        raise AuthError("token_expired", "The token has expired; get a new one.")
    if "nbf" in claims and claims["nbf"] > now + LEEWAY_SECONDS:
        raise AuthError("invalid_token", "The token is not valid yet (its `nbf` is in the future).")
    vendor_id = claims.get("vendorId")
    if not isinstance(vendor_id, str) or not is_vendor_id(vendor_id):
        raise AuthError("invalid_token", "The token's `vendorId` claim is not a valid vendor id.")
    return Caller(vendor_id=vendor_id, expires_at=int(claims["exp"]))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def unauthorized(error: AuthError) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=error.as_detail(),
                         headers={"WWW-Authenticate": f'Bearer error="{error.code}"'})


def forbidden(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, detail={"code": "forbidden", "message": message})


def not_found(message: str = "No such sync run.") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail={"code": "not_found", "message": message})


def current_caller(request: Request, _scheme: Any = Depends(BEARER_SCHEME)) -> Caller:
    """FastAPI dependency: the verified caller of this request."""
    secret: str = request.app.state.jwt_secret
    authorization = request.headers.get("authorization")
    token = bearer_token(authorization)
    if token is None and authorization:
        raise unauthorized(AuthError("invalid_token", "Use the Bearer scheme: `Authorization: Bearer <token>`."))
    try:
        return verify_token(token, secret)
    except AuthError as error:
        raise unauthorized(error) from None


def current_vendor(caller: Caller = Depends(current_caller)) -> str:
    """FastAPI dependency: the caller's vendor id (the only vendor it may touch)."""
    return caller.vendor_id
