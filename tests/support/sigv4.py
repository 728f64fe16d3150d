"""Raw HTTP requests signed with botocore's own SigV4 signer, for what boto3's clients cannot send
(a stage-less path, a malformed id, a request signed at a fixed time)."""

from __future__ import annotations

import datetime
import urllib.error
import urllib.request
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_request(
    url: str,
    method: str = "GET",
    data: bytes | None = None,
    *,
    access_key_id: str = "test",
    secret_access_key: str = "test",
    region: str = "us-east-1",
    service: str = "execute-api",
    signed_at: datetime.datetime | None = None,
    signed: bool = True,
) -> tuple[int, dict[str, str], bytes]:
    """Send one request, SigV4-signed unless ``signed`` is false; ``(status, headers, body)``.

    ``signed_at`` (UTC) signs as if at that moment (botocore reads the clock once, through
    ``botocore.auth.get_current_datetime``).
    """
    headers: dict[str, str] = {}
    if signed:
        request = AWSRequest(method=method, url=url, data=data or b"")
        signer = SigV4Auth(Credentials(access_key_id, secret_access_key), service, region)
        if signed_at is None:
            signer.add_auth(request)
        else:
            moment = signed_at.astimezone(datetime.UTC).replace(tzinfo=None)
            with mock.patch("botocore.auth.get_current_datetime", return_value=moment):
                signer.add_auth(request)
        headers = {name: str(value) for name, value in request.headers.items()}
    http = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(http, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
