"""``timeline-ws loadtest``: many simulated WebSocket clients against one timeline-ws URL.

Each client connects with a token, pings on its interval with an ``"id"`` it matches to the
pong, and watches for closes it did not ask for. At the end a report gives connections
attempted / established / rejected (by HTTP status) / failed, unexpected disconnects and
their rate, connect latency and pong round trip percentiles, pings sent and pongs received
and, for a server on this machine, its RSS. Modules:

- :mod:`~entrypoints.loadtest.stats`: percentiles and the report (text and JSON).
- :mod:`~entrypoints.loadtest.clients`: the asyncio clients and the run that drives them.
- :mod:`~entrypoints.loadtest.tokens`: tokens minted from the development key, or a file.
- :mod:`~entrypoints.loadtest.server_process`: finds a local server's pid, samples its RSS.
- :mod:`~entrypoints.loadtest.display`: the live progress display (rich).
- :mod:`~entrypoints.loadtest.command`: the ``loadtest`` sub-command's arguments.
"""
