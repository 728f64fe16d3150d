"""``timeline-ws push``: invoke the ``push`` function, print its JSON result.

Local by default: the gateway ``timeline-ws serve`` runs at ``http://127.0.0.1:8080`` (or
``--endpoint-url``) emulates Lambda's Invoke API. For it the CLI signs as ``serve`` accepts by
default, whatever AWS settings the environment holds: access key ``test``, secret ``test``,
and the region ``serve`` resolves from the same environment
(:func:`~entrypoints.local_gateway.signing.gateway_region`); profiles are not read;
``--credentials`` and ``--region`` override. With ``--function-name`` and no
``--endpoint-url`` it invokes the deployed function on AWS with boto3's usual credential chain
and region (``AWS_PROFILE``, ``AWS_REGION``…; ``--region`` overrides).

MESSAGE ``-`` reads the message from stdin (UTF-8, as is), for messages longer than one
command-line argument may be (131,071 bytes on Linux).

Exit status: 0 when every connection got the message (a user with no live connection is not a
failure: ``delivered`` is 0); 1 when a delivery failed, a user's connections could not be
looked up, or the call failed; 2 on bad input (the function's refusal, or bad arguments),
with one line on stderr. When stdout is closed early (``| head``) the CLI stops writing
quietly and keeps that status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Final

from entrypoints.cli_options import add_options, option
from entrypoints.local_gateway.signing import (
    DEFAULT_CREDENTIALS,
    gateway_region,
    parse_credentials,
)

LOCAL_ENDPOINT: Final = "http://127.0.0.1:8080"
LOCAL_FUNCTION: Final = "push"
STDIN: Final = "-"

PUSH_DESCRIPTION: Final = (
    "Push MESSAGE (sent as is, as the frame's text) to every live connection of each --user, "
    "through the push function; print its JSON result (delivered, gone, failed per user)."
)
PUSH_EPILOG: Final = (
    "Exit status: 0 when every live connection got the message, including when a user has "
    "none (then delivered is 0: an offline user, or a mistyped id, is not an error); 1 when a "
    "delivery failed, a user was unavailable or the call failed; 2 on bad input. "
    "A local gateway is signed for as serve accepts by default (test:test, the region of "
    "AWS_REGION / AWS_DEFAULT_REGION, else us-east-1), whatever AWS credentials or profile "
    "the environment holds."
)

PUSH_OPTIONS: Final = (
    option(
        "message",
        metavar="MESSAGE",
        help="the frame's text, e.g. '{\"post\": 42}'; - reads it from stdin (UTF-8, as is)",
    ),
    option(
        "--user",
        dest="users",
        action="append",
        required=True,
        metavar="USER_ID",
        help="a user to push to (repeat for several; at most 100)",
    ),
    option(
        "--endpoint-url",
        default=None,
        metavar="URL",
        help=f"the Lambda endpoint (default {LOCAL_ENDPOINT}, the local gateway, unless "
        "--function-name is given: then AWS's)",
    ),
    option(
        "--function-name",
        default=None,
        metavar="NAME",
        help=f"the push function's name or ARN (default {LOCAL_FUNCTION}, the local gateway's; "
        "deployed: timeline-ws-<environment>-push)",
    ),
    option(
        "--region",
        default=None,
        metavar="REGION",
        help="the region to sign for (default: a local gateway's, as serve resolves it: "
        "AWS_REGION, AWS_DEFAULT_REGION, us-east-1; deployed: boto3's)",
    ),
    option(
        "--credentials",
        type=parse_credentials,
        default=None,
        metavar="KEY:SECRET",
        help="sign for a local gateway with these, as serve's --credentials "
        "(default test:test); refused with --function-name alone (AWS: boto3's credential chain)",
    ),
)


def add_push_command(commands: Any) -> None:
    """Register ``push`` on an ``argparse`` sub-parsers object."""
    parser = commands.add_parser(
        "push",
        help="push a message to users' connections",
        description=PUSH_DESCRIPTION,
        epilog=PUSH_EPILOG,
    )
    add_options(parser, PUSH_OPTIONS)
    parser.set_defaults(handler=run_push)


def lambda_client(args: argparse.Namespace) -> Any:
    """The boto3 Lambda client ``args`` ask for; one attempt per call (a retried push would
    be delivered twice) and a read timeout above the function's.

    A local gateway (``--endpoint-url``, or no ``--function-name``) is signed for as ``serve``
    accepts: ``--credentials`` (default ``test``/``test``) and ``--region`` (default
    :func:`~entrypoints.local_gateway.signing.gateway_region`), from a session that reads no
    profile, so no AWS setting of the environment gets in the way. Otherwise boto3's usual
    credential chain and region.
    """
    import boto3.session
    import botocore.session
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=70)
    if args.endpoint_url is None and args.function_name is not None:
        return boto3.session.Session().client("lambda", region_name=args.region, config=config)
    # No AWS_PROFILE: a profile named in the environment neither applies nor fails here
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    key, secret = args.credentials or DEFAULT_CREDENTIALS
    return boto3.session.Session(botocore_session=core).client(
        "lambda",
        endpoint_url=args.endpoint_url or LOCAL_ENDPOINT,
        region_name=args.region or gateway_region(os.environ),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=None,
        config=config,
    )


def read_message(text: str) -> str:
    """MESSAGE itself, or stdin's whole text (UTF-8, as is) for ``-``.

    Raises:
        UnicodeDecodeError: stdin is not UTF-8.
    """
    if text != STDIN:
        return text
    return sys.stdin.buffer.read().decode("utf-8")


def run_push(args: argparse.Namespace) -> int:
    """Invoke the function and report; the exit status of the module docstring."""
    from botocore.exceptions import BotoCoreError, ClientError

    if args.credentials and args.endpoint_url is None and args.function_name is not None:
        return _fail(
            "--credentials is for a local gateway (add --endpoint-url); on AWS the function "
            "is invoked with boto3's credential chain (AWS_PROFILE, ...)",
            2,
        )
    try:
        message = read_message(args.message)
    except UnicodeDecodeError as error:
        return _fail(f"stdin is not UTF-8 text (byte {error.start})", 2)
    event = {"userIds": args.users, "message": message}
    try:
        response = lambda_client(args).invoke(
            FunctionName=args.function_name or LOCAL_FUNCTION, Payload=json.dumps(event)
        )
        result = json.loads(response["Payload"].read())
    except ClientError as error:
        details = error.response.get("Error", {})
        return _fail(f"{details.get('Code')}: {details.get('Message')}", 1)
    except BotoCoreError as error:
        return _fail(str(error), 1)
    if response.get("FunctionError"):
        return _fail(f"the function failed: {result.get('errorMessage')}", 1)
    if "error" in result:
        return _fail(f"{result['error']}: {result['message']}", 2)
    status = 1 if result["failed"] or result.get("unavailable") else 0
    _print_quietly(json.dumps(result, indent=2))
    return status


def _print_quietly(text: str) -> None:
    """Print ``text`` on stdout; a reader that went away (``| head``) ends it silently, as
    Unix tools do (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python would flush stdout again at exit and report the same error: point it nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(line: str, status: int) -> int:
    print(f"timeline-ws push: {line}", file=sys.stderr)
    return status
