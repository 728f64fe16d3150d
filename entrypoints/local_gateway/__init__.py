"""``timeline-ws serve``: a local emulation of API Gateway's WebSocket API and its @connections API.

It runs the real Lambda handlers (``entrypoints.aws_lambda.handlers``) in worker threads,
feeding them events shaped exactly like API Gateway's Lambda proxy events, and serves the
Management API that their boto3 client posts to. Modules:

- :mod:`~entrypoints.local_gateway.events`: the CONNECT / MESSAGE / DISCONNECT event builders.
- :mod:`~entrypoints.local_gateway.connections`: the registry of live sockets.
- :mod:`~entrypoints.local_gateway.management_api`: ``POST/GET/DELETE /@connections/{id}``.
- :mod:`~entrypoints.local_gateway.server`: the aiohttp application and its lifecycle.
- :mod:`~entrypoints.local_gateway.dev_cognito`: the development Cognito stand-in.
- :mod:`~entrypoints.local_gateway.lambda_context`: the Lambda context object handlers get.
- :mod:`~entrypoints.local_gateway.runner`: wiring for the ``serve`` and ``token`` commands.
"""
