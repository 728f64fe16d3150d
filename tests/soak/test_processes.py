"""The soak's moto_server starts even when the free port it drew is taken before its bind."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from tests.soak.processes import MotoProcess


def test_given_its_port_taken_before_the_bind_then_moto_starts_on_another(tmp_path: Path) -> None:
    moto = MotoProcess(tmp_path)
    drawn = moto.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", drawn))  # an outgoing connection's port would do the same
        squatter.listen()
        try:
            moto.start()
            assert moto.port != drawn
            with urllib.request.urlopen(f"{moto.endpoint}/moto-api/", timeout=5) as answer:
                assert answer.status == 200
        finally:
            moto.stop()
    assert "Address already in use" in (tmp_path / "moto.log").read_text()


def test_the_breaker_reset_of_a_schedule_is_both_stores_breaker_reset():
    # The checker's ghost grace is one reset: a delete DynamoDB missed is replayed once its
    # own breaker lets a call through, so it must not keep the product's 10 s default.
    from tests.soak.environment import GatewayConfig

    environment = GatewayConfig(
        breaker_reset=3.0, workers=16, global_limit=1000, per_user_limit=10
    ).environment()

    assert environment["REDIS_BREAKER_RESET_SECONDS"] == "3"
    assert environment["DYNAMODB_BREAKER_RESET_SECONDS"] == "3"
