# API Gateway WebSocket API: the public face. Clients connect to
#   wss://<api-id>.execute-api.<region>.amazonaws.com/<stage>?token=<JWT>
# or, with a custom domain, wss://<domain>/ws?token=<JWT>. Messages are routed on their
# `action` field; nothing matches it yet, so every message lands on $default.
# The routes, their functions and which are two-way are the table in entrypoints/routes.py;
# tests/infra holds this file to it.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-routes.html

resource "aws_apigatewayv2_api" "websocket" {
  name                       = "${local.name}-ws"
  description                = "timeline-ws: real-time timeline connections"
  protocol_type              = "WEBSOCKET"
  route_selection_expression = "$request.body.action"
}

# --- Integrations: Lambda proxy, one per route ------------------------------------------

resource "aws_apigatewayv2_integration" "connect" {
  api_id             = aws_apigatewayv2_api.websocket.id
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = aws_lambda_function.handler["connect"].invoke_arn
}

resource "aws_apigatewayv2_integration" "disconnect" {
  api_id             = aws_apigatewayv2_api.websocket.id
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = aws_lambda_function.handler["disconnect"].invoke_arn
}

resource "aws_apigatewayv2_integration" "default" {
  api_id             = aws_apigatewayv2_api.websocket.id
  integration_type   = "AWS_PROXY"
  integration_method = "POST"
  integration_uri    = aws_lambda_function.handler["default"].invoke_arn
}

# --- Routes ------------------------------------------------------------------------------
# Authorization is done by the $connect handler itself (Cognito JWT from ?token=, verified
# against the pool's JWKS: core code, with its own tests). WebSocket APIs accept an
# authorizer on $connect only; once connected, the connection is the credential.

resource "aws_apigatewayv2_route" "connect" {
  api_id             = aws_apigatewayv2_api.websocket.id
  route_key          = "$connect"
  authorization_type = "NONE"
  target             = "integrations/${aws_apigatewayv2_integration.connect.id}"

  #checkov:skip=CKV_AWS_309:The $connect handler verifies the Cognito JWT itself (signature, exp, token_use, client_id) and returns 401 (503 when the JWKS is unreachable, 429 over a connection limit); an API Gateway authorizer would duplicate that core logic.
}

resource "aws_apigatewayv2_route" "disconnect" {
  api_id             = aws_apigatewayv2_api.websocket.id
  route_key          = "$disconnect"
  authorization_type = "NONE"
  target             = "integrations/${aws_apigatewayv2_integration.disconnect.id}"

  #checkov:skip=CKV_AWS_309:WebSocket APIs take an authorizer on $connect only; $disconnect belongs to an already authenticated connection.
}

# $default is two-way: the handler's response body (the pong, or an error frame) is the
# message API Gateway sends back to the client, so a ping costs no Management API call.
# Only $default may have a route response, and its key must be $default.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html
resource "aws_apigatewayv2_route" "default" {
  api_id                              = aws_apigatewayv2_api.websocket.id
  route_key                           = "$default"
  authorization_type                  = "NONE"
  target                              = "integrations/${aws_apigatewayv2_integration.default.id}"
  route_response_selection_expression = "$default"

  #checkov:skip=CKV_AWS_309:WebSocket APIs take an authorizer on $connect only; $default messages belong to an already authenticated connection.
}

resource "aws_apigatewayv2_route_response" "default" {
  api_id             = aws_apigatewayv2_api.websocket.id
  route_id           = aws_apigatewayv2_route.default.id
  route_response_key = "$default"
}

# --- Stage -------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${local.name}-ws/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn

  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 by default): these lines carry client IPs, user and connection IDs, so we keep them only as long as debugging needs; raise the variable if your compliance regime asks for a year.
}

resource "aws_apigatewayv2_stage" "live" {
  api_id = aws_apigatewayv2_api.websocket.id
  name   = var.stage_name

  #checkov:skip=CKV2_AWS_51:Clients are browsers and mobile apps authenticating with Cognito JWTs; mutual TLS client certificates do not apply to them.
  description = "timeline-ws ${var.environment}"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttling_rate_limit
    throttling_burst_limit = var.throttling_burst_limit
    # Per-route metrics (Route dimension) for the dashboards and the integration alarm.
    detailed_metrics_enabled = true
    # Execution logs and data trace can echo the $connect request, query string (the
    # token) included, and need an account-wide role: off unless someone opts in.
    logging_level      = var.execution_logging_level
    data_trace_enabled = false
  }

  # One JSON line per request. The format deliberately names only these variables: no
  # query string (it carries the token) and no request override or message body.
  # https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      requestTimeEpoch   = "$context.requestTimeEpoch"
      connectionId       = "$context.connectionId"
      eventType          = "$context.eventType"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      sourceIp           = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      integrationStatus  = "$context.integration.status"
      integrationError   = "$context.integration.error"
      integrationLatency = "$context.integration.latency"
      errorMessage       = "$context.error.message"
      errorResponseType  = "$context.error.responseType"
    })
  }
}

# --- Optional custom domain: wss://<domain>/ws ------------------------------------------

locals {
  custom_domain_enabled = var.custom_domain_name != ""
}

resource "aws_apigatewayv2_domain_name" "ws" {
  count = local.custom_domain_enabled ? 1 : 0

  domain_name = var.custom_domain_name

  domain_name_configuration {
    certificate_arn = var.custom_domain_certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }

  lifecycle {
    precondition {
      condition     = var.custom_domain_certificate_arn != ""
      error_message = "custom_domain_certificate_arn is required when custom_domain_name is set."
    }
  }
}

resource "aws_apigatewayv2_api_mapping" "ws" {
  count = local.custom_domain_enabled ? 1 : 0

  api_id          = aws_apigatewayv2_api.websocket.id
  domain_name     = aws_apigatewayv2_domain_name.ws[0].id
  stage           = aws_apigatewayv2_stage.live.id
  api_mapping_key = "ws"
}

resource "aws_route53_record" "ws" {
  count = local.custom_domain_enabled && var.custom_domain_route53_zone_id != "" ? 1 : 0

  zone_id = var.custom_domain_route53_zone_id
  name    = var.custom_domain_name
  type    = "A"

  alias {
    name                   = aws_apigatewayv2_domain_name.ws[0].domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.ws[0].domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = false
  }
}
