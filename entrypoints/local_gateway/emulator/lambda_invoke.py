"""Lambda's Invoke API for the functions the local gateway runs, as ``sam local start-lambda`` does.

``POST /2015-03-31/functions/{FunctionName}/invocations`` with the event as the body, so
``boto3.client("lambda", endpoint_url=<gateway URL>).invoke(FunctionName=..., Payload=...)``
works as against AWS (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):

- ``RequestResponse`` (the default ``X-Amz-Invocation-Type``): 200, the handler's return
  value as JSON, ``X-Amz-Executed-Version: $LATEST``. A handler that raises (or outlives the
  timeout) still answers 200, with ``X-Amz-Function-Error: Unhandled`` and the payload
  ``{"errorMessage", "errorType", "stackTrace": []}`` (the stack stays in the gateway's log).
- ``Event``: 202 with an empty body; the handler runs in the background. ``DryRun``: 204.

Refusals, in the order they are checked, with ``x-amzn-ErrorType`` and a JSON body
``{"Type": "User", "message": ...}``, nothing run:

0. A body over 6 MB, whatever the invocation type: 413 ``RequestTooLargeException``, read no
   further. This route reads its body under Lambda's quota, not aiohttp's ``client_max_size``
   (1 MiB), which the other routes keep.
1. SigV4 (:mod:`~entrypoints.local_gateway.emulator.sigv4`, service ``lambda``, the same
   region and credentials as ``@connections``): 403 ``MissingAuthenticationTokenException``
   when unsigned (Lambda's own word for it), else the verifier's refusal.
2. An unknown function, or a qualifier other than ``$LATEST``: 404
   ``ResourceNotFoundException`` ``Function not found: <arn>``. ``FunctionName`` may be the
   name, or its ARN in this region and account.
3. A payload over 256 KB for ``Event``: 413 ``RequestTooLargeException``.
4. A payload that is not JSON: 400 ``InvalidRequestContentException``; an unknown
   invocation type: 400 ``InvalidParameterValueException``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web

from entrypoints.local_gateway.emulator.lambda_context import LOCAL_ACCOUNT_ID, lambda_context
from entrypoints.local_gateway.emulator.request_body import read_body
from entrypoints.local_gateway.emulator.sigv4 import AwsRefusal, SigV4Error, SigV4Verifier

logger = logging.getLogger("timeline_ws.gateway.lambda")

INVOKE_PATH: Final = "/2015-03-31/functions/{name}/invocations"
SIGNING_SERVICE: Final = "lambda"
MAX_SYNC_PAYLOAD_BYTES: Final = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD_BYTES: Final = 256 * 1024
"""Lambda's invocation payload quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)."""

Handler = Callable[[Any, Any], Any]


