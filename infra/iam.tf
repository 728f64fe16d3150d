# Least-privilege roles. The handlers share one execution role: they are one program
# (one container, one failover repository) and every statement below is scoped to this
# stack's own resources.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${local.name}-lambda"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

locals {
  # @connections ARNs: arn:aws:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/@connections/<connectionId>
  # The handlers POST (PostToConnection: pong) and DELETE (DeleteConnection: close); they
  # never GET a connection's state, so GET is not granted.
  # https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-control-access-iam.html
  manage_connections_arns = [
    for method in ["POST", "DELETE"] :
    "${aws_apigatewayv2_api.websocket.execution_arn}/${var.stage_name}/${method}/@connections/*"
  ]
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.lambda : "${group.arn}:*"]
  }

  statement {
    sid       = "ManageConnectionsOnThisStage"
    actions   = ["execute-api:ManageConnections"]
    resources = local.manage_connections_arns
  }

  statement {
    sid = "FailoverTableAndIndex"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
    ]
    resources = [
      aws_dynamodb_table.connections.arn,
      "${aws_dynamodb_table.connections.arn}/index/*",
    ]
  }

  source_policy_documents = [data.aws_iam_policy_document.lambda_runtime.json]
}

# What every function of this stack needs to run at all, whatever it does: the Redis AUTH
# secret, our KMS key through our services, and the ENIs of a VPC function. The route
# handlers' policy and the push's (push.tf) both include it.
data "aws_iam_policy_document" "lambda_runtime" {
  statement {
    sid       = "ReadRedisAuthToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.redis_auth.arn]
  }

  # The secret, the Lambda environment and the table use our customer managed key.
  statement {
    sid       = "DecryptThroughOurServices"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "secretsmanager.${local.region}.amazonaws.com",
        "lambda.${local.region}.amazonaws.com",
        "dynamodb.${local.region}.amazonaws.com",
      ]
    }
  }

  # Lambda creates and deletes the ENIs of a VPC function with the execution role.
  # Describe* has no resource-level permissions; the mutating actions are scoped to this
  # account's network interfaces and our subnets and security group.
  # https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#configuration-vpc-permissions
  statement {
    sid = "DescribeNetworking"
    actions = [
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSubnets",
      "ec2:DescribeSecurityGroups",
    ]
    resources = ["*"]
  }

  statement {
    sid     = "ManageVpcEnis"
    actions = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
    resources = concat(
      ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"],
      [for subnet in aws_subnet.private : subnet.arn],
      [aws_security_group.lambda.arn],
    )
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "${local.name}-lambda"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# X-Ray segments (tracing_config Active): the managed write-only policy.
resource "aws_iam_role_policy_attachment" "lambda_xray" {
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# --- VPC flow logs -----------------------------------------------------------------------

data "aws_iam_policy_document" "vpc_flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "vpc_flow_logs" {
  name               = "${local.name}-vpc-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.vpc_flow_logs_assume.json
}

data "aws_iam_policy_document" "vpc_flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.vpc_flow.arn}:*"]
  }
}

resource "aws_iam_role_policy" "vpc_flow_logs" {
  name   = "${local.name}-vpc-flow-logs"
  role   = aws_iam_role.vpc_flow_logs.id
  policy = data.aws_iam_policy_document.vpc_flow_logs.json
}
