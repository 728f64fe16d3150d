# ElastiCache for Redis OSS, cluster mode enabled: the primary connection store.
# TLS in transit (clients connect with rediss://), encryption at rest with our key, and an
# AUTH token generated here, kept in Secrets Manager and read by the handlers at cold start
# (REDIS_AUTH_SECRET_ARN). No token appears in any .tf file or Lambda environment variable.
# https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html

resource "random_password" "redis_auth" {
  # ElastiCache AUTH tokens: 16-128 printable characters, no spaces, no " / @.
  length           = 64
  special          = true
  override_special = "!&#$^<>-"
}

resource "aws_secretsmanager_secret" "redis_auth" {
  name_prefix = "${local.name}-redis-auth-"
  description = "AUTH token of the ${local.name} ElastiCache replication group (the raw token string)."
  kms_key_id  = aws_kms_key.main.arn

  #checkov:skip=CKV2_AWS_57:Rotating an ElastiCache AUTH token takes a coordinated ModifyReplicationGroup (ROTATE then SET) while handlers hold both tokens; README.md documents the manual procedure instead of a rotation Lambda.
}

resource "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id     = aws_secretsmanager_secret.redis_auth.id
  secret_string = random_password.redis_auth.result
}

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${local.name}-redis"
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${local.name}-redis"
  description          = "timeline-ws connection records (ws:connection:{connectionId}, TTL)"

  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  port                 = var.redis_port
  parameter_group_name = "default.redis7.cluster.on"

  # Cluster mode enabled: keys spread over shards; the handlers use a cluster client
  # (REDIS_CLUSTER=true) against the configuration endpoint.
  cluster_mode            = "enabled"
  num_node_groups         = var.redis_shards
  replicas_per_node_group = var.redis_replicas_per_shard

  automatic_failover_enabled = true
  multi_az_enabled           = true

  subnet_group_name  = aws_elasticache_subnet_group.redis.name
  security_group_ids = [aws_security_group.redis.id]

  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.main.arn
  auth_token                 = random_password.redis_auth.result
  # A new token is added beside the old one (both accepted) until a later SET: running
  # handlers keep working through a rotation. See README.md, "Rotating the Redis AUTH token".
  auth_token_update_strategy = "ROTATE"

  auto_minor_version_upgrade = true
  maintenance_window         = "sun:03:00-sun:04:00"
  apply_immediately          = false

  #checkov:skip=CKV_AWS_134:Connection records live at most CONNECTION_TTL_SECONDS (10 min); a restored snapshot would only hold dead connections, so backups are off on purpose.
}