def _refusal(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _too_large(limit: int) -> web.Response:
    return _refusal(
        413,
        "RequestTooLargeException",
        f"Request must be smaller than {limit} bytes for the Invoke operation",
    )


class LambdaInvokeApi:
    """The Invoke API over some functions: name -> Lambda handler ``(event, context)``.

    Args:
        functions: the functions, by name.
        verifier: checks SigV4 for service ``lambda``.
        executor: where handlers run (the gateway's handler pool).
        timeout_seconds: an invocation longer than this is a ``Sandbox.Timedout`` error.
    """

    def __init__(
        self,
        functions: Mapping[str, Handler],
        *,
        verifier: SigV4Verifier,
        executor: concurrent.futures.Executor,
        timeout_seconds: float = 29.0,
    ) -> None:
        self._functions = dict(functions)
        self._verifier = verifier
        self._executor = executor
        self._timeout_seconds = timeout_seconds
        self._background: set[asyncio.Future[Any]] = set()

    @property
    def names(self) -> list[str]:
        """The function names served, sorted."""
        return sorted(self._functions)

    def arn(self, name: str) -> str:
        """The ARN a function of this name would have here."""
        return f"arn:aws:lambda:{self._verifier.region}:{LOCAL_ACCOUNT_ID}:function:{name}"

    def _resolve(self, requested: str, qualifier: str | None) -> str | None:
        """The served function ``requested`` (a name or an ARN, ``:qualifier`` allowed) names."""
        name = requested
        prefix = f"arn:aws:lambda:{self._verifier.region}:{LOCAL_ACCOUNT_ID}:function:"
        if name.startswith(prefix):
            name = name[len(prefix) :]
        if ":" in name:
            name, qualifier = name.split(":", 1)
        if qualifier not in (None, "$LATEST"):
            return None
        return name if name in self._functions else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One Invoke call; one access line (function, type, status; never the payload)."""
        requested = unquote(request.match_info["name"])
        response = await self._serve(request, requested)
        logger.info(
            "invoke function=%s type=%s status=%d%s",
            requested if requested in self._functions else "<unknown>",
            request.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
            response.status,
            f" error={response.headers['X-Amz-Function-Error']}"
            if "X-Amz-Function-Error" in response.headers
            else f" refused={response.headers.get('x-amzn-ErrorType')}"
            if response.status >= 400
            else "",
        )
        return response

    async def _serve(self, request: web.Request, requested: str) -> web.Response:
        body = await read_body(request, MAX_SYNC_PAYLOAD_BYTES)
        if body is None:
            return _too_large(MAX_SYNC_PAYLOAD_BYTES)
        url = f"{request.scheme}://{request.host}{request.rel_url.raw_path_qs}"
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
        try:
            self._verifier.verify(method=request.method, url=url, headers=headers, body=body)
        except SigV4Error as error:
            refusal: AwsRefusal = error.refusal
            error_type = refusal.error_type
            if refusal.status == 403 and error_type == "ForbiddenException":
                error_type = "MissingAuthenticationTokenException"
            return _refusal(refusal.status, error_type, refusal.message)
        name = self._resolve(requested, request.query.get("Qualifier"))
        if name is None:
            return _refusal(
                404, "ResourceNotFoundException", f"Function not found: {self.arn(requested)}"
            )
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type not in ("RequestResponse", "Event", "DryRun"):
            return _refusal(
                400,
                "InvalidParameterValueException",
                f"Unsupported invocation type {invocation_type}",
            )
        limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
        if len(body) > limit:
            return _too_large(limit)
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            return _refusal(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            )
        if invocation_type == "DryRun":
            return web.Response(status=204, headers=self._headers())
        future = self._run(name, event)
        if invocation_type == "Event":
            self._background.add(future)
            future.add_done_callback(self._background.discard)
            return web.Response(status=202, headers=self._headers())
        return await self._answer(name, future)

    def _run(self, name: str, event: Any) -> asyncio.Future[Any]:
        context = lambda_context(name, self._timeout_seconds)
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._functions[name], event, context)

    async def _answer(self, name: str, future: asyncio.Future[Any]) -> web.Response:
        headers = self._headers()
        try:
            result = await asyncio.wait_for(future, self._timeout_seconds)
            payload = json.dumps(result)
        except TimeoutError:
            timed_out = {
                "errorMessage": f"Task timed out after {self._timeout_seconds:.2f} seconds",
                "errorType": "Sandbox.Timedout",
            }
            return web.json_response(
                timed_out, headers={**headers, "X-Amz-Function-Error": "Unhandled"}
            )
        except Exception as failure:  # the function's bug: Lambda reports it, the caller decides
            logger.error("function %s raised %s", name, type(failure).__name__, exc_info=True)
            error: dict[str, Any] = {
                "errorMessage": str(failure),
                "errorType": type(failure).__name__,
                "requestId": headers["x-amzn-RequestId"],
                "stackTrace": [],
            }
            return web.json_response(
                error, headers={**headers, "X-Amz-Function-Error": "Unhandled"}
            )
        return web.Response(text=payload, content_type="application/json", headers=headers)

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"x-amzn-RequestId": str(uuid.uuid4()), "X-Amz-Executed-Version": "$LATEST"}
