"""Build the application: :func:`bootstrap` is called once per process, by each entry point.

The Lambda handlers module calls it at module scope with settings read from the environment
(a cold start); tests call it with settings of their own and fakes as overrides; the local
gateway with its embedded fakeredis. Nothing else builds a container or reads ``os.environ``.
"""

from __future__ import annotations

from typing import Any

from entrypoints.container import Container
from entrypoints.observability import configure_observability
from entrypoints.settings import Settings


def bootstrap(settings: Settings, **overrides: Any) -> Container:
    """The composition root for ``settings``, with providers replaced by ``overrides``.

    Args:
        settings: the validated configuration (``Settings.from_environ``).
        **overrides: provider name -> the object to provide instead, or a provider
            (dependency-injector's ``override_providers``); e.g. ``clock=FixedClock()``,
            ``redis_client=fakeredis.FakeRedis()``, ``connection_repository=...``.

    Also applies the process's observability settings (``LOG_LEVEL``, the log sampling,
    whether metrics are written, and in Lambda the JSON handler for the adapters' loggers).

    Raises:
        AttributeError: an override names no provider of the container.
    """
    container = Container(settings=settings)
    container.override_providers(**overrides)
    configure_observability(
        settings.log_level,
        sample_rate=settings.log_sample_rate,
        structured_adapter_logs=settings.in_lambda,
        metrics=not settings.metrics_disabled,
        service=settings.service_name,
        namespace=settings.metrics_namespace,
    )
    return container
