"""The Lambda edge: API Gateway events in, use cases called, responses and frames out.

``invocation.py`` is the one wrapper every handler runs in, ``websocket_routes.py`` what each route
does, ``events.py`` and ``responses.py`` the wire. The container builds the handlers;
``entrypoints/aws_lambda/handlers.py`` (above the container) exposes them to Lambda.
"""
