# The three handlers: one function per WebSocket route, all from the same package
# (`make package` -> dist/timeline-ws-lambda.zip), differing only in the handler callable.

locals {
  # lambda_package_path may be absolute, or relative to this directory.
  lambda_package = startswith(var.lambda_package_path, "/") ? var.lambda_package_path : "${path.module}/${var.lambda_package_path}"

  # The container's configuration (entrypoints/settings.py), the same for every function. No
  # secret here: REDIS_URL carries no password; the handlers fetch the Redis AUTH token
  # from Secrets Manager on first use of Redis (REDIS_AUTH_SECRET_ARN). Optional settings
  # are left out rather than set empty, so "unset" has one meaning.
  lambda_environment = merge(
    {
      REDIS_URL                      = "rediss://${aws_elasticache_replication_group.redis.configuration_endpoint_address}:${var.redis_port}"
      REDIS_CLUSTER                  = "true"
      REDIS_AUTH_SECRET_ARN          = aws_secretsmanager_secret.redis_auth.arn
      REDIS_CONNECT_TIMEOUT_SECONDS  = tostring(var.redis_connect_timeout_seconds)
      REDIS_READ_TIMEOUT_SECONDS     = tostring(var.redis_read_timeout_seconds)
      COGNITO_REGION                 = var.cognito_region != "" ? var.cognito_region : var.aws_region
      COGNITO_USER_POOL_ID           = var.cognito_user_pool_id
      COGNITO_APP_CLIENT_IDS         = join(",", var.cognito_app_client_ids)
      COGNITO_TOKEN_USE              = var.cognito_token_use
      CONNECTION_TTL_SECONDS         = tostring(var.connection_ttl_seconds)
      CONNECTION_LIMIT_GLOBAL        = tostring(var.connection_limit_global)
      CONNECTION_LIMIT_PER_USER      = tostring(var.connection_limit_per_user)
      REDIS_BREAKER_FAIL_MAX         = tostring(var.redis_breaker_fail_max)
      REDIS_BREAKER_RESET_SECONDS    = tostring(var.redis_breaker_reset_seconds)
      DYNAMODB_BREAKER_FAIL_MAX      = tostring(var.dynamodb_breaker_fail_max)
      DYNAMODB_BREAKER_RESET_SECONDS = tostring(var.dynamodb_breaker_reset_seconds)
      MANAGEMENT_API_ENDPOINT        = local.management_api_endpoint
      CONNECTIONS_TABLE              = aws_dynamodb_table.connections.name
      LOG_LEVEL                      = var.log_level
      POWERTOOLS_LOGGER_SAMPLE_RATE  = tostring(var.log_sample_rate)
      POWERTOOLS_SERVICE_NAME        = local.metrics_service
      POWERTOOLS_METRICS_NAMESPACE   = local.metrics_namespace
    },
    var.cognito_jwks_url != "" ? { COGNITO_JWKS_URL = var.cognito_jwks_url } : {},
    var.cognito_jwks != "" ? { COGNITO_JWKS = var.cognito_jwks } : {},
  )
}

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.lambda_functions

  # The name Lambda writes to by default; created here so retention and encryption apply
  # from the first invocation.
  name              = "/aws/lambda/${local.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn

  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 by default): these lines carry client IPs, user and connection IDs, so we keep them only as long as debugging needs; raise the variable if your compliance regime asks for a year.
}

resource "aws_lambda_function" "handler" {
  for_each = local.lambda_functions

  function_name = "${local.name}-${each.key}"
  description   = each.value.route_key != null ? "timeline-ws ${each.value.route_key} handler" : "timeline-ws ${each.key} (scheduled)"
  role          = aws_iam_role.lambda.arn

  filename         = local.lambda_package
  source_code_hash = filebase64sha256(local.lambda_package)
  handler          = each.value.handler
  runtime          = var.lambda_runtime
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_mb
  timeout          = var.lambda_timeout_seconds

  reserved_concurrent_executions = var.lambda_reserved_concurrency

  kms_key_arn = aws_kms_key.main.arn

  vpc_config {
    subnet_ids         = aws_subnet.private[*].id
    security_group_ids = [aws_security_group.lambda.id]
  }

  tracing_config {
    mode = "Active"
  }

  # The container's configuration (entrypoints/), typed and validated at cold start:
  # local.lambda_environment (below), shared with the push function (push.tf).
  environment {
    variables = local.lambda_environment
  }

  depends_on = [
    aws_cloudwatch_log_group.lambda,
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.lambda_xray,
  ]

  #checkov:skip=CKV_AWS_116:API Gateway invokes these functions synchronously; a dead-letter queue only receives failed asynchronous invocations.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed S3 artifact; the package is built and hashed by `make package` in CI and deployed by source_code_hash.
}

# API Gateway may invoke each function, only from its own route on this API's stage.
# Source ARN form: arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<route-key>
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html

resource "aws_lambda_permission" "connect" {
  statement_id  = "AllowApiGatewayConnect"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.handler["connect"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.websocket.execution_arn}/${aws_apigatewayv2_stage.live.name}/$connect"
}

resource "aws_lambda_permission" "disconnect" {
  statement_id  = "AllowApiGatewayDisconnect"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.handler["disconnect"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.websocket.execution_arn}/${aws_apigatewayv2_stage.live.name}/$disconnect"
}

resource "aws_lambda_permission" "default" {
  statement_id  = "AllowApiGatewayDefault"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.handler["default"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.websocket.execution_arn}/${aws_apigatewayv2_stage.live.name}/$default"
}
