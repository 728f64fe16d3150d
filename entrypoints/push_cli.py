"""``timeline-ws push``: invoke the ``push`` function, print its JSON result.

Local by default: the gateway ``timeline-ws serve`` runs at ``http://127.0.0.1:8080`` emulates
Lambda's Invoke API (signed with the environment's AWS credentials, or the gateway's default
``test``/``test``). With ``--function-name`` and no ``--endpoint-url`` it invokes the deployed
function on AWS with boto3's usual settings (``AWS_PROFILE``, ``AWS_REGION``…).

Exit status: 0 when every connection got the message; 1 when a delivery failed, a user's
connections could not be looked up, or the call failed; 2 on bad input (the function's
refusal, or bad arguments), with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from entrypoints.cli_options import add_options, option

LOCAL_ENDPOINT: Final = "http://127.0.0.1:8080"
LOCAL_FUNCTION: Final = "push"
LOCAL_REGION: Final = "us-east-1"
LOCAL_CREDENTIALS: Final = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
"""What ``serve`` accepts by default (its ``--region`` and ``--credentials``)."""

PUSH_DESCRIPTION: Final = (
    "Push MESSAGE (sent as is, as the frame's text) to every live connection of each --user, "
    "through the push function; print its JSON result (delivered, gone, failed per user)."
)

PUSH_OPTIONS: Final = (
    option("message", metavar="MESSAGE", help="the frame's text, e.g. '{\"post\": 42}'"),
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
    option("--region", default=None, metavar="REGION", help="the region to sign for"),
)


def add_push_command(commands: Any) -> None:
    """Register ``push`` on an ``argparse`` sub-parsers object."""
    parser = commands.add_parser(
        "push", help="push a message to users' connections", description=PUSH_DESCRIPTION
    )
    add_options(parser, PUSH_OPTIONS)
    parser.set_defaults(handler=run_push)


def lambda_client(args: argparse.Namespace) -> Any:
    """The boto3 Lambda client ``args`` ask for; one attempt per call (a retried push would
    be delivered twice) and a read timeout above the function's."""
    import boto3.session
    from botocore.config import Config

    local = args.endpoint_url is not None or args.function_name is None
    session = boto3.session.Session()
    stand_in = local and session.get_credentials() is None
    credentials = LOCAL_CREDENTIALS if stand_in else {}
    return session.client(
        "lambda",
        endpoint_url=(args.endpoint_url or LOCAL_ENDPOINT) if local else None,
        region_name=args.region or session.region_name or LOCAL_REGION,
        aws_access_key_id=credentials.get("aws_access_key_id"),
        aws_secret_access_key=credentials.get("aws_secret_access_key"),
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=70),
    )


def run_push(args: argparse.Namespace) -> int:
    """Invoke the function and report; the exit status of the module docstring."""
    from botocore.exceptions import BotoCoreError, ClientError

    event = {"userIds": args.users, "message": args.message}
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
    print(json.dumps(result, indent=2))
    return 1 if result["failed"] or result.get("unavailable") else 0


def _fail(line: str, status: int) -> int:
    print(f"timeline-ws push: {line}", file=sys.stderr)
    return status
