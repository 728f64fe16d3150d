# Inputs. Every variable has a description and, where a safe one exists, a default;
# terraform.tfvars.example lists the ones an operator usually sets.

variable "aws_region" {
  description = "AWS Region to deploy into, e.g. eu-west-1."
  type        = string
  default     = "eu-west-1"
}

variable "project" {
  description = "Name prefix for every resource."
  type        = string
  default     = "timeline-ws"
}

variable "environment" {
  description = "Environment name (dev, staging, prod); part of every resource name."
  type        = string
  default     = "dev"
}

variable "tags" {
  description = "Extra tags for every resource (merged over Project/Environment/ManagedBy)."
  type        = map(string)
  default     = {}
}

# --- API Gateway -------------------------------------------------------------------------

variable "stage_name" {
  description = "API Gateway stage name; part of the execute-api URL and of the @connections ARNs."
  type        = string
  default     = "live"
}

variable "throttling_rate_limit" {
  description = "Steady-state requests per second allowed on every route (stage default_route_settings)."
  type        = number
  default     = 500
}

variable "throttling_burst_limit" {
  description = "Burst of requests allowed on every route (stage default_route_settings)."
  type        = number
  default     = 1000
}

variable "execution_logging_level" {
  description = "API Gateway execution logging: OFF, ERROR or INFO. Anything but OFF needs the account-wide API Gateway CloudWatch Logs role to exist already; INFO can echo request details, so keep OFF unless debugging."
  type        = string
  default     = "OFF"

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.execution_logging_level)
    error_message = "execution_logging_level must be OFF, ERROR or INFO."
  }
}

variable "custom_domain_name" {
  description = "Optional custom domain (e.g. realtime.example.com). When set the public URL is wss://<domain>/ws (API mapping key `ws`). Empty: use the execute-api URL."
  type        = string
  default     = ""
}

variable "custom_domain_certificate_arn" {
  description = "ACM certificate ARN for custom_domain_name, in the same Region as the API (required when custom_domain_name is set)."
  type        = string
  default     = ""
}

variable "custom_domain_route53_zone_id" {
  description = "Optional Route 53 hosted zone ID; when set with custom_domain_name, an alias A record is created for the domain."
  type        = string
  default     = ""
}

# --- Lambda ------------------------------------------------------------------------------

variable "lambda_package_path" {
  description = "Path to the zip built by `make package`: absolute, or relative to this directory."
  type        = string
  default     = "../dist/timeline-ws-lambda.zip"
}

variable "lambda_runtime" {
  description = "Lambda runtime; must match the --python-version `make package` built for (LAMBDA_PYTHON)."
  type        = string
  default     = "python3.13"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.12 or python3.13."
  }
}

variable "lambda_architecture" {
  description = "Lambda instruction set; must match the platform `make package` built for (LAMBDA_ARCH)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory (MB) for each handler; CPU scales with it, which shortens TLS handshakes at cold start."
  type        = number
  default     = 512
}

variable "lambda_timeout_seconds" {
  description = "Timeout (seconds) for each handler. API Gateway waits at most 29 s for an integration."
  type        = number
  default     = 10
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency per handler. Caps the Redis connections Lambda can open (each environment keeps one connection per shard) and keeps a connect storm from starving the account; -1 disables the reservation."
  type        = number
  default     = 100
}

variable "log_level" {
  description = "LOG_LEVEL for the handlers (DEBUG, INFO, WARNING, ERROR)."
  type        = string
  default     = "INFO"
}

variable "log_sample_rate" {
  description = "POWERTOOLS_LOGGER_SAMPLE_RATE: the share of invocations (0 to 1) that log at DEBUG, which is where a successful pong's line goes. 0.01 keeps a sample of pongs without one log line per ping."
  type        = number
  default     = 0.01

  validation {
    condition     = var.log_sample_rate >= 0 && var.log_sample_rate <= 1
    error_message = "log_sample_rate must be within 0..1."
  }
}

variable "log_retention_days" {
  description = "Retention (days) of the Lambda, API Gateway access and VPC flow log groups."
  type        = number
  default     = 30
}

variable "connection_ttl_seconds" {
  description = "CONNECTION_TTL_SECONDS: lifetime of a connection record without a heartbeat."
  type        = number
  default     = 600
}

variable "redis_connect_timeout_seconds" {
  description = "REDIS_CONNECT_TIMEOUT_SECONDS: how long a handler waits to open a Redis connection before failing over."
  type        = number
  default     = 0.5
}

variable "redis_read_timeout_seconds" {
  description = "REDIS_READ_TIMEOUT_SECONDS: how long a handler waits for a Redis reply before failing over."
  type        = number
  default     = 0.25
}

variable "connection_limit_global" {
  description = "CONNECTION_LIMIT_GLOBAL: most open connections across the service; $connect answers 429 beyond it. Size it for production traffic."
  type        = number
  default     = 1000
}

variable "connection_limit_per_user" {
  description = "CONNECTION_LIMIT_PER_USER: most open connections one userId may hold (tabs, devices)."
  type        = number
  default     = 10
}

