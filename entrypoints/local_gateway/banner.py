"""What ``timeline-ws serve`` prints on start, and how it shows URLs without their secrets."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

from entrypoints.local_gateway.dev_cognito import DEV_SUB

if TYPE_CHECKING:
    from entrypoints.local_gateway.wiring import PreparedGateway


def banner(prepared: PreparedGateway, python: str = sys.executable) -> str:
    """What ``serve`` prints on start: URLs, the store, Cognito mode, a ready token, a client command."""
    # Imported here: the CLI imports this module, and must not load aiohttp or botocore.
    from entrypoints.local_gateway.emulator.server import GATEWAY_KEY, INVOKE_API_KEY
    from entrypoints.local_gateway.emulator.sigv4 import DEFAULT_CREDENTIALS

    gateway = prepared.app[GATEWAY_KEY].settings
    management = f"{prepared.base_url}/{gateway.api.stage}"
    key = gateway.credentials[0]
    secret = (
        key.secret_access_key if key == DEFAULT_CREDENTIALS else "the secret given to --credentials"
    )
    lines = [
        "timeline-ws local gateway: API Gateway WebSocket API emulation running the real handlers",
        f"  WebSocket       {prepared.ws_url}?token=<access token>",
        f"  @connections    {management}/@connections/{{connectionId}}"
        f"  (boto3 endpoint_url={management})",
        f"  SigV4           service execute-api, region {gateway.region}, "
        f"access key {key.access_key_id}, secret {secret}",
        f"  Lambda Invoke   {prepared.base_url}/2015-03-31/functions/{{FunctionName}}/invocations"
        f"  (boto3 lambda endpoint_url={prepared.base_url}; SigV4 service lambda)",
        "  Functions       " + ", ".join(prepared.app[INVOKE_API_KEY].names),
        f"  Health          {prepared.base_url}/health",
        "  Store           "
        + (
            f"Redis at {redact_url(prepared.redis_url)}"
            if prepared.redis_url
            else "embedded fakeredis (in-process)"
        ),
    ]
    handler_settings = prepared.container.settings()
    if handler_settings.connections_table:
        lines.append(
            f"  Failover        DynamoDB table {handler_settings.connections_table}"
            f" at {handler_settings.dynamodb_endpoint_url or 'AWS'} (when Redis fails)"
        )
    dev = prepared.dev_cognito
    if dev is None:
        lines.append("  Cognito         the user pool in COGNITO_USER_POOL_ID (real tokens)")
        lines.append(
            f"Connect with:    {shlex.quote(python)} -m websockets '{prepared.ws_url}?token=<token>'"
        )
    else:
        token = dev.access_token(sub=DEV_SUB)
        lines += [
            f"  Cognito         development stand-in, issuer {dev.issuer}",
            f"  Demo page       {prepared.base_url}/  (the browser client against this gateway)",
            f"Ready token (sub {DEV_SUB}, valid 1 h; more: timeline-ws token --sub <id>):",
            f"  {token}",
            'Connect, then type {"action":"ping"}:',
            f"  {shlex.quote(python)} -m websockets '{prepared.ws_url}?token={token}'",
        ]
    lines.append("Ctrl-C stops the gateway (every socket closes with 1001 and $disconnect runs).")
    return "\n".join(lines)


def redact_url(url: str | None) -> str:
    """``url`` with its password masked as ``***``, in the userinfo and in a ``password=``
    query parameter (redis-py reads both); ``<unreadable URL>`` when it cannot be parsed."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url or "")
        password = parts.password
    except ValueError:
        return "<unreadable URL>"
    if password:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in query):
        masked = [(n, "***" if n.lower() == "password" else v) for n, v in query]
        parts = parts._replace(query=urlencode(masked, safe="*"))
    return urlunsplit(parts)
