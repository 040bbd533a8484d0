"""JSON Web Tokens for the tests: HS256 with the standard library, RS256 with
`cryptography` (a key pair made per test run, the public half written as PEM)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time


def b64url(data: bytes | str | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_hs256(claims: dict, secret: str, header: dict | None = None) -> str:
    """A compact JWS: base64url(header).base64url(claims).base64url(HMAC-SHA256)."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def claims_for(sub: str, ttl: float | None = 3600, **extra) -> dict:
    now = int(time.time())
    claims = {"sub": sub, "iat": now}
    if ttl is not None:
        claims["exp"] = int(now + ttl)
    claims.update(extra)
    return claims


def token(sub: str, secret: str, ttl: float | None = 3600, **extra) -> str:
    """An HS256 token for user `sub` (expiring in `ttl` seconds; None: no `exp`)."""
    return sign_hs256(claims_for(sub, ttl, **extra), secret)


def unsigned_token(sub: str) -> str:
    """alg "none": a server must refuse it."""
    now = int(time.time())
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url({'sub': sub, 'iat': now, 'exp': now + 3600})}."


class Rs256Key:
    """An RSA key pair: `pem_public` for `--jwt-public-key`, `token()` signs."""

    def __init__(self, bits: int = 2048):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self._key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        self.pem_public = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict, header: dict | None = None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = header or {"alg": "RS256", "typ": "JWT"}
        signing_input = f"{b64url(header)}.{b64url(claims)}"
        sig = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(sig)}"

    def token(self, sub: str, ttl: float | None = 3600, **extra) -> str:
        return self.sign(claims_for(sub, ttl, **extra))
