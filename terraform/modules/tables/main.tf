# The DynamoDB tables of the engine. On-demand billing because traffic is bursty and small;
# PITR and server-side encryption (AWS-owned KMS key for DynamoDB) on every table.

resource "aws_dynamodb_table" "company_data" {
  #checkov:skip=CKV_AWS_119:AWS-managed DynamoDB encryption is used; a customer-managed KMS key is an optional hardening for users.
  name                        = "${var.name}-company-data"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "company_id"
  range_key                   = "project_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "company_id"
    type = "S"
  }

  attribute {
    name = "project_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "conversations" {
  #checkov:skip=CKV_AWS_119:AWS-managed DynamoDB encryption is used; a customer-managed KMS key is an optional hardening for users.
  name                        = "${var.name}-conversations"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "recipient_tel"
  range_key                   = "conversation_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "recipient_tel"
    type = "S"
  }

  attribute {
    name = "conversation_id"
    type = "S"
  }

  attribute {
    name = "channel_created_at"
    type = "S"
  }

  attribute {
    name = "tenant_status"
    type = "S"
  }

  attribute {
    name = "last_activity_at"
    type = "S"
  }

  # The webhook finds the latest conversation between one customer and one company address with a
  # single Query: same partition (recipient_tel), sort key "<company_address>#<created_at>".
  # An LSI (not a GSI) keeps that read strongly consistent.
  local_secondary_index {
    name            = "by-company-address"
    range_key       = "channel_created_at"
    projection_type = "ALL"
  }

  # The conversations API lists a tenant's conversations in one status, latest activity first:
  # "<company>#<project>#<status>", written with every status change. Only what a listing shows is
  # projected, so the index write each message causes (last_activity_at moves) stays small.
  global_secondary_index {
    name               = local.conversations_indexes.by_tenant_status
    hash_key           = "tenant_status"
    range_key          = "last_activity_at"
    projection_type    = "INCLUDE"
    non_key_attributes = ["channel", "customer_address", "handoff_reason"]
  }

  # A conversation found by its id alone (the API's paths). Keys only, and its key never changes:
  # one index write per conversation, when it is created.
  global_secondary_index {
    name            = local.conversations_indexes.by_conversation_id
    hash_key        = "conversation_id"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

# One item per message, keyed (conversation_id, position) so a conversation reads in order with one
# Query and the customer messages after answered_seq are one key range. Its stream is the outbox:
# the relay publishes each new customer message's event from it (NEW_IMAGE: the relay needs only
# the new item). Messages expire through expires_at like the conversations.
resource "aws_dynamodb_table" "messages" {
  #checkov:skip=CKV_AWS_119:AWS-managed DynamoDB encryption is used; a customer-managed KMS key is an optional hardening for users.
  name                        = "${var.name}-messages"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "conversation_id"
  range_key                   = "position"
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = true
  stream_view_type            = "NEW_IMAGE"

  attribute {
    name = "conversation_id"
    type = "S"
  }

  attribute {
    name = "position"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

# Consent per (company address, customer address), outside any conversation and with no TTL: an
# opt-out must outlive every conversation. Each change is an item of its own beside the state
# ("<customer address>#<when>#<what>"), so one Query per company address exports it all.
resource "aws_dynamodb_table" "consent" {
  #checkov:skip=CKV_AWS_119:AWS-managed DynamoDB encryption is used; a customer-managed KMS key is an optional hardening for users.
  name                        = "${var.name}-consent"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "company_address"
  range_key                   = "customer_address"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "company_address"
    type = "S"
  }

  attribute {
    name = "customer_address"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

# Powertools idempotency persistence layer (and the webhook's MessageSid claims); records expire
# through "expiration".
resource "aws_dynamodb_table" "idempotency" {
  #checkov:skip=CKV_AWS_119:AWS-managed DynamoDB encryption is used; a customer-managed KMS key is an optional hardening for users.
  name                        = "${var.name}-idempotency"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "id"
    type = "S"
  }

  ttl {
    attribute_name = "expiration"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

locals {
  # The names the outputs build the index ARNs from: the table's own global_secondary_index set is
  # not read back with its names by every emulator (DynamoDB Local behind moto answers it blank).
  conversations_indexes = {
    by_tenant_status   = "by-tenant-status"
    by_conversation_id = "by-conversation-id"
  }
}
