"""A development stand-in for an Amazon Cognito user pool: one RSA key, its JWKS, and access tokens.

The tokens are shaped like Cognito's access tokens
(https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html):
header ``{"kid", "alg": "RS256"}``; claims ``sub``, ``iss``, ``client_id``, ``origin_jti``,
``event_id``, ``token_use`` (``access``), ``scope``, ``auth_time``, ``exp``, ``iat``, ``jti``,
``username``, ``version``. The issuer is derived by the production formula
(``adapters.cognito.cognito_issuer``: ``https://cognito-idp.{region}.amazonaws.com/{userPoolId}``)
from the pseudo-region :data:`DEV_REGION` and pool :data:`DEV_USER_POOL_ID`, so the real
``CognitoTokenVerifier`` verifies them; only the JWKS location is overridden (``serve`` publishes it).

The private key lives in a state folder (``$TIMELINE_WS_STATE_DIR``, else
``$XDG_STATE_HOME/timeline-ws``, else ``~/.local/state/timeline-ws``), created once with mode
0700 and the key file with mode 0600, so ``timeline-ws token`` in another terminal signs with
the key a running ``serve`` publishes. It is a development key: never use it in AWS.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.cognito import cognito_issuer

DEV_REGION: Final = "local"
DEV_USER_POOL_ID: Final = "local_timelinews"
DEV_APP_CLIENT_ID: Final = "timelinewslocalclient00000"
"""26 lowercase alphanumerics, the form of a Cognito app client id."""
DEV_SUB: Final = "7d0c5e2a-9f6b-4c1d-8e3a-2b4f6a8c0d1e"
"""The ``sub`` of the ready token ``serve`` prints (any UUID-shaped string works)."""
DEV_SCOPE: Final = "aws.cognito.signin.user.admin"

DEFAULT_EXPIRES_IN_SECONDS: Final = 3600
"""Cognito's default access token validity: 1 hour."""
MAX_EXPIRES_IN_SECONDS: Final = 86_400
"""Cognito's maximum access token validity: 1 day."""

KEY_FILE_NAME: Final = "dev-cognito-key.pem"
STATE_DIR_VARIABLE: Final = "TIMELINE_WS_STATE_DIR"


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where the development key lives: ``$TIMELINE_WS_STATE_DIR``, else the XDG state folder."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(STATE_DIR_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "timeline-ws"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


