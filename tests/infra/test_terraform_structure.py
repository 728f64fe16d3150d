"""Structure of the Terraform stack in infra/, read with python-hcl2 (no provider needed).

These pin the properties issue 5 asks for and that `terraform validate` could not prove
anyway: routes wired to the right handlers, handler strings that name real Python callables,
the alarm thresholds and metric names, least-privilege resources, and no secrets or tokens
where they would leak.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from adapters.connection_store.record import (
    TOMBSTONE_ATTRIBUTE,
    TOMBSTONE_INDEX_NAME,
    TTL_ATTRIBUTE,
    USER_INDEX_NAME,
)
from entrypoints.routes import ROUTES
from tests.infra.terraform import (
    PROJECT_ROOT,
    Stack,
    block,
    parsed,
    stack,
    tf_files,
    walk_attributes,
)

ROUTE_KEYS = {route.route_key for route in ROUTES}
HANDLERS_FILE = PROJECT_ROOT / "entrypoints" / "aws_lambda" / "handlers.py"
OBSERVABILITY_FILE = PROJECT_ROOT / "entrypoints" / "observability.py"


@pytest.fixture(scope="module")
def tf() -> Stack:
    return stack()


def reference_key(expression: str, resource: str) -> str:
    """``"${aws_lambda_function.handler[\\"connect\\"].x}"`` -> ``"connect"`` for that resource."""
    match = re.search(re.escape(resource) + r'\["([a-z_]+)"\]', expression)
    assert match, f"{expression!r} does not reference {resource}[...]"
    return match.group(1)


def top_level_names(path: Path) -> set[str]:
    """Functions, classes and assigned names defined at module level in a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_api_is_a_websocket_api_routing_on_the_action_field(tf: Stack) -> None:
    (api,) = tf.of("aws_apigatewayv2_api").values()
    assert api["protocol_type"] == "WEBSOCKET"
    assert api["route_selection_expression"] == "$request.body.action"


def test_every_route_has_a_lambda_proxy_integration_and_an_invoke_permission(tf: Stack) -> None:
    # Given the three routes
    routes = tf.of("aws_apigatewayv2_route")
    assert {route["route_key"] for route in routes.values()} == ROUTE_KEYS
    integrations = tf.of("aws_apigatewayv2_integration")
    permissions = tf.of("aws_lambda_permission")
    handlers = tf.locals["lambda_handlers"]
    for name, route in routes.items():
        # Then each targets an AWS_PROXY integration of this API...
        target = re.fullmatch(
            r"integrations/\$\{aws_apigatewayv2_integration\.(\w+)\.id\}", route["target"]
        )
        assert target, f"route {name} has no integration target: {route.get('target')!r}"
        integration = integrations[target.group(1)]
        assert integration["integration_type"] == "AWS_PROXY"
        assert integration["api_id"] == route["api_id"] == "${aws_apigatewayv2_api.websocket.id}"
        # ... that invokes the function whose handler is meant for this route key...
        function_key = reference_key(integration["integration_uri"], "aws_lambda_function.handler")
        assert integration["integration_uri"].endswith(".invoke_arn}")
        assert handlers[function_key]["route_key"] == route["route_key"]
        # ... and API Gateway may invoke that function from exactly this route.
        granted = [
            permission
            for permission in permissions.values()
            if reference_key(permission["function_name"], "aws_lambda_function.handler")
            == function_key
        ]
        assert len(granted) == 1, f"route {name}: expected one permission, found {len(granted)}"
        assert granted[0]["principal"] == "apigateway.amazonaws.com"
        assert granted[0]["action"] == "lambda:InvokeFunction"
        assert granted[0]["source_arn"].startswith(
            "${aws_apigatewayv2_api.websocket.execution_arn}/"
        )
        assert granted[0]["source_arn"].endswith("/" + route["route_key"])


def test_the_functions_and_their_handlers_are_the_route_table(tf: Stack) -> None:
    # Given the route table the local gateway serves (entrypoints/routes.py)
    declared = {
        key: (spec["route_key"], spec["handler"])
        for key, spec in tf.locals["lambda_handlers"].items()
    }
    # Then Terraform deploys one function per route, named and wired as the table says.
    assert declared == {route.function: (route.route_key, route.handler_path) for route in ROUTES}