variable "redis_breaker_fail_max" {
  description = "REDIS_BREAKER_FAIL_MAX: consecutive Redis failures after which a handler stops trying Redis and uses the DynamoDB table."
  type        = number
  default     = 3
}

variable "redis_breaker_reset_seconds" {
  description = "REDIS_BREAKER_RESET_SECONDS: how long the breaker stays open before a handler tries Redis again."
  type        = number
  default     = 10
}

variable "dynamodb_breaker_fail_max" {
  description = "DYNAMODB_BREAKER_FAIL_MAX: consecutive DynamoDB failures after which a handler skips the table while Redis answers."
  type        = number
  default     = 3
}

variable "dynamodb_breaker_reset_seconds" {
  description = "DYNAMODB_BREAKER_RESET_SECONDS: how long DynamoDB's breaker stays open before a handler tries the table again."
  type        = number
  default     = 10
}

# --- Cognito -----------------------------------------------------------------------------

variable "cognito_user_pool_id" {
  description = "COGNITO_USER_POOL_ID of the pool that issues the clients' JWTs, e.g. eu-west-1_AbCdEf123."
  type        = string
}

variable "cognito_region" {
  description = "COGNITO_REGION of the user pool; empty means aws_region."
  type        = string
  default     = ""
}

variable "cognito_app_client_ids" {
  description = "COGNITO_APP_CLIENT_IDS: app client IDs whose tokens are accepted (client_id / aud claim)."
  type        = list(string)
}

variable "cognito_token_use" {
  description = "COGNITO_TOKEN_USE: which Cognito token the clients send, access or id."
  type        = string
  default     = "access"

  validation {
    condition     = contains(["access", "id"], var.cognito_token_use)
    error_message = "cognito_token_use must be access or id."
  }
}

variable "cognito_jwks_url" {
  description = "COGNITO_JWKS_URL override; empty lets the handlers derive the user pool's well-known JWKS URL."
  type        = string
  default     = ""
}

variable "cognito_jwks" {
  description = "COGNITO_JWKS: optional inline JWKS JSON (the pool's public keys), which spares the cold-start fetch. Lambda environments are limited to 4 KB in total."
  type        = string
  default     = ""
}

# --- Network -----------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC created for the Lambdas and ElastiCache."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability Zones (names, in aws_region) for the subnets, Redis replicas and Lambda ENIs: 2 or 3. Listed explicitly so the set never shifts when AWS adds or impairs a zone."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b"]

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "List 2 or 3 Availability Zones."
  }

  validation {
    condition     = alltrue([for zone in var.availability_zones : startswith(zone, var.aws_region)])
    error_message = "Every Availability Zone must belong to aws_region."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per AZ (true, survives an AZ outage) or a single shared one (false, cheaper). The Lambdas need NAT to reach the Management API and Cognito's JWKS."
  type        = bool
  default     = true
}

# --- ElastiCache -------------------------------------------------------------------------

variable "redis_engine_version" {
  description = "ElastiCache Redis OSS engine version (7.x: the replication group uses default.redis7.cluster.on)."
  type        = string
  default     = "7.1"

  validation {
    condition     = startswith(var.redis_engine_version, "7.")
    error_message = "redis_engine_version must be a 7.x version (parameter group default.redis7.cluster.on)."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.t4g.small"
}

variable "redis_shards" {
  description = "Number of shards (node groups) in cluster mode."
  type        = number
  default     = 2
}

variable "redis_replicas_per_shard" {
  description = "Replicas per shard (at least 1 for automatic failover and Multi-AZ)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replicas_per_shard >= 1
    error_message = "At least one replica per shard is needed for automatic failover."
  }
}

variable "redis_port" {
  description = "Port Redis listens on; the only port the security groups open."
  type        = number
  default     = 6379
}

# --- DynamoDB ----------------------------------------------------------------------------

variable "dynamodb_deletion_protection" {
  description = "Deletion protection on the failover table (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

# --- Alarms ------------------------------------------------------------------------------

variable "alarm_email" {
  description = "Optional e-mail address subscribed to the alarm topic (confirm the subscription mail)."
  type        = string
  default     = ""
}

variable "disconnect_rate_min_connects" {
  description = "Connects in the 5-minute window below which the disconnect-rate alarm stays quiet (a handful of connections is too few for a rate)."
  type        = number
  default     = 20
}

variable "integration_errors_threshold" {
  description = "Alarm when API Gateway counts more integration errors than this in 5 minutes. Rejected connects (401/429/503 from $connect) count too, hence not zero."
  type        = number
  default     = 25
}

variable "push_timeout_seconds" {
  description = "Timeout (seconds) of the push function: at most 100 users (a few thousand posts, 10 in flight) and the throttling retries fit well inside 30 s."
  type        = number
  default     = 30
}

variable "push_reserved_concurrency" {
  description = "Reserved concurrency of the push function. Ten concurrent pushes of 10 posts in flight stay under API Gateway's account rate of 10,000 requests/s shared with @connections; -1 disables the reservation."
  type        = number
  default     = 10
}
