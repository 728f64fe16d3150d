"""The WebSocket API as data: its routes.

:data:`ROUTES` is the API Gateway side — route key, Lambda function, handler, one-way or
two-way — read by the local gateway and held to ``infra/`` by ``tests/infra``. The actions a
client message may name on ``$default`` are the container's table (``entrypoints/container.py``;
README, "Adding a route").

Two-way routes: API Gateway sends the integration's response ``body`` to the client as a
message only on a route with a route response; WebSocket APIs allow one on ``$default`` only
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html).
"""

from __future__ import annotations

from typing import Final

import attrs


@attrs.frozen(slots=True, kw_only=True)
class Route:
    """One route of the WebSocket API.

    Attributes:
        route_key: API Gateway's route key, e.g. ``"$default"``.
        function: the Lambda function's short name (``infra/``'s key; the function is
            ``timeline-ws-<environment>-<function>``).
        handler: the handler's name in :mod:`entrypoints.aws_lambda.handlers`.
        two_way: the route has a route response: the handler's ``body`` goes to the client.
    """

    route_key: str
    function: str
    handler: str
    two_way: bool = False

    @property
    def handler_path(self) -> str:
        """The Lambda handler string, e.g. ``entrypoints.aws_lambda.handlers.default_handler``."""
        return f"{HANDLERS_MODULE}.{self.handler}"


HANDLERS_MODULE: Final = "entrypoints.aws_lambda.handlers"

ROUTES: Final = (
    Route(route_key="$connect", function="connect", handler="connect_handler"),
    Route(route_key="$disconnect", function="disconnect", handler="disconnect_handler"),
    Route(route_key="$default", function="default", handler="default_handler", two_way=True),
)
"""Every route, in the order API Gateway documents them."""


@attrs.frozen(slots=True, kw_only=True)
class Function:
    """A Lambda function other services invoke directly (Lambda's Invoke API), no route.

    Attributes:
        function: its short name (``infra/``'s key; ``timeline-ws-<environment>-<function>``
            on AWS, the bare name on the local gateway's Invoke API).
        handler: the handler's name in :mod:`entrypoints.aws_lambda.handlers`.
    """

    function: str
    handler: str

    @property
    def handler_path(self) -> str:
        """The Lambda handler string, e.g. ``entrypoints.aws_lambda.handlers.push_handler``."""
        return f"{HANDLERS_MODULE}.{self.handler}"


FUNCTIONS: Final = (Function(function="push", handler="push_handler"),)
"""The directly invoked functions (README, "Delivering to users")."""