def test_exactly_the_two_way_routes_of_the_route_table_have_a_route_response(tf: Stack) -> None:
    routes = tf.of("aws_apigatewayv2_route")
    two_way = {
        route["route_key"]
        for route in routes.values()
        if route.get("route_response_selection_expression") == "$default"
    }
    assert two_way == {route.route_key for route in ROUTES if route.two_way} == {"$default"}
    (response,) = tf.of("aws_apigatewayv2_route_response").values()
    # AWS accepts only the $default route response key, on the route that selects it.
    assert response["route_response_key"] == "$default"
    assert response["route_id"] == "${aws_apigatewayv2_route.default.id}"
    assert response["api_id"] == "${aws_apigatewayv2_api.websocket.id}"
    assert "model_selection_expression" not in response, "unsupported by AWS for route responses"


def test_handler_strings_name_callables_defined_in_the_handlers_module(tf: Stack) -> None:
    handlers = {spec["handler"] for spec in tf.locals["lambda_handlers"].values()}
    assert handlers == {route.handler_path for route in ROUTES}
    for handler in handlers:
        module, _, attribute = handler.rpartition(".")
        path = PROJECT_ROOT / Path(*module.split(".")).with_suffix(".py")
        assert path == HANDLERS_FILE and path.is_file(), f"{handler}: {path} is missing"
        assert attribute in top_level_names(path), f"{handler}: no {attribute} in {path.name}"
    function = tf.of("aws_lambda_function")["handler"]
    assert function["for_each"] == "${local.lambda_functions}"
    assert function["handler"] == "${each.value.handler}"


def test_the_reconciler_runs_every_minute_and_names_a_callable_of_the_handlers_module(
    tf: Stack,
) -> None:
    assert (
        tf.locals["lambda_functions"] == "${merge(local.lambda_handlers, local.scheduled_handlers)}"
    )
    (name,) = tf.locals["scheduled_handlers"]
    handler = tf.locals["scheduled_handlers"][name]["handler"]
    assert handler == "entrypoints.aws_lambda.handlers.reconcile_handler"
    assert handler.rpartition(".")[2] in top_level_names(HANDLERS_FILE)
    rule = tf.of("aws_cloudwatch_event_rule")["reconcile"]
    assert rule["schedule_expression"] == "rate(1 minute)"
    target = tf.of("aws_cloudwatch_event_target")["reconcile"]
    assert target["arn"] == '${aws_lambda_function.handler["reconcile"].arn}'
    permission = tf.of("aws_lambda_permission")["reconcile"]
    assert permission["principal"] == "events.amazonaws.com"
    assert permission["source_arn"] == "${aws_cloudwatch_event_rule.reconcile.arn}"


def test_the_stage_throttles_every_route_and_keeps_execution_data_out_of_logs(tf: Stack) -> None:
    stage = tf.of("aws_apigatewayv2_stage")["live"]
    settings = block(stage, "default_route_settings")
    assert tf.resolve(settings["throttling_rate_limit"]) > 0
    assert tf.resolve(settings["throttling_burst_limit"]) > 0
    assert settings["data_trace_enabled"] is False
    assert tf.resolve(settings["logging_level"]) == "OFF"


def test_the_access_log_format_leaves_out_the_query_string(tf: Stack) -> None:
    stage = tf.of("aws_apigatewayv2_stage")["live"]
    log_format = block(stage, "access_log_settings")["format"]
    variables = set(re.findall(r"\$context\.[A-Za-z.]+", log_format))
    # It logs who connected to which route and how it went...
    assert {"$context.connectionId", "$context.routeKey", "$context.status"} <= variables
    # ... and nothing that can carry the token: no query string, no request override.
    for variable in variables:
        assert "querystring" not in variable.lower(), variable
        assert "requestoverride" not in variable.lower(), variable
    assert not re.search(r"querystring|query_string|requestOverride|\$request\.", log_format, re.I)


def test_the_custom_domain_maps_the_api_under_ws(tf: Stack) -> None:
    mapping = tf.of("aws_apigatewayv2_api_mapping")["ws"]
    assert mapping["api_mapping_key"] == "ws"
    domain = tf.of("aws_apigatewayv2_domain_name")["ws"]
    assert block(domain, "domain_name_configuration")["security_policy"] == "TLS_1_2"
    assert "wss://${var.custom_domain_name}/ws" in tf.outputs["websocket_url"]["value"]


