"""Verifying tokens never imports ``ecdsa`` (CVE-2024-23342, no fixed release).

python-jose depends on ``ecdsa`` but only its fallback backend imports it; the reasoning is in
the docstring of ``adapters/cognito/token_verifier.py``. A fresh interpreter is the only
honest place to check ``sys.modules``: in the pytest process moto or another test may have
imported ``ecdsa`` already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.tokens import TEST_NOW, shared_key_pair, token_corpus

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    from adapters.cognito import CognitoTokenVerifier, StaticJwksFetcher
    from adapters.in_memory import FixedClock
    from domain.errors import InvalidTokenError
    from tests.support.tokens import (
        TEST_CLIENT_ID, TEST_ISSUER, TEST_NOW, jwks_document, mint_access_token,
        mint_id_token, shared_key_pair, token_corpus,
    )

    key = shared_key_pair("kid-1")

    def verifier(token_use):
        return CognitoTokenVerifier(
            issuer=TEST_ISSUER, app_client_ids=[TEST_CLIENT_ID],
            jwks_fetcher=StaticJwksFetcher(jwks_document(key)), clock=FixedClock(TEST_NOW),
            token_use=token_use,
        )

    accepted = [
        verifier("access").verify(mint_access_token(key, now=TEST_NOW)).token_use,
        verifier("id").verify(mint_id_token(key, now=TEST_NOW)).token_use,
    ]
    rejected = {}
    for case in token_corpus(key, now=TEST_NOW):
        try:
            verifier("access").verify(case.token)
        except InvalidTokenError as error:
            rejected[case.name] = error.reason
    loaded = [
        name for name in ("ecdsa", "jose.backends.ecdsa_backend", "jose.backends.rsa_backend",
                          "rsa", "jose.jwe", "jose.jwt")
        if name in sys.modules
    ]
    print(json.dumps({"accepted": accepted, "rejected": rejected, "loaded": loaded,
                      "cryptography_backend": "jose.backends.cryptography_backend" in sys.modules}))
    """
)


def test_given_a_fresh_interpreter_when_the_whole_corpus_is_verified_then_ecdsa_is_never_imported() -> (
    None
):
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    expected_reasons = {
        case.name: case.reason for case in token_corpus(shared_key_pair("kid-1"), now=TEST_NOW)
    }

    assert report["accepted"] == ["access", "id"]
    assert report["rejected"] == expected_reasons  # every corpus case ran and was rejected
    assert report["cryptography_backend"] is True
    assert report["loaded"] == []  # no ecdsa, no pure-Python RSA fallback, no JWE/JWT code
