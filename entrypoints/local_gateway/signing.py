"""What the local gateway's SigV4 checks expect, in one place for ``serve`` and its callers.

``timeline-ws serve`` accepts requests signed for :func:`gateway_region` with the credentials
of its ``--credentials`` option (:func:`parse_credentials`, default :data:`DEFAULT_CREDENTIALS`);
``timeline-ws push`` signs for a local gateway with the same, so both agree in any
environment. Light on purpose: no aiohttp, no boto3.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Final

DEFAULT_CREDENTIALS: Final = ("test", "test")
"""(access key id, secret access key): the usual local AWS stand-ins (moto, LocalStack)."""

DEFAULT_REGION: Final = "us-east-1"


def gateway_region(environ: Mapping[str, str]) -> str:
    """The region the local gateway signs for: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``,
    else ``us-east-1`` (empty values count as unset). Profiles are not read."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def parse_credentials(text: str) -> tuple[str, str]:
    """``KEY:SECRET`` -> (key, secret), split at the first ``:``.

    Raises:
        argparse.ArgumentTypeError: a part is missing or empty (the message never quotes
            the text: it holds a secret).
    """
    key, separator, secret = text.partition(":")
    if not separator or not key or not secret:
        raise argparse.ArgumentTypeError("expected KEY:SECRET, both non-empty")
    return key, secret