def test_the_lambdas_get_the_whole_container_configuration_and_no_secret(tf: Stack) -> None:
    function = tf.of("aws_lambda_function")["handler"]
    environment = tf.resolve(
        block(function, "environment")["variables"]
    )  # local.lambda_environment
    names = set(re.findall(r"\b([A-Z][A-Z0-9_]+) = ", environment))
    assert {
        "REDIS_URL",
        "REDIS_CLUSTER",
        "REDIS_AUTH_SECRET_ARN",
        "REDIS_CONNECT_TIMEOUT_SECONDS",
        "REDIS_READ_TIMEOUT_SECONDS",
        "COGNITO_REGION",
        "COGNITO_USER_POOL_ID",
        "COGNITO_APP_CLIENT_IDS",
        "COGNITO_TOKEN_USE",
        "COGNITO_JWKS_URL",
        "COGNITO_JWKS",
        "CONNECTION_TTL_SECONDS",
        "MANAGEMENT_API_ENDPOINT",
        "CONNECTIONS_TABLE",
        "LOG_LEVEL",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    } <= names
    # TLS to Redis, and the URL carries no password (the token comes from Secrets Manager).
    assert (
        'REDIS_URL = "rediss://${aws_elasticache_replication_group.redis.configuration_endpoint_address}:'
        in environment
    )
    assert 'REDIS_CLUSTER = "true"' in environment
    assert "auth_token" not in environment and "secret_string" not in environment


# Read by the code, deliberately not set by Terraform: Lambda sets the Region itself,
# the endpoint override is for tests, and the JWT leeway and JWKS cooldown defaults fit AWS.
LEFT_TO_DEFAULTS = {
    "AWS_LAMBDA_FUNCTION_NAME",  # set by the Lambda runtime itself
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "COGNITO_LEEWAY_SECONDS",
    "JWKS_REFETCH_COOLDOWN_SECONDS",
    "POWERTOOLS_METRICS_DISABLED",
}
CONFIGURATION_MODULES = ("settings.py", "observability.py", "container.py")


def names_the_code_reads() -> set[str]:
    """Upper-case string constants of the configuration modules: the variables they read."""
    names: set[str] = set()
    for module in CONFIGURATION_MODULES:
        path = PROJECT_ROOT / "entrypoints" / module
        if not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+", node.value)
            ):
                names.add(node.value)
    return names


def test_terraform_sets_exactly_the_variables_the_container_reads(tf: Stack) -> None:
    environment = tf.resolve(
        block(tf.of("aws_lambda_function")["handler"], "environment")["variables"]
    )
    set_by_terraform = set(re.findall(r"\b([A-Z][A-Z0-9_]+) = ", environment))
    read_by_code = names_the_code_reads()
    assert "REDIS_URL" in read_by_code and "CONNECTIONS_TABLE" in read_by_code
    unset = read_by_code - set_by_terraform - LEFT_TO_DEFAULTS
    assert unset == set(), f"the handlers read these but Terraform never sets them: {unset}"
    unread = set_by_terraform - read_by_code
    assert unread == set(), f"Terraform sets variables nobody reads: {unread}"


def test_runtime_and_architecture_match_what_make_package_builds(tf: Stack) -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    python = re.search(r"^LAMBDA_PYTHON \?= (\S+)$", makefile, re.M)
    arch = re.search(r"^LAMBDA_ARCH \?= (\S+)$", makefile, re.M)
    assert python and arch
    assert tf.variables["lambda_runtime"]["default"] == f"python{python.group(1)}"
    assert tf.variables["lambda_architecture"]["default"] == arch.group(1)
    assert tf.variables["lambda_package_path"]["default"] == "../dist/timeline-ws-lambda.zip"
    assert re.search(
        r"^package:.*\n\t.*--output dist/timeline-ws-lambda\.zip( \$\(PACKAGE_ARGS\))?$",
        makefile,
        re.M,
    )


