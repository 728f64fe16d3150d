# DynamoDB failover store: the handlers write here when Redis does not answer
# (FailoverConnectionRepository), with the same record shape plus `expiresAt` (epoch
# seconds) so DynamoDB's TTL sweeps abandoned connections.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html

locals {
  # The table's schema, once, in DynamoDB's CreateTable shape: `timeline-ws serve` creates
  # its local table from the same file (entrypoints/local_gateway/dynamodb_table.py).
  connections_table = jsondecode(file("${path.module}/../adapters/connection_store/connections_table.json"))
}

resource "aws_dynamodb_table" "connections" {
  name         = "${local.name}-connections"
  billing_mode = local.connections_table.BillingMode
  hash_key     = local.connections_table.KeySchema[0].AttributeName

  dynamic "attribute" {
    for_each = local.connections_table.AttributeDefinitions
    content {
      name = attribute.value.AttributeName
      type = attribute.value.AttributeType
    }
  }

  # userId-index: a user's open connections (fan-out, per-user limits). pendingRedisDelete-
  # index: tombstones, deletes Redis could not take, replayed by the reconciler (sparse:
  # only tombstones carry the attribute).
  dynamic "global_secondary_index" {
    for_each = local.connections_table.GlobalSecondaryIndexes
    content {
      name            = global_secondary_index.value.IndexName
      hash_key        = global_secondary_index.value.KeySchema[0].AttributeName
      projection_type = global_secondary_index.value.Projection.ProjectionType
    }
  }

  ttl {
    attribute_name = local.connections_table.TimeToLiveAttribute
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
