# The reconciler: every minute, replay the deletes a connection store could not take
# (tombstones in DynamoDB for Redis, a pending set in Redis for DynamoDB), so a connection
# closed during an outage leaves no record and no connection-limit slot behind
# (adapters/connection_store/failover.py). The handlers also replay them as soon as their
# circuit breaker closes; this covers outages that end while no handler runs.
# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html

resource "aws_cloudwatch_event_rule" "reconcile" {
  name                = "${local.name}-reconcile"
  description         = "timeline-ws: replay the connection-store deletes an outage left pending"
  schedule_expression = "rate(1 minute)"
}

resource "aws_cloudwatch_event_target" "reconcile" {
  rule = aws_cloudwatch_event_rule.reconcile.name
  arn  = aws_lambda_function.handler["reconcile"].arn
}

resource "aws_lambda_permission" "reconcile" {
  statement_id  = "AllowEventBridgeReconcile"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.handler["reconcile"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reconcile.arn
}
