"""Who may call the node over HTTP: authentication (http.auth) and CORS (http.cors_origins).

Authentication is HTTP Basic (RFC 7617) or Bearer tokens (RFC 6750), checked by a small ASGI
middleware in front of /dicomweb (PS3.18 8.10 leaves the mechanism to the site), /api and
/metrics. Open without credentials: `GET /api/health` (load balancers), CORS preflights (a
browser never sends credentials with them) and everything else, i.e. the static viewer
(http.viewer), which holds no data of its own: it reads /dicomweb, which is protected.

Secrets are never kept in clear: the config holds their SHA-256, or names an environment
variable read once at start and hashed. A presented secret is hashed and compared with
`hmac.compare_digest` against every configured one. A refusal is an RFC 9457 problem (401)
with a `WWW-Authenticate` challenge; it is logged with the client, method, path and reason,
never with the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from dicom_node.config.models import (
    BasicAuthConfig,
    BearerAuthConfig,
    HttpConfig,
    TokenConfig,
    UserConfig,
)
from dicom_node.http.problems import problem_response

__all__ = [
    "CORS_EXPOSED_HEADERS",
    "PROTECTED_PREFIXES",
    "AuthMiddleware",
    "Credential",
    "MissingSecretError",
    "install_security",
    "is_protected",
]

logger = logging.getLogger(__name__)

PROTECTED_PREFIXES: Final = ("/api", "/dicomweb", "/metrics")
_OPEN: Final = frozenset({("GET", "/api/health"), ("HEAD", "/api/health")})

# Response headers a DICOMweb client in a browser must be able to read (PS3.18 8.4, 8.7:
# where a stored resource is, warnings on partial results; the auth challenge).
CORS_EXPOSED_HEADERS: Final = (
    "Content-Location",
    "Content-Disposition",
    "Location",
    "Warning",
    "WWW-Authenticate",
    "Link",
    "ETag",
    "Last-Modified",
)
_CORS_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")


class MissingSecretError(RuntimeError):
    """An environment variable named by http.auth is not set (config validation reports it
    first; this guards a config built in code)."""


@dataclass(frozen=True)
class Credential:
    """A user (basic) or token (bearer): its name and the SHA-256 of its secret."""

    name: str
    digest: bytes


def _sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _credential(name: str, secret: UserConfig | TokenConfig) -> Credential:
    if secret.sha256 is not None:
        return Credential(name, bytes.fromhex(secret.sha256))
    assert secret.env is not None
    value = os.environ.get(secret.env)
    if not value:
        raise MissingSecretError(f"environment variable {secret.env} (for {name!r}) is not set")
    return Credential(name, _sha256(value))


def is_protected(method: str, path: str) -> bool:
    if (method, path) in _OPEN:
        return False
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PROTECTED_PREFIXES)


def _is_preflight(method: str, headers: Headers) -> bool:
    return (
        method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
    )


class AuthMiddleware:
    """Basic or Bearer authentication in front of the protected paths (pure ASGI, so STOW-RS
    bodies stream through untouched)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        scheme: str,
        credentials: Sequence[Credential],
        realm: str = "dicom-node",
    ) -> None:
        if scheme not in ("Basic", "Bearer"):
            raise ValueError(f"unknown authentication scheme {scheme!r}")
        self._app = app
        self._scheme = scheme
        self._credentials = tuple(credentials)
        self._realm = realm.replace('"', "'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = Headers(scope=scope)
        if not is_protected(method, path) or _is_preflight(method, headers):
            await self._app(scope, receive, send)
            return
        principal, failure = self._authenticate(headers.get("authorization"))
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
            await self._app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        if failure == "no credentials":
            logger.info(
                "HTTP authentication required: %s %s from %s sent no credentials",
                method,
                path,
                client[0],
            )
        else:
            logger.warning(
                "HTTP authentication failed: %s %s from %s: %s", method, path, client[0], failure
            )
        response = problem_response(
            401,
            "Unauthorized",
            f"{self._scheme} credentials are required"
            if failure == "no credentials"
            else "the credentials were not accepted",
        )
        challenge = f'{self._scheme} realm="{self._realm}"'
        if self._scheme == "Basic":
            challenge += ', charset="UTF-8"'
        elif failure != "no credentials":
            challenge += ', error="invalid_token"'  # RFC 6750 3.1
        response.headers["WWW-Authenticate"] = challenge
        await response(scope, receive, send)

    def _authenticate(self, header: str | None) -> tuple[str | None, str]:
        """(principal, "") when accepted, else (None, why) naming no secret."""
        if not header:
            return None, "no credentials"
        scheme, _, value = header.partition(" ")
        if scheme.lower() != self._scheme.lower():
            return None, f"{scheme or 'empty'} scheme where {self._scheme} is expected"
        value = value.strip()
        if self._scheme == "Bearer":
            found = self._match(None, value)
            return (found, "") if found else (None, "unknown token")
        try:
            username, colon, password = (
                base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return None, "malformed Basic credentials"
        if not colon:
            return None, "malformed Basic credentials"
        found = self._match(username, password)
        return (found, "") if found else (None, f"unknown user or wrong password ({username!r})")

    def _match(self, username: str | None, secret: str) -> str | None:
        """Compare with every credential (no early exit: timing tells nothing)."""
        presented_name = _sha256(username or "")
        presented = _sha256(secret)
        found: str | None = None
        for credential in self._credentials:
            name_ok = username is None or hmac.compare_digest(
                presented_name, _sha256(credential.name)
            )
            secret_ok = hmac.compare_digest(presented, credential.digest)
            if name_ok and secret_ok and found is None:
                found = credential.name
        return found


def install_security(app: FastAPI, config: HttpConfig) -> None:
    """Add authentication (http.auth) and CORS (http.cors_origins) to the application.

    CORS is the outer layer: a preflight is answered before authentication, and a 401 carries
    the CORS headers so that the browser lets the client read it."""
    auth = config.auth
    if isinstance(auth, BasicAuthConfig):
        app.add_middleware(
            AuthMiddleware,
            scheme="Basic",
            credentials=[_credential(user.username, user) for user in auth.users],
            realm=auth.realm,
        )
    elif isinstance(auth, BearerAuthConfig):
        app.add_middleware(
            AuthMiddleware,
            scheme="Bearer",
            credentials=[_credential(token.name, token) for token in auth.tokens],
        )
    if config.cors_origins:
        any_origin = "*" in config.cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"] if any_origin else list(config.cors_origins),
            allow_methods=list(_CORS_METHODS),
            allow_headers=["*"],
            expose_headers=list(CORS_EXPOSED_HEADERS),
            # The browser's own credentials (a cached Basic login) only for named origins.
            allow_credentials=not any_origin,
            max_age=600,
        )
