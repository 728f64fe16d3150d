"""`terraform plan` of the real stack against moto, when the AWS provider is on this machine.

Provider downloads are impossible here, but some machines carry the AWS provider in a local
filesystem mirror (``/opt/tf-plugins``, or ``TF_PLUGIN_MIRROR``). Then this test copies
infra/*.tf to a temporary directory, points the provider's only API calls during a plan
(STS GetCallerIdentity, Secrets Manager GetRandomPassword) at the moto server, and plans.
That is `terraform validate` and more: every expression is evaluated with real variable
values. Without terraform or the mirror, the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.terraform import INFRA

MIRROR = Path(os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
PLAN_TIMEOUT_SECONDS = 300

CLI_CONFIG = """
provider_installation {{
  filesystem_mirror {{
    path    = "{mirror}"
    include = ["registry.terraform.io/hashicorp/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/hashicorp/*"]
  }}
}}
"""

# Merged into the stack's provider block (Terraform override file semantics).
PROVIDER_OVERRIDE = """
provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true

  endpoints {{
    sts            = "{endpoint}"
    secretsmanager = "{endpoint}"
  }}
}}
"""

TFVARS = """
cognito_user_pool_id   = "eu-west-1_AbCdEf123"
cognito_app_client_ids = ["exampleclient1", "exampleclient2"]
custom_domain_name            = "realtime.example.com"
custom_domain_certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
alarm_email = "oncall@example.com"
lambda_package_path = "{package}"
"""


def terraform(workdir: Path, cli_config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("terraform")
    assert binary
    environment = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",  # no version check call to HashiCorp
        "TF_INPUT": "0",
    }
    result = subprocess.run(
        [binary, *args, "-no-color"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=PLAN_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"terraform {args[0]} failed:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> dict[str, Any]:
    if shutil.which("terraform") is None:
        pytest.skip("no terraform binary on PATH: plan not run")
    if not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no AWS provider in a local mirror ({MIRROR}): `terraform plan` not run")
    workdir = tmp_path_factory.mktemp("terraform")
    for path in INFRA.glob("*.tf"):
        shutil.copy(path, workdir / path.name)
    # The stack reads the failover table's one definition from the adapter beside infra/.
    schema = Path("adapters", "connection_store", "connections_table.json")
    (workdir.parent / schema.parent).mkdir(parents=True, exist_ok=True)
    shutil.copy(INFRA.parent / schema, workdir.parent / schema)
    package = workdir / "timeline-ws-lambda.zip"
    package.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: only its hash is read
    (workdir / "override.tf").write_text(PROVIDER_OVERRIDE.format(endpoint=moto_endpoint))
    (workdir / "test.tfvars").write_text(TFVARS.format(package=package))
    cli_config = workdir / "terraformrc"
    cli_config.write_text(CLI_CONFIG.format(mirror=MIRROR))
    terraform(workdir, cli_config, "init", "-backend=false")
    terraform(workdir, cli_config, "plan", "-refresh=false", "-var-file=test.tfvars", "-out=tfplan")
    shown = terraform(workdir, cli_config, "show", "-json", "tfplan")
    document: dict[str, Any] = json.loads(shown.stdout)
    return document


def planned(plan: dict[str, Any], address: str) -> dict[str, Any]:
    for change in plan["resource_changes"]:
        if change["address"] == address:
            assert change["change"]["actions"] == ["create"]
            after: dict[str, Any] = change["change"]["after"]
            return after
    raise AssertionError(f"{address} is not in the plan")


@pytest.mark.slow
def test_the_stack_plans_cleanly_with_every_part_of_issue_5(plan: dict[str, Any]) -> None:
    managed = [c for c in plan["resource_changes"] if c["mode"] == "managed"]
    kinds = {change["type"] for change in managed}
    assert {
        "aws_apigatewayv2_api",
        "aws_apigatewayv2_route",
        "aws_apigatewayv2_integration",
        "aws_apigatewayv2_stage",
        "aws_apigatewayv2_domain_name",
        "aws_apigatewayv2_api_mapping",
        "aws_lambda_function",
        "aws_lambda_permission",
        "aws_elasticache_replication_group",
        "aws_dynamodb_table",
        "aws_cloudwatch_metric_alarm",
        "aws_sns_topic",
        "aws_vpc_endpoint",
    } <= kinds
    assert all(change["change"]["actions"] == ["create"] for change in managed)
    assert len(managed) > 60


@pytest.mark.slow
def test_the_planned_functions_run_the_three_handlers(plan: dict[str, Any]) -> None:
    handlers = {
        key: planned(plan, f'aws_lambda_function.handler["{key}"]')
        for key in ("connect", "disconnect", "default")
    }
    for key, function in handlers.items():
        assert function["handler"] == f"entrypoints.aws_lambda.handlers.{key}_handler"
        assert function["runtime"] == "python3.13"
        assert function["architectures"] == ["x86_64"]
        assert function["tracing_config"] == [{"mode": "Active"}]


@pytest.mark.slow
def test_the_planned_access_log_is_json_without_the_query_string(plan: dict[str, Any]) -> None:
    stage = planned(plan, "aws_apigatewayv2_stage.live")
    (settings,) = stage["access_log_settings"]
    fields = json.loads(settings["format"])
    assert fields["connectionId"] == "$context.connectionId"
    assert not [v for v in fields.values() if "querystring" in v.lower() or "Override" in v]
    (route_settings,) = stage["default_route_settings"]
    assert route_settings["throttling_rate_limit"] == 500
    assert route_settings["throttling_burst_limit"] == 1000


@pytest.mark.slow
def test_the_planned_alarms_and_custom_domain(plan: dict[str, Any]) -> None:
    rate = planned(plan, "aws_cloudwatch_metric_alarm.disconnect_rate")
    assert rate["threshold"] == 10
    (expression,) = [q["expression"] for q in rate["metric_query"] if q["return_data"]]
    assert expression == "IF(connects >= 20, 100 * FILL(abnormal, 0) / connects, 0)"
    failovers = planned(plan, "aws_cloudwatch_metric_alarm.store_failovers")
    assert (failovers["metric_name"], failovers["threshold"]) == ("StoreFailovers", 0)
    mapping = planned(plan, "aws_apigatewayv2_api_mapping.ws[0]")
    assert mapping["api_mapping_key"] == "ws"
    outputs = plan["planned_values"]["outputs"]
    assert outputs["websocket_url"]["value"] == "wss://realtime.example.com/ws"


@pytest.mark.slow
def test_the_planned_table_is_the_one_the_local_gateway_creates(plan: dict[str, Any]) -> None:
    from entrypoints.local_gateway.dynamodb_table import connections_table_schema

    schema = connections_table_schema()
    table = planned(plan, "aws_dynamodb_table.connections")
    assert table["billing_mode"] == schema["BillingMode"]
    assert table["hash_key"] == schema["KeySchema"][0]["AttributeName"]
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in schema["AttributeDefinitions"]
    }
    assert {
        (index["name"], index["hash_key"], index["projection_type"])
        for index in table["global_secondary_index"]
    } == {
        (i["IndexName"], i["KeySchema"][0]["AttributeName"], i["Projection"]["ProjectionType"])
        for i in schema["GlobalSecondaryIndexes"]
    }
    assert table["ttl"] == [{"attribute_name": schema["TimeToLiveAttribute"], "enabled": True}]