def test_manage_connections_is_granted_on_this_stages_connections_only(tf: Stack) -> None:
    statements = tf.data["aws_iam_policy_document"]["lambda"]["statement"]
    (manage,) = [s for s in statements if "execute-api:ManageConnections" in s["actions"]]
    assert manage["actions"] == ["execute-api:ManageConnections"]
    assert manage["resources"] == "${local.manage_connections_arns}"
    arns = tf.locals["manage_connections_arns"]
    assert (
        "${aws_apigatewayv2_api.websocket.execution_arn}/${var.stage_name}/${method}/@connections/*"
        in arns
    )
    assert re.search(r'\["POST", "DELETE"\]', arns), arns


def test_no_policy_statement_grants_a_wildcard_action(tf: Stack) -> None:
    for name, document in tf.data["aws_iam_policy_document"].items():
        for statement in document["statement"]:
            for action in statement["actions"]:
                # The key policy's account-root statement is AWS's default and the only exception.
                if name == "kms" and statement.get("sid") == "AccountAdministration":
                    continue
                assert action != "*" and not action.endswith(":*"), f"{name}: {action}"
    documents = tf.data["aws_iam_policy_document"]
    lambda_statements = [
        statement
        for name in ("lambda", "lambda_runtime", "push")
        for statement in documents[name]["statement"]
    ]
    wildcard = [s for s in lambda_statements if s["resources"] == ["*"]]
    # Only the EC2 Describe* calls, which have no resource-level permissions, use "*".
    assert [s["sid"] for s in wildcard] == ["DescribeNetworking"]
    assert all(a.startswith("ec2:Describe") for a in wildcard[0]["actions"])


def test_dynamodb_access_is_limited_to_the_table_and_its_indexes(tf: Stack) -> None:
    statements = tf.data["aws_iam_policy_document"]["lambda"]["statement"]
    (dynamodb,) = [s for s in statements if any(a.startswith("dynamodb:") for a in s["actions"])]
    assert dynamodb["resources"] == [
        "${aws_dynamodb_table.connections.arn}",
        "${aws_dynamodb_table.connections.arn}/index/*",
    ]


