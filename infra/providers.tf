# Terraform and provider versions. Provider plugins cannot be downloaded on the development
# machines, so `terraform init`/`validate` run only where the registry is reachable (see
# README.md); `terraform fmt -check` and the tests in tests/infra run everywhere.

terraform {
  # 1.9: variable validations that refer to other variables (availability_zones).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.70.0, < 7.0.0"
    }
  }

  # State holds the Redis AUTH token (ElastiCache has no write-only argument for it), so keep
  # it in an encrypted, access-controlled backend. Configure it at `terraform init` time, e.g.
  #   terraform init -backend-config="bucket=..." -backend-config="key=timeline-ws.tfstate" \
  #     -backend-config="region=eu-west-1" -backend-config="encrypt=true" \
  #     -backend-config="use_lockfile=true"
  # after uncommenting:
  # backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}
