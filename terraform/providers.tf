locals {
  emulated = var.aws_endpoint_url != null
  # DynamoDB may answer elsewhere than the rest of the emulator (DynamoDB Local under moto).
  dynamodb_endpoint = var.aws_dynamodb_endpoint_url != null ? var.aws_dynamodb_endpoint_url : var.aws_endpoint_url
}

provider "aws" {
  region = var.aws_region

  # Local cloud (moto server, LocalStack): credentials are fake, there is no instance metadata
  # service, and emulators serve S3 path-style.
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  s3_use_path_style           = local.emulated

  # Every service this configuration calls moves to the emulator together (null keeps AWS);
  # DynamoDB to its own endpoint when the emulator has one.
  endpoints {
    apigateway     = var.aws_endpoint_url
    cloudwatch     = var.aws_endpoint_url
    dynamodb       = local.dynamodb_endpoint
    events         = var.aws_endpoint_url
    iam            = var.aws_endpoint_url
    kms            = var.aws_endpoint_url
    lambda         = var.aws_endpoint_url
    logs           = var.aws_endpoint_url
    secretsmanager = var.aws_endpoint_url
    sns            = var.aws_endpoint_url
    sqs            = var.aws_endpoint_url
    sts            = var.aws_endpoint_url
    wafv2          = var.aws_endpoint_url
  }

  default_tags {
    tags = {
      Project   = var.name_prefix
      Workspace = terraform.workspace
      ManagedBy = "terraform"
    }
  }
}
