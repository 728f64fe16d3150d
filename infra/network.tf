# Network: a VPC of our own with private subnets for the Lambda ENIs and ElastiCache, public
# subnets that hold only the NAT gateways, and the endpoints the handlers need.
#
# What the handlers reach, and how:
# - ElastiCache Redis: inside the VPC, security group to security group, Redis's port only.
# - DynamoDB (failover store): the DynamoDB *gateway* endpoint below. Free, and keeps the
#   failover path independent of the NAT gateways.
# - API Gateway Management API (@connections): through NAT. The execute-api *interface*
#   endpoint only serves private REST APIs; our WebSocket API is Regional (the only
#   endpoint type WebSocket APIs have), so its @connections host must be reached over its
#   public endpoint. Worse, creating an execute-api interface endpoint with private DNS
#   enabled makes every *.execute-api.<region>.amazonaws.com name in the VPC resolve to
#   the endpoint, which then answers 403 for public APIs: the Management API calls would
#   break. So we deliberately create no execute-api endpoint.
#   https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-private-apis.html
# - Cognito's JWKS (https://cognito-idp.<region>.amazonaws.com/<pool>/.well-known/jwks.json):
#   through NAT (set COGNITO_JWKS inline to avoid the fetch).
# - Secrets Manager (Redis AUTH token, read on first use of Redis): an interface endpoint with private
#   DNS, so the secret never leaves the AWS network and cold starts don't depend on NAT.
# - CloudWatch Logs / EMF metrics: written by the Lambda service outside our VPC; no
#   endpoint needed.

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # required for interface endpoints' private DNS

  tags = { Name = local.name }
}

# Deny-all default security group, so nothing lands in a permissive one by accident.
resource "aws_default_security_group" "main" {
  vpc_id = aws_vpc.main.id
}

resource "aws_subnet" "private" {
  count = length(local.availability_zones)

  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false

  tags = { Name = "${local.name}-private-${local.availability_zones[count.index]}" }
}

resource "aws_subnet" "public" {
  count = length(local.availability_zones)

  vpc_id                  = aws_vpc.main.id
  availability_zone       = local.availability_zones[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, 240 + count.index)
  map_public_ip_on_launch = false # only the NAT gateways live here, on Elastic IPs

  tags = { Name = "${local.name}-public-${local.availability_zones[count.index]}" }
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id

  tags = { Name = local.name }
}

locals {
  nat_gateway_count = var.nat_gateway_per_az ? length(local.availability_zones) : 1
}

resource "aws_eip" "nat" {
  count  = local.nat_gateway_count
  domain = "vpc"

  tags = { Name = "${local.name}-nat-${count.index}" }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_nat_gateway" "main" {
  count = local.nat_gateway_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = { Name = "${local.name}-${count.index}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id

  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main.id
  }

  tags = { Name = "${local.name}-public" }
}

resource "aws_route_table_association" "public" {
  count = length(local.availability_zones)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  count = length(local.availability_zones)

  vpc_id = aws_vpc.main.id

  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.main[var.nat_gateway_per_az ? count.index : 0].id
  }

  tags = { Name = "${local.name}-private-${local.availability_zones[count.index]}" }
}

resource "aws_route_table_association" "private" {
  count = length(local.availability_zones)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# --- VPC endpoints -----------------------------------------------------------------------

resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${local.region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = { Name = "${local.name}-dynamodb" }
}

resource "aws_vpc_endpoint" "secretsmanager" {
  vpc_id              = aws_vpc.main.id
  service_name        = "com.amazonaws.${local.region}.secretsmanager"
  vpc_endpoint_type   = "Interface"
  private_dns_enabled = true
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]

  tags = { Name = "${local.name}-secretsmanager" }
}

# --- Security groups ---------------------------------------------------------------------
# Rules are separate resources so the Lambda and Redis groups can reference each other.

resource "aws_security_group" "lambda" {
  name        = "${local.name}-lambda"
  description = "timeline-ws Lambda ENIs: out to Redis, HTTPS to AWS APIs; nothing in"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-lambda" }
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "timeline-ws ElastiCache: Redis port from the Lambda group only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-redis" }
}

resource "aws_security_group" "endpoints" {
  name        = "${local.name}-endpoints"
  description = "timeline-ws interface VPC endpoints: HTTPS from the Lambda group only"
  vpc_id      = aws_vpc.main.id

  tags = { Name = "${local.name}-endpoints" }
}

resource "aws_vpc_security_group_egress_rule" "lambda_to_redis" {
  security_group_id            = aws_security_group.lambda.id
  description                  = "Redis (TLS) on ElastiCache"
  referenced_security_group_id = aws_security_group.redis.id
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
}

resource "aws_vpc_security_group_egress_rule" "lambda_https" {
  security_group_id = aws_security_group.lambda.id
  description       = "HTTPS to the Management API, Cognito JWKS (via NAT), DynamoDB and Secrets Manager endpoints"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_lambda" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis (TLS) from the timeline-ws Lambdas"
  referenced_security_group_id = aws_security_group.lambda.id
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_lambda" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the timeline-ws Lambdas"
  referenced_security_group_id = aws_security_group.lambda.id
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
}

# --- Flow logs ---------------------------------------------------------------------------

# Rejected traffic only: enough to debug a security group or spot a probe, without paying
# to log every Redis round trip.
resource "aws_flow_log" "main" {
  vpc_id               = aws_vpc.main.id
  traffic_type         = "REJECT"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.vpc_flow.arn
  iam_role_arn         = aws_iam_role.vpc_flow_logs.arn
}

resource "aws_cloudwatch_log_group" "vpc_flow" {
  name              = "/aws/vpc/${local.name}/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn

  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (30 by default): these lines carry client IPs, user and connection IDs, so we keep them only as long as debugging needs; raise the variable if your compliance regime asks for a year.
}
