"""The push function's Terraform: its handler is the route table's, least privilege, its own
log group, the failed-deliveries alarm on the metric the handler writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from entrypoints.observability import PUSH_FAILED
from entrypoints.routes import FUNCTIONS
from tests.infra.terraform import Stack, stack


@pytest.fixture(scope="module")
def tf() -> Stack:
    return stack()


def statements(tf: Stack) -> dict[str, dict[str, Any]]:
    document = tf.data["aws_iam_policy_document"]["push"]
    return {statement["sid"]: statement for statement in document["statement"]}


def test_the_invoked_functions_are_the_route_tables_functions(tf: Stack) -> None:
    declared = {key: spec["handler"] for key, spec in tf.locals["invoked_handlers"].items()}
    assert declared == {function.function: function.handler_path for function in FUNCTIONS}
    function = tf.of("aws_lambda_function")["push"]
    assert function["handler"] == "${local.invoked_handlers.push.handler}"
    assert function["role"] == "${aws_iam_role.push.arn}", "its own role, not the handlers'"
    assert function["environment"][0]["variables"] == "${local.lambda_environment}"


def test_the_push_may_only_post_to_this_apis_connections(tf: Stack) -> None:
    manage = [
        statement
        for statement in statements(tf).values()
        if any(action.startswith("execute-api:") for action in statement["actions"])
    ]
    assert len(manage) == 1
    assert manage[0]["actions"] == ["execute-api:ManageConnections"]
    assert manage[0]["resources"] == [
        "${aws_apigatewayv2_api.websocket.execution_arn}/${var.stage_name}/POST/@connections/*"
    ]


def test_the_push_writes_only_its_own_log_group_and_reaches_only_its_store(tf: Stack) -> None:
    granted = statements(tf)
    assert granted["WriteOwnLogs"]["resources"] == ["${aws_cloudwatch_log_group.push.arn}:*"]
    assert tf.of("aws_cloudwatch_log_group")["push"]["name"] == (
        "/aws/lambda/${local.push_function_name}"
    )
    table = granted["FailoverDirectoryAndCleanup"]
    assert set(table["actions"]) == {"dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:PutItem"}
    assert all("aws_dynamodb_table.connections.arn" in arn for arn in table["resources"])
    every_action = [action for s in granted.values() for action in s["actions"]]
    assert not any(action.endswith("*") for action in every_action), json.dumps(every_action)
    document = tf.data["aws_iam_policy_document"]["push"]
    assert document["source_policy_documents"] == [
        "${data.aws_iam_policy_document.lambda_runtime.json}"
    ], "the runtime's needs (secret, key, ENIs), shared with the route handlers"
    vpc = tf.of("aws_lambda_function")["push"]["vpc_config"][0]
    assert vpc["security_group_ids"] == ["${aws_security_group.lambda.id}"], "Redis admits it"


def test_an_alarm_watches_the_failed_deliveries_the_handler_counts(tf: Stack) -> None:
    alarm = tf.of("aws_cloudwatch_metric_alarm")["push_failed_deliveries"]
    assert alarm["metric_name"] == PUSH_FAILED
    assert alarm["namespace"] == "${local.metrics_namespace}"
    assert (alarm["statistic"], alarm["threshold"]) == ("Sum", 0)
    assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]