@attrs.frozen(slots=True)
class DevSigningKey:
    """An RSA-2048 private key with its ``kid`` (the RFC 7638 JWK thumbprint of the public key)."""

    private_key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> DevSigningKey:
        """Wrap a key, computing its kid."""
        numbers = private_key.public_key().public_numbers()
        canonical = json.dumps(
            {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
            separators=(",", ":"),
            sort_keys=True,
        )
        kid = _b64url(hashlib.sha256(canonical.encode("ascii")).digest())
        return cls(private_key, kid)

    def jwk(self) -> dict[str, str]:
        """The public key as a Cognito-style JWK: ``alg``, ``e``, ``kid``, ``kty``, ``n``, ``use``."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "alg": "RS256",
            "e": _b64url_uint(numbers.e),
            "kid": self.kid,
            "kty": "RSA",
            "n": _b64url_uint(numbers.n),
            "use": "sig",
        }

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document ``{"keys": [<jwk>]}`` as Cognito publishes it."""
        return {"keys": [self.jwk()]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        """A compact RS256 JWS of ``claims`` with the header ``{"kid": …, "alg": "RS256"}``."""
        header = _b64url(
            json.dumps({"kid": self.kid, "alg": "RS256"}, separators=(",", ":")).encode()
        )
        payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
        signing_input = f"{header}.{payload}".encode("ascii")
        signature = self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64url(signature)}"


class DevKeyError(ValueError):
    """The state folder or the development key in it cannot be used; the message says which
    path and why, in one line fit for a terminal."""


def load_or_create_key(state_dir: Path) -> DevSigningKey:
    """Load the key from ``state_dir``, creating the folder (0700) and key (0600) on first use.

    Two processes starting at once agree on one key: the key is written to a temporary file
    and hard-linked into place, which fails if another process got there first.

    Raises:
        DevKeyError: the folder cannot be created, the key cannot be read or written, or the
            key file is not an unencrypted PEM RSA private key.
    """
    try:
        return _load_or_create_key(state_dir)
    except OSError as error:
        reason = (
            "exists and is not a folder"
            if isinstance(error, FileExistsError)
            else error.strerror or type(error).__name__
        )
        where = error.filename if error.filename is not None else state_dir
        raise DevKeyError(
            f"cannot use the state folder {state_dir} ({where}: {reason}); "
            f"set --state-dir or ${STATE_DIR_VARIABLE} to a writable folder"
        ) from error
    except ValueError as error:
        raise DevKeyError(
            f"{state_dir / KEY_FILE_NAME} is not an unencrypted PEM RSA private key; "
            "delete it and a new development key is created"
        ) from error


def _load_or_create_key(state_dir: Path) -> DevSigningKey:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / KEY_FILE_NAME
    if not path.exists():
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor, temporary = tempfile.mkstemp(dir=state_dir, prefix=".key-")  # created 0600
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return DevSigningKey.from_private_key(loaded)


@attrs.frozen(slots=True, kw_only=True)
class DevCognito:
    """The stand-in user pool: its key, region, pool id and app client id."""

    key: DevSigningKey
    region: str = DEV_REGION
    user_pool_id: str = DEV_USER_POOL_ID
    app_client_id: str = DEV_APP_CLIENT_ID

    @property
    def issuer(self) -> str:
        """``https://cognito-idp.local.amazonaws.com/local_timelinews`` by default."""
        return cognito_issuer(self.region, self.user_pool_id)

    @property
    def jwks_path(self) -> str:
        """The path the JWKS is served at: ``/{userPoolId}/.well-known/jwks.json``."""
        return f"/{self.user_pool_id}/.well-known/jwks.json"

    def access_token_claims(
        self,
        *,
        sub: str,
        expires_in_seconds: int = DEFAULT_EXPIRES_IN_SECONDS,
        now: int | None = None,
    ) -> dict[str, Any]:
        """The claims of a Cognito access token for ``sub``; times are epoch seconds."""
        issued_at = int(time.time()) if now is None else now
        origin_jti = str(uuid.uuid4())
        return {
            "sub": sub,
            "iss": self.issuer,
            "client_id": self.app_client_id,
            "origin_jti": origin_jti,
            "event_id": str(uuid.uuid4()),
            "token_use": "access",
            "scope": DEV_SCOPE,
            "auth_time": issued_at,
            "exp": issued_at + expires_in_seconds,
            "iat": issued_at,
            "jti": str(uuid.uuid4()),
            "username": sub,
            "version": 2,
        }

    def access_token(
        self, *, sub: str, expires_in_seconds: int = DEFAULT_EXPIRES_IN_SECONDS
    ) -> str:
        """A signed access token for ``sub`` valid ``expires_in_seconds`` from now.

        Raises:
            ValueError: an empty ``sub``, or ``expires_in_seconds`` outside 1..86400.
        """
        if not sub:
            raise ValueError("sub must not be empty")
        if not 1 <= expires_in_seconds <= MAX_EXPIRES_IN_SECONDS:
            raise ValueError(f"expires_in_seconds must be within 1..{MAX_EXPIRES_IN_SECONDS}")
        return self.key.sign(
            self.access_token_claims(sub=sub, expires_in_seconds=expires_in_seconds)
        )

    def environment(self, jwks_url: str) -> dict[str, str]:
        """The Cognito variables that point the handlers' verifier at this stand-in."""
        return {
            "COGNITO_REGION": self.region,
            "COGNITO_USER_POOL_ID": self.user_pool_id,
            "COGNITO_APP_CLIENT_IDS": self.app_client_id,
            "COGNITO_TOKEN_USE": "access",
            "COGNITO_JWKS_URL": jwks_url,
        }


def load_dev_cognito(state_dir: Path | None = None) -> DevCognito:
    """The stand-in with the key from ``state_dir`` (default :func:`default_state_dir`).

    Raises:
        DevKeyError: see :func:`load_or_create_key`.
    """
    return DevCognito(key=load_or_create_key(state_dir or default_state_dir()))
