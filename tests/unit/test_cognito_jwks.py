"""Issuer and JWKS URL helpers, the static fetcher, and the HTTP fetcher's configuration checks."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.cognito import (
    HttpJwksFetcher,
    StaticJwksFetcher,
    cognito_issuer,
    cognito_jwks_url,
)
from adapters.cognito.jwks import parse_jwks
from tests.support.tokens import jwks_document, shared_key_pair


def test_given_a_region_and_pool_when_building_the_issuer_then_it_is_the_aws_url() -> None:
    issuer = cognito_issuer("eu-west-1", "eu-west-1_AbC123xyz")

    assert issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123xyz"
    assert cognito_jwks_url(issuer) == f"{issuer}/.well-known/jwks.json"


def test_the_local_gateway_region_builds_an_aws_shaped_issuer() -> None:
    assert (
        cognito_issuer("local", "local_timelinews")
        == "https://cognito-idp.local.amazonaws.com/local_timelinews"
    )


@pytest.mark.parametrize(
    ("region", "pool"),
    [
        ("", "us-east-1_Abc"),
        ("us-east-1/..", "us-east-1_Abc"),
        ("evil.example", "us-east-1_Abc"),
        ("us-east-1", ""),
        ("us-east-1", "../x"),
        ("us-east-1", "us-east-1_Abc/x"),
        ("us-east-1", "no-underscore"),
    ],
)
def test_given_a_bad_region_or_pool_id_when_building_the_issuer_then_value_error(
    region: str, pool: str
) -> None:
    with pytest.raises(ValueError):
        cognito_issuer(region, pool)


def test_given_a_jwks_when_served_statically_then_callers_cannot_alter_it() -> None:
    document = jwks_document(shared_key_pair("kid-1"))
    fetcher = StaticJwksFetcher(document)

    fetcher.fetch()["keys"].clear()
    document["keys"].clear()

    assert [key["kid"] for key in fetcher.fetch()["keys"]] == ["kid-1"]


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"keys": {}}', '{"nokeys": []}', '{"keys": [], "x": NaN}'],
)
def test_given_text_that_is_not_a_jwks_when_parsed_then_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_jwks(text)


def test_given_a_dict_that_is_not_a_jwks_when_served_statically_then_value_error() -> None:
    with pytest.raises(ValueError):
        StaticJwksFetcher({"kty": "RSA"})


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/jwks.json",
        "data:application/json,{}",
        "https:///no-host",
        "jwks.json",
        "",
    ],
)
def test_given_a_url_that_is_not_http_when_building_the_fetcher_then_value_error(url: str) -> None:
    with pytest.raises(ValueError):
        HttpJwksFetcher(url)


@pytest.mark.parametrize(
    "settings", [{"timeout_seconds": 0}, {"timeout_seconds": -1}, {"max_bytes": 0}]
)
def test_given_non_positive_limits_when_building_the_fetcher_then_value_error(
    settings: dict[str, Any],
) -> None:
    url = "https://cognito-idp.us-east-1.amazonaws.com/x/.well-known/jwks.json"
    with pytest.raises(ValueError):
        HttpJwksFetcher(url, **settings)