def test_the_failover_table_is_built_from_its_one_definition(tf: Stack) -> None:
    # The definition (DynamoDB's CreateTable shape) names what the adapter reads and writes.
    from entrypoints.local_gateway.dynamodb_table import connections_table_schema

    schema = connections_table_schema()
    assert schema["BillingMode"] == "PAY_PER_REQUEST"
    assert schema["KeySchema"] == [{"AttributeName": "connectionId", "KeyType": "HASH"}]
    assert schema["TimeToLiveAttribute"] == TTL_ATTRIBUTE
    indexes = {index["IndexName"]: index for index in schema["GlobalSecondaryIndexes"]}
    assert set(indexes) == {USER_INDEX_NAME, TOMBSTONE_INDEX_NAME}
    assert indexes[USER_INDEX_NAME]["KeySchema"][0]["AttributeName"] == "userId"
    assert indexes[USER_INDEX_NAME]["Projection"] == {"ProjectionType": "ALL"}
    tombstones = indexes[TOMBSTONE_INDEX_NAME]
    assert tombstones["KeySchema"][0]["AttributeName"] == TOMBSTONE_ATTRIBUTE
    assert tombstones["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # Terraform builds the table from that file, nothing written twice.
    assert "adapters/connection_store/connections_table.json" in tf.locals["connections_table"]
    table = tf.of("aws_dynamodb_table")["connections"]
    assert table["billing_mode"] == "${local.connections_table.BillingMode}"
    assert table["hash_key"] == "${local.connections_table.KeySchema[0].AttributeName}"
    dynamic = {name for block in table["dynamic"] for name in block}
    assert dynamic == {"attribute", "global_secondary_index"}
    assert block(table, "ttl") == {
        "attribute_name": "${local.connections_table.TimeToLiveAttribute}",
        "enabled": True,
    }
    assert block(table, "point_in_time_recovery") == {"enabled": True}
    assert block(table, "server_side_encryption")["enabled"] is True


def test_redis_is_a_cluster_mode_group_with_tls_at_rest_encryption_and_a_generated_token(
    tf: Stack,
) -> None:
    group = tf.of("aws_elasticache_replication_group")["redis"]
    assert group["cluster_mode"] == "enabled"
    assert tf.resolve(group["num_node_groups"]) >= 2
    assert group["transit_encryption_enabled"] is True
    assert group["at_rest_encryption_enabled"] is True
    assert group["automatic_failover_enabled"] is True
    assert group["auth_token"] == "${aws_secretsmanager_secret_version.redis_auth.secret_string}"
    assert group["auth_token_update_strategy"] == "ROTATE"
    # Secrets Manager generates the token once; later plans do not replace it.
    secret = tf.of("aws_secretsmanager_secret_version")["redis_auth"]
    generated = "${data.aws_secretsmanager_random_password.redis_auth.random_password}"
    assert secret["secret_string"] == generated
    assert block(secret, "lifecycle")["ignore_changes"] == ["secret_string"]
    assert tf.data["aws_secretsmanager_random_password"]["redis_auth"]["password_length"] >= 32


def test_security_groups_open_only_the_redis_port_between_lambda_and_redis(tf: Stack) -> None:
    ingress = tf.of("aws_vpc_security_group_ingress_rule")
    redis_in = [
        r for r in ingress.values() if r["security_group_id"] == "${aws_security_group.redis.id}"
    ]
    assert len(redis_in) == 1
    assert redis_in[0]["referenced_security_group_id"] == "${aws_security_group.lambda.id}"
    assert redis_in[0]["from_port"] == redis_in[0]["to_port"] == "${var.redis_port}"
    assert not any(rule.get("cidr_ipv4") for rule in ingress.values())
    # Inline rules would hide beside the per-rule resources above: there are none.
    for group in tf.of("aws_security_group").values():
        assert "ingress" not in group and "egress" not in group
    egress = tf.of("aws_vpc_security_group_egress_rule").values()
    assert {(rule["from_port"], rule["to_port"]) for rule in egress} == {
        ("${var.redis_port}", "${var.redis_port}"),
        (443, 443),
    }


def test_the_disconnect_rate_alarm_fires_above_ten_percent_over_five_minutes(tf: Stack) -> None:
    alarm = tf.of("aws_cloudwatch_metric_alarm")["disconnect_rate"]
    assert alarm["threshold"] == 10
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"]
    queries = {query["id"]: query for query in alarm["metric_query"]}
    (returned,) = [q for q in queries.values() if q.get("return_data")]
    assert re.search(r"100 \* FILL\(abnormal, 0\) / connects", returned["expression"])
    for query_id, metric_name in (("abnormal", "AbnormalDisconnects"), ("connects", "Connects")):
        metric = block(queries[query_id], "metric")
        assert metric["metric_name"] == metric_name
        assert tf.resolve(metric["namespace"]) == "TimelineWs"
        assert {k: tf.resolve(v) for k, v in metric["dimensions"].items()} == {
            "service": "timeline-ws"
        }
        assert tf.resolve(metric["period"]) == 300
        assert metric["stat"] == "Sum"


def test_alarms_cover_failovers_lambda_errors_and_integration_errors(tf: Stack) -> None:
    alarms = tf.of("aws_cloudwatch_metric_alarm")
    failovers = alarms["store_failovers"]
    assert (failovers["metric_name"], failovers["threshold"]) == ("StoreFailovers", 0)
    assert failovers["comparison_operator"] == "GreaterThanThreshold"
    errors = alarms["lambda_errors"]
    assert (errors["namespace"], errors["metric_name"]) == ("AWS/Lambda", "Errors")
    assert errors["for_each"] == "${local.lambda_functions}"
    integration = alarms["integration_errors"]
    assert (integration["namespace"], integration["metric_name"]) == (
        "AWS/ApiGateway",
        "IntegrationError",
    )
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == ["${aws_sns_topic.alarms.arn}"], name


def test_alarms_read_the_metric_names_and_dimension_the_handlers_emit(tf: Stack) -> None:
    emitted = {
        node.value.value
        for node in ast.parse(OBSERVABILITY_FILE.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and node.value.value[:1].isupper()
    }
    read: set[str] = set()
    for alarm in tf.of("aws_cloudwatch_metric_alarm").values():
        metrics = [alarm] + [
            block(q, "metric") for q in alarm.get("metric_query", []) if "metric" in q
        ]
        for metric in metrics:
            if tf.resolve(metric.get("namespace")) == "TimelineWs":
                read.add(metric["metric_name"])
                assert {k: tf.resolve(v) for k, v in metric["dimensions"].items()} == {
                    "service": "timeline-ws"
                }
    assert read == {"AbnormalDisconnects", "Connects", "StoreFailovers", "PushFailed"}
    assert read <= emitted, f"alarms read metrics the handlers never name: {read - emitted}"
    # The Lambda environment names the same namespace and service the alarms read.
    assert tf.locals["metrics_namespace"] == "TimelineWs"
    assert tf.locals["metrics_service"] == "timeline-ws"


def test_every_variable_has_a_description_and_only_the_cognito_pool_is_required(tf: Stack) -> None:
    for name, variable in tf.variables.items():
        assert len(variable.get("description", "")) > 15, name
    required = {name for name, variable in tf.variables.items() if "default" not in variable}
    assert required == {"cognito_user_pool_id", "cognito_app_client_ids"}
    example = (PROJECT_ROOT / "infra" / "terraform.tfvars.example").read_text(encoding="utf-8")
    for name in required:
        assert re.search(rf"^{name}\s*=", example, re.M), f"{name} missing from the example"


def test_outputs_give_the_wss_url_and_the_management_api_endpoint(tf: Stack) -> None:
    assert "aws_apigatewayv2_stage.live.invoke_url" in tf.outputs["websocket_url"]["value"]
    assert tf.outputs["management_api_endpoint"]["value"] == "${local.management_api_endpoint}"
    endpoint = tf.locals["management_api_endpoint"]
    assert endpoint.startswith("https://${aws_apigatewayv2_api.websocket.id}.execute-api.")
    assert endpoint.endswith("/${var.stage_name}")


SECRET_NAME = re.compile(r"(password|passwd|secret|token|private_key|access_key|api_key)", re.I)
SECRET_SHAPES = (
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\."),  # a JWT
    re.compile(r"rediss?://[^/\s\"]*:[^@\s\"]+@"),  # a password inside a Redis URL
)
# Attribute paths whose names match SECRET_NAME but hold no secret value.
NOT_SECRETS = re.compile(
    r"(description|_arn|_id|_use|_strategy|override_special|sid|name_prefix)$|\.type$"
)


def test_no_tf_file_holds_a_secret_literal() -> None:
    files = tf_files()
    assert len(files) >= 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        for shape in SECRET_SHAPES:
            assert not shape.search(text), f"{path.name}: looks like a secret ({shape.pattern})"
    for name, document in parsed().items():
        for attribute, value in walk_attributes(document):
            leaf = attribute.rsplit(".", 1)[-1]
            if (
                not isinstance(value, str)
                or not SECRET_NAME.search(leaf)
                or NOT_SECRETS.search(attribute)
            ):
                continue
            # A secret-named attribute may only hold a reference or an empty default.
            assert value == "" or value.startswith("${"), f"{name}: {attribute} = {value!r}"


def test_every_checkov_skip_carries_a_written_justification() -> None:
    skips = []
    for path in tf_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line:
                match = re.search(r"#checkov:skip=(CKV2?_AWS_\d+):(.+)$", line)
                assert match, f"{path.name}: malformed skip {line.strip()!r}"
                assert len(match.group(2).split()) >= 8, (
                    f"{path.name}: thin reason {line.strip()!r}"
                )
                skips.append(match.group(1))
    assert skips, "expected the documented skips (e.g. CKV_AWS_309 on the routes)"


def test_every_resource_block_is_in_the_file_for_its_concern() -> None:
    expected = {
        "api_gateway.tf": "aws_apigatewayv2_",
        "dynamodb.tf": "aws_dynamodb_",
        "elasticache.tf": "aws_elasticache_",
        "cloudwatch.tf": "aws_cloudwatch_metric_alarm",
    }
    documents = parsed()
    for file_name, prefix in expected.items():
        kinds = {kind for block_ in documents[file_name].get("resource", []) for kind in block_}
        assert any(kind.startswith(prefix) for kind in kinds), file_name
        for other, document in documents.items():
            if other == file_name:
                continue
            others = {kind for block_ in document.get("resource", []) for kind in block_}
            assert not any(kind.startswith(prefix) for kind in others), f"{prefix}* in {other}"
