# Alarms, and the SNS topic that wakes the operator.
#
# The custom metrics come from the handlers as CloudWatch Embedded Metric Format log lines
# (Powertools Metrics): namespace POWERTOOLS_METRICS_NAMESPACE, one dimension
# service=POWERTOOLS_SERVICE_NAME. The names below must match the handlers exactly.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

locals {
  metrics_namespace = "TimelineWs"
  metrics_service   = "timeline-ws"
  alarm_period      = 300 # seconds: every alarm looks at 5-minute windows
}

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.main.arn
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email != "" ? 1 : 0

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# Abnormal disconnects (disconnectStatusCode other than 1000/1001) per 100 connects over
# 5 minutes. Below disconnect_rate_min_connects connects the rate reads 0: two dropped
# phones out of three connects are not an incident. Connects with no datapoint at all
# (no traffic) count as not breaching.
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/using-metric-math.html
resource "aws_cloudwatch_metric_alarm" "disconnect_rate" {
  alarm_name          = "${local.name}-abnormal-disconnect-rate"
  alarm_description   = "More than 10% of connections ended abnormally (AbnormalDisconnects / Connects) over 5 minutes: clients are being dropped. Check Redis, the $default handler errors and API Gateway integration errors."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 10
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "disconnect_rate"
    label       = "Abnormal disconnects per 100 connects"
    expression  = "IF(connects >= ${var.disconnect_rate_min_connects}, 100 * FILL(abnormal, 0) / connects, 0)"
    return_data = true
  }

  metric_query {
    id = "abnormal"

    metric {
      namespace   = local.metrics_namespace
      metric_name = "AbnormalDisconnects"
      dimensions  = { service = local.metrics_service }
      period      = local.alarm_period
      stat        = "Sum"
    }
  }

  metric_query {
    id = "connects"

    metric {
      namespace   = local.metrics_namespace
      metric_name = "Connects"
      dimensions  = { service = local.metrics_service }
      period      = local.alarm_period
      stat        = "Sum"
    }
  }
}

# Any write that had to go to DynamoDB because Redis did not answer.
resource "aws_cloudwatch_metric_alarm" "store_failovers" {
  alarm_name          = "${local.name}-store-failovers"
  alarm_description   = "The handlers fell back to the DynamoDB table at least once in 5 minutes: ElastiCache is unreachable or slow. Check the replication group's events and the Lambda-to-Redis security groups."
  namespace           = local.metrics_namespace
  metric_name         = "StoreFailovers"
  dimensions          = { service = local.metrics_service }
  statistic           = "Sum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Unhandled errors (exceptions, timeouts, out of memory) in any handler.
resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = local.lambda_functions

  alarm_name          = "${local.name}-${each.key}-errors"
  alarm_description   = "The ${coalesce(each.value.route_key, each.key)} handler failed (uncaught exception, timeout or out of memory) in the last 5 minutes. Its log group is /aws/lambda/${local.name}-${each.key}."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.handler[each.key].function_name }
  statistic           = "Sum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# API Gateway's count of 4XX/5XX responses from the integrations. Rejected connects (401
# from $connect) are integration 4XXs too, hence a threshold above zero.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-logging.html
resource "aws_cloudwatch_metric_alarm" "integration_errors" {
  alarm_name          = "${local.name}-integration-errors"
  alarm_description   = "API Gateway counted more than ${var.integration_errors_threshold} integration errors in 5 minutes: handlers answer with errors, fail or time out. Check the Lambda error alarms and the access log's integrationError field."
  namespace           = "AWS/ApiGateway"
  metric_name         = "IntegrationError"
  dimensions          = { ApiId = aws_apigatewayv2_api.websocket.id, Stage = aws_apigatewayv2_stage.live.name }
  statistic           = "Sum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.integration_errors_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Posts the push could not deliver (throttled past its retries, or refused): PushFailed, the
# EMF count on the push's INFO line (entrypoints/edge/push.py).
resource "aws_cloudwatch_metric_alarm" "push_failed_deliveries" {
  alarm_name          = "${local.name}-push-failed-deliveries"
  alarm_description   = "The push function failed to deliver at least one message in 5 minutes (API Gateway throttled it past its retries, or refused it). Check the account's API Gateway throttling and the push's log group ${aws_cloudwatch_log_group.push.name}."
  namespace           = local.metrics_namespace
  metric_name         = "PushFailed"
  dimensions          = { service = local.metrics_service }
  statistic           = "Sum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "push_errors" {
  alarm_name          = "${local.name}-push-errors"
  alarm_description   = "The push function failed (uncaught exception, timeout or out of memory) in the last 5 minutes. Its log group is ${aws_cloudwatch_log_group.push.name}."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.push.function_name }
  statistic           = "Sum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
