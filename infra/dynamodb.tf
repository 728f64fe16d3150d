# DynamoDB failover store: the handlers write here when Redis does not answer
# (FailoverConnectionRepository), with the same record shape plus `expiresAt` (epoch
# seconds) so DynamoDB's TTL sweeps abandoned connections.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html

resource "aws_dynamodb_table" "connections" {
  name         = "${local.name}-connections"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "connectionId"

  attribute {
    name = "connectionId"
    type = "S"
  }

  attribute {
    name = "userId"
    type = "S"
  }

  attribute {
    name = "pendingRedisDelete"
    type = "S"
  }

  # A user's open connections (fan-out, per-user limits).
  global_secondary_index {
    name            = "userId-index"
    hash_key        = "userId"
    projection_type = "ALL"
  }

  # Tombstones: deletes Redis could not take, replayed by the reconciler (sparse: only
  # tombstones carry the attribute).
  global_secondary_index {
    name            = "pendingRedisDelete-index"
    hash_key        = "pendingRedisDelete"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }

  deletion_protection_enabled = var.dynamodb_deletion_protection
}
