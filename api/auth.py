"""Bearer tokens: HS256 JWTs whose `vendorId` claim is the only vendor a caller can touch.

The algorithm is pinned (a token signed otherwise, `alg: none` included, is
invalid), `exp` and `vendorId` are required. Errors are 401 with
`{"detail": {"code": "missing_token" | "invalid_token" | "token_expired", "message"}}`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import jwt
from fastapi import Depends, HTTPException, Request, status

ALGORITHM = "HS256"
VENDOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
LEEWAY_SECONDS = 5


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


def issue_token(vendor_id: str, secret: str, ttl_seconds: int = 8 * 3600) -> str:
    """A signed token for one vendor (the CLI's `ledger-sync token --vendor V`)."""
    if not VENDOR_ID.match(vendor_id or ""):
        raise ValueError(f"not a valid vendor id: {vendor_id!r}")
    now = int(time.time())
    return jwt.encode({"vendorId": vendor_id, "iat": now, "exp": now + int(ttl_seconds), "sub": vendor_id},
                      secret, algorithm=ALGORITHM)


def verify_token(token: str | None, secret: str) -> Caller:
    """The caller a token stands for, or `AuthError` saying why not."""
    if not token or not token.strip():
        raise AuthError("missing_token", "Authentication required: send `Authorization: Bearer <token>`.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("invalid_token", "The token is not a valid JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise AuthError("invalid_token", f"The token must be signed with {ALGORITHM}.")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "vendorId"], "verify_exp": True})
    except jwt.ExpiredSignatureError:
        raise AuthError("token_expired", "The token has expired; get a new one.") from None
    except jwt.MissingRequiredClaimError as error:
        raise AuthError("invalid_token", f"The token lacks the `{error.claim}` claim.") from None
    except jwt.PyJWTError:
        raise AuthError("invalid_token", "The token is invalid (bad signature or malformed).") from None
    vendor_id = claims.get("vendorId")
    if not isinstance(vendor_id, str) or not VENDOR_ID.match(vendor_id):
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


def current_caller(request: Request) -> Caller:
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
