"""The local gateway's pure limits: the frame guard and fragmenter, token buckets, SigV4 checks."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from entrypoints.local_gateway.emulator.frames import FrameSizeGuard, fragments
from entrypoints.local_gateway.emulator.sigv4 import (
    DEFAULT_CREDENTIALS,
    AwsCredentials,
    SigV4Error,
    SigV4Verifier,
)
from entrypoints.local_gateway.emulator.throttling import TokenBucket
from tests.support.raw_websocket import masked_frame


class FakeParser:
    def __init__(self) -> None:
        self.fed = bytearray()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed += data
        return False, b""

    def feed_eof(self) -> None:
        pass


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000, 1 << 20])
def test_the_guard_passes_frames_within_the_limit_whatever_the_chunking(chunk: int) -> None:
    # Given frames split anywhere (headers too), the parser gets them byte for byte
    frames = (
        masked_frame(0x1, b"a" * 100, fin=False)
        + masked_frame(0x0, b"b" * 300)
        + masked_frame(0x9, b"ping")
        + masked_frame(0x1, b"c" * 1024)
    )
    parser, tripped = FakeParser(), []
    guard = FrameSizeGuard(parser, 1024, lambda: tripped.append(True))
    for start in range(0, len(frames), chunk):
        guard.feed_data(frames[start : start + chunk])
    assert bytes(parser.fed) == frames
    assert tripped == []


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_an_oversized_frame_is_dropped_and_only_control_frames_follow(chunk: int) -> None:
    before = masked_frame(0x1, b"ok")
    oversized = masked_frame(0x1, b"x" * 1025)
    after = masked_frame(0x1, b"late")  # a data frame after the close began: not read
    close = masked_frame(0x8, struct.pack("!H", 1000))
    data = before + oversized + after + close
    parser, tripped = FakeParser(), []
    guard = FrameSizeGuard(parser, 1024, lambda: tripped.append(True))
    for start in range(0, len(data), chunk):
        guard.feed_data(data[start : start + chunk])
    assert bytes(parser.fed) == before + close
    assert tripped == [True]  # once


def test_fragments_are_at_most_the_limit_and_only_the_last_has_fin() -> None:
    payload = bytes(range(256)) * 513  # 131,328 bytes
    wire = fragments(0x1, payload, 32 * 1024)
    frames: list[tuple[int, bool, bytes]] = []
    position = 0
    while position < len(wire):
        first, second = wire[position], wire[position + 1]
        length, position = second & 0x7F, position + 2
        if length == 126:
            (length,), position = struct.unpack_from("!H", wire, position), position + 2
        elif length == 127:
            (length,), position = struct.unpack_from("!Q", wire, position), position + 8
        frames.append((first & 0x0F, bool(first & 0x80), wire[position : position + length]))
        position += length
    assert [(opcode, fin) for opcode, fin, _ in frames] == [(0x1, False)] + [(0x0, False)] * 3 + [
        (0x0, True)
    ]
    assert all(len(part) <= 32 * 1024 for _, _, part in frames)
    assert b"".join(part for _, _, part in frames) == payload
    assert fragments(0x2, b"small", 32 * 1024) == b"\x82\x05small"


def test_a_token_bucket_starts_full_and_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=2.0, capacity=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60.0  # never more than the capacity
    assert sum(bucket.take() for _ in range(10)) == 3
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)


NOW = datetime.datetime(2026, 1, 3, 12, 0, 0, tzinfo=datetime.UTC)


def signed(
    *,
    key: str = "test",
    secret: str = "test",
    region: str = "us-east-1",
    at: datetime.datetime = NOW,
    headers: dict[str, str] | None = None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    url = "http://127.0.0.1:8080/local/@connections/L0SM9cOFvHcCIhw%3D"
    request = AWSRequest(method="POST", url=url, data=b"hi", headers=headers or {})
    signer = SigV4Auth(Credentials(key, secret), "execute-api", region)
    request.context["timestamp"] = at.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    names = signer.signed_headers(signer.headers_to_sign(request))
    request.headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    received = [(k, str(v)) for k, v in request.headers.items()]
    return url, [*received, ("Host", "127.0.0.1:8080")], b"hi"


def verify(url: str, headers: list[tuple[str, str]], body: bytes, **kwargs: Any) -> str:
    verifier = SigV4Verifier(
        service=kwargs.get("service", "execute-api"),
        region="us-east-1",
        credentials=[DEFAULT_CREDENTIALS, AwsCredentials("other", "s3cret")],
        clock=lambda: NOW.timestamp() + kwargs.get("skew", 0.0),
    )
    return verifier.verify(method="POST", url=url, headers=headers, body=body)


def refusal(
    url: str, headers: list[tuple[str, str]], body: bytes, **kwargs: Any
) -> tuple[str, str]:
    with pytest.raises(SigV4Error) as refused:
        verify(url, headers, body, **kwargs)
    return refused.value.refusal.error_type, refused.value.refusal.message


def test_sigv4_accepts_each_known_key_and_names_it() -> None:
    assert verify(*signed()) == "test"
    assert verify(*signed(key="other", secret="s3cret")) == "other"
    assert verify(*signed(), skew=299.0) == "test"  # within 5 minutes


def test_sigv4_refusals_are_aws_errors() -> None:
    url, headers, body = signed()
    assert refusal(url, headers, b"changed")[0] == "InvalidSignatureException"
    assert refusal(*signed(secret="wrong")) == (
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. "
        "Consult the service documentation for details.",
    )
    assert refusal(*signed(key="nobody"))[0] == "UnrecognizedClientException"
    assert "not 'eu-west-1'" in refusal(*signed(region="eu-west-1"))[1]
    assert refusal(*signed(), service="lambda")[1].startswith(
        "Credential should be scoped to correct service: 'lambda'"
    )
    assert refusal(*signed(), skew=301.0)[1] == (
        "Signature expired: 20260103T120000Z is now earlier than 20260103T120001Z "
        "(20260103T120501Z - 5 min.)"
    )
    assert refusal(*signed(), skew=-301.0)[1].startswith("Signature not yet current:")
    with_token = [*headers, ("X-Amz-Security-Token", "abc")]
    assert refusal(url, with_token, body)[0] == "UnrecognizedClientException"
    unsigned = [(k, v) for k, v in headers if k.lower() != "authorization"]
    assert refusal(url, unsigned, body) == ("ForbiddenException", "Missing Authentication Token")
    garbage = [*unsigned, ("Authorization", "AWS4-HMAC-SHA256 Credential=test/x")]
    assert refusal(url, garbage, body)[0] == "IncompleteSignatureException"


def test_credentials_parse_key_colon_secret_and_never_show_the_secret() -> None:
    credentials = AwsCredentials.parse("AKID:se:cret")
    assert (credentials.access_key_id, credentials.secret_access_key) == ("AKID", "se:cret")
    assert "se:cret" not in repr(credentials)
    for bad in ("nocolon", ":secret", "key:", "a/b:c"):
        with pytest.raises(ValueError) as refused:
            AwsCredentials.parse(bad)
        assert "secret" not in str(refused.value) or bad not in str(refused.value)
