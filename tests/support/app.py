"""The application as the tests build it: settings of their own, fakes as overrides.

Tests never read or change ``os.environ`` for the application: ``make_settings`` builds the
configuration from a dictionary and ``make_container`` bootstraps it, as the Lambda handlers
module does from the environment at a cold start.
"""

from __future__ import annotations

from typing import Any

from entrypoints.bootstrap import bootstrap
from entrypoints.container import Container
from entrypoints.settings import Settings

TEST_COGNITO_REGION = "us-east-1"
TEST_USER_POOL_ID = "us-east-1_TestPool1"
TEST_APP_CLIENT_ID = "testappclient00000000000001"

TEST_ENVIRON = {
    "COGNITO_REGION": TEST_COGNITO_REGION,
    "COGNITO_USER_POOL_ID": TEST_USER_POOL_ID,
    "COGNITO_APP_CLIENT_IDS": TEST_APP_CLIENT_ID,
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""The smallest valid configuration: a test user pool, every other setting at its default."""


def make_settings(**variables: str) -> Settings:
    """``Settings`` from :data:`TEST_ENVIRON` plus ``variables`` (variable name -> value)."""
    return Settings.from_environ({**TEST_ENVIRON, **variables})


def make_container(settings: Settings | None = None, **overrides: Any) -> Container:
    """``bootstrap(settings or make_settings(), **overrides)``."""
    return bootstrap(settings or make_settings(), **overrides)
