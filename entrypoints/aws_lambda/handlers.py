"""The Lambda handlers API Gateway's routes invoke; ``entrypoints/routes.py`` names them.

Handler strings: ``entrypoints.aws_lambda.handlers.connect_handler`` (``$connect``),
``…disconnect_handler`` (``$disconnect``), ``…default_handler`` (``$default``), and
``…reconcile_handler`` (every minute, ``infra/schedule.tf``) and ``…push_handler`` (the
``push`` function other services invoke, ``FUNCTIONS``). The
application is built once, at import (the cold start), from the environment, so warm
invocations reuse the Redis client, the boto3 clients and the JWKS cache. What each handler
does is in ``entrypoints/edge/`` (the invocation wrapper and the routes).
"""

import os

from entrypoints.bootstrap import bootstrap
from entrypoints.settings import Settings

container = bootstrap(Settings.from_environ(os.environ))
connect_handler = container.connect_handler()
disconnect_handler = container.disconnect_handler()
default_handler = container.default_handler()
reconcile_handler = container.reconcile_handler()
push_handler = container.push_handler()
