# timeline-ws on AWS: API Gateway WebSocket API -> three Lambda functions ($connect,
# $disconnect, $default) -> ElastiCache Redis (cluster mode), with a DynamoDB table as the
# failover store and CloudWatch alarms to an SNS topic.
#
# Files by concern: api_gateway.tf, lambda.tf, schedule.tf, iam.tf, network.tf,
# elasticache.tf, dynamodb.tf, cloudwatch.tf, kms.tf; variables.tf and outputs.tf are the
# interface.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.aws_region

  tags = merge(
    {
      Project     = var.project
      Environment = var.environment
      ManagedBy   = "terraform"
    },
    var.tags,
  )

  # One Lambda function per WebSocket route. The handler strings must name the Python
  # callables exactly (tests/infra checks them against entrypoints/aws_lambda/handlers.py).
  lambda_handlers = {
    connect = {
      route_key = "$connect"
      handler   = "entrypoints.aws_lambda.handlers.connect_handler"
    }
    disconnect = {
      route_key = "$disconnect"
      handler   = "entrypoints.aws_lambda.handlers.disconnect_handler"
    }
    default = {
      route_key = "$default"
      handler   = "entrypoints.aws_lambda.handlers.default_handler"
    }
  }

  # Functions no route invokes: the reconciler, every minute (schedule.tf), replays the
  # deletes a connection store could not take.
  scheduled_handlers = {
    reconcile = {
      route_key = null
      handler   = "entrypoints.aws_lambda.handlers.reconcile_handler"
    }
  }

  lambda_functions = merge(local.lambda_handlers, local.scheduled_handlers)

  availability_zones = var.availability_zones

  # The endpoint the handlers call for @connections (POST a pong, DELETE a connection).
  # The execute-api host works whether or not a custom domain is mapped, so the handlers
  # never have to derive it from the event's domainName and stage.
  management_api_endpoint = "https://${aws_apigatewayv2_api.websocket.id}.execute-api.${local.region}.amazonaws.com/${var.stage_name}"
}
