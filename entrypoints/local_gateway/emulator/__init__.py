"""An emulation of API Gateway's WebSocket API and its ``@connections`` Management API.

A bounded package: it knows API Gateway, aiohttp and Lambda's handler signature, and
nothing of timeline-ws (an import contract keeps it from ``domain``, ``application``,
``adapters`` and the rest of ``entrypoints``). Give it Lambda handlers per route key
(:class:`Integration`) and it serves them as API Gateway would. Modules:

- :mod:`~entrypoints.local_gateway.emulator.server`: the aiohttp application (upgrades,
  route selection, route responses, closes, limits) and its runner.
- :mod:`~entrypoints.local_gateway.emulator.events`: the CONNECT / MESSAGE / DISCONNECT events.
- :mod:`~entrypoints.local_gateway.emulator.connections`: the registry of live sockets.
- :mod:`~entrypoints.local_gateway.emulator.management_api`: ``POST/GET/DELETE
  /{stage}/@connections/{id}``, SigV4-signed.
- :mod:`~entrypoints.local_gateway.emulator.lambda_invoke`: Lambda's Invoke API for the
  functions given by name, SigV4-signed (service ``lambda``).
- :mod:`~entrypoints.local_gateway.emulator.sigv4`: SigV4 verification for any service name
  (``execute-api`` and ``lambda`` here), with AWS's refusals.
- :mod:`~entrypoints.local_gateway.emulator.frames`: the 32 KB frame quota, both ways.
- :mod:`~entrypoints.local_gateway.emulator.throttling`: the token buckets of API Gateway's
  throttles.
- :mod:`~entrypoints.local_gateway.emulator.lambda_context`: the context object handlers get.
"""
