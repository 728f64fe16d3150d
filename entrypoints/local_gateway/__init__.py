"""``timeline-ws serve``: the real Lambda handlers behind a local API Gateway WebSocket API.

- :mod:`~entrypoints.local_gateway.emulator`: API Gateway's WebSocket API and its
  ``@connections`` Management API, a bounded package that knows nothing of timeline-ws.
- :mod:`~entrypoints.local_gateway.wiring`: the one module that wires timeline-ws into it.
- :mod:`~entrypoints.local_gateway.cli`: the ``serve`` and ``token`` commands.
- :mod:`~entrypoints.local_gateway.banner`, :mod:`~entrypoints.local_gateway.lifecycle`:
  what ``serve`` prints, and how it runs and stops.
- :mod:`~entrypoints.local_gateway.dev_cognito`: the development Cognito stand-in;
  :mod:`~entrypoints.local_gateway.demo`: the development demo page.
"""
