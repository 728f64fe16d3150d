# The push function: other services of the timeline invoke it (Lambda's Invoke API) to post a
# frame to every live connection of some users (README, "Delivering to users"). Same package
# as the route handlers; its own role, log group and alarms, so it holds only what it uses.

locals {
  # Functions other services invoke directly: entrypoints/routes.py FUNCTIONS.
  invoked_handlers = {
    push = {
      route_key = null
      handler   = "entrypoints.aws_lambda.handlers.push_handler"
    }
  }

  push_function_name = "${local.name}-push"
}

resource "aws_cloudwatch_log_group" "push" {
  name              = "/aws/lambda/${local.push_function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn

  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 by default), as for the route handlers' groups: these lines carry user IDs.
}

resource "aws_iam_role" "push" {
  name               = "${local.name}-push"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

data "aws_iam_policy_document" "push" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.push.arn}:*"]
  }

  # PostToConnection only: the push never closes (DELETE) or reads (GET) a connection.
  # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html
  statement {
    sid       = "PostToConnectionsOnThisStage"
    actions   = ["execute-api:ManageConnections"]
    resources = ["${aws_apigatewayv2_api.websocket.execution_arn}/${var.stage_name}/POST/@connections/*"]
  }

  # While Redis is down: the directory queries the userId index; a gone connection's record
  # is deleted, or a tombstone put when the delete must wait for Redis (the failover's rules).
  statement {
    sid       = "FailoverDirectoryAndCleanup"
    actions   = ["dynamodb:Query", "dynamodb:DeleteItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.connections.arn, "${aws_dynamodb_table.connections.arn}/index/*"]
  }

  # The Redis AUTH secret, our KMS key, the VPC ENIs: as every function (iam.tf).
  source_policy_documents = [data.aws_iam_policy_document.lambda_runtime.json]
}

resource "aws_iam_role_policy" "push" {
  name   = "${local.name}-push"
  role   = aws_iam_role.push.id
  policy = data.aws_iam_policy_document.push.json
}

resource "aws_iam_role_policy_attachment" "push_xray" {
  role       = aws_iam_role.push.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

resource "aws_lambda_function" "push" {
  function_name = local.push_function_name
  description   = "timeline-ws push: a message to every live connection of some users"
  role          = aws_iam_role.push.arn

  filename         = local.lambda_package
  source_code_hash = filebase64sha256(local.lambda_package)
  handler          = local.invoked_handlers.push.handler
  runtime          = var.lambda_runtime
  architectures    = [var.lambda_architecture]
  memory_size      = var.lambda_memory_mb
  timeout          = var.push_timeout_seconds

  reserved_concurrent_executions = var.push_reserved_concurrency

  kms_key_arn = aws_kms_key.main.arn

  vpc_config {
    subnet_ids         = aws_subnet.private[*].id
    security_group_ids = [aws_security_group.lambda.id] # the group ElastiCache admits
  }

  tracing_config {
    mode = "Active"
  }

  environment {
    variables = local.lambda_environment
  }

  depends_on = [
    aws_cloudwatch_log_group.push,
    aws_iam_role_policy.push,
    aws_iam_role_policy_attachment.push_xray,
  ]

  #checkov:skip=CKV_AWS_116:Callers invoke the push synchronously and read its result; a dead-letter queue only receives failed asynchronous invocations.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile and a signed S3 artifact; the package is built and hashed by `make package` in CI and deployed by source_code_hash.
}

# Its alarms (failed deliveries, errors) are in cloudwatch.tf with the others.
