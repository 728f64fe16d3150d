# One customer managed key for everything this stack encrypts at rest: CloudWatch log
# groups, the Redis AUTH secret, ElastiCache, DynamoDB, the Lambda environment and the SNS
# topic. One key keeps the key policy auditable; services that use it through grants
# (DynamoDB, ElastiCache, Secrets Manager, Lambda) need no statement of their own because
# the account root statement lets IAM policies delegate.
# https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html

resource "aws_kms_key" "main" {
  description             = "${local.name}: logs, secrets, ElastiCache, DynamoDB, Lambda environment, SNS"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  # A key policy: its "*" resource means this key only, and the root statement is AWS's
  # default that lets IAM policies (iam.tf) grant use of the key.
  #checkov:skip=CKV_AWS_109:Key policy; "*" is this key and the principal is this account's root (AWS default key policy).
  #checkov:skip=CKV_AWS_111:Key policy; "*" is this key and the principal is this account's root (AWS default key policy).
  #checkov:skip=CKV_AWS_356:Key policy; "*" is this key and the principal is this account's root (AWS default key policy).

  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"] # "*" in a key policy means this key.

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  # CloudWatch alarms publish to the encrypted SNS topic.
  # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
  statement {
    sid       = "CloudWatchAlarmsToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
