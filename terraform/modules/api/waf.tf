# Optional WAF in front of the stage: an existing web ACL (waf.web_acl_arn), or one this module
# creates with AWS's known-bad-inputs and anonymous-IP managed rules and a rate-based rule per
# source IP (waf.requests_per_ip_per_5_minutes). Twilio's own
# traffic comes from many addresses, so the per-IP limit bounds a single abuser, not Twilio.

locals {
  create_web_acl = var.waf != null && try(var.waf.web_acl_arn, null) == null
  web_acl_arn    = var.waf == null ? null : (local.create_web_acl ? aws_wafv2_web_acl.this[0].arn : var.waf.web_acl_arn)
}

resource "aws_wafv2_web_acl" "this" {
  #checkov:skip=CKV2_AWS_31:WAF logging needs a delivery stream or log group named aws-waf-logs-*, which the account owner chooses.
  count = local.create_web_acl ? 1 : 0

  name        = "${var.name}-api"
  description = "Rate limit per source IP on ${var.name}."
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  # AWS's "known bad inputs" managed rules (exploit payloads such as Log4Shell's) before the limit.
  rule {
    name     = "known-bad-inputs"
    priority = 0

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  # Anonymising proxies and Tor are blocked; hosting providers only counted: Twilio sends its
  # webhooks from cloud addresses, which that rule of the group would block.
  rule {
    name     = "anonymous-ips"
    priority = 1

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAnonymousIpList"
        vendor_name = "AWS"

        rule_action_override {
          name = "HostingProviderIPList"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-anonymous-ips"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-per-ip"
    priority = 2

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf.requests_per_ip_per_5_minutes
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-api"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  count = var.waf == null ? 0 : 1

  resource_arn = aws_api_gateway_stage.this.arn
  web_acl_arn  = local.create_web_acl ? aws_wafv2_web_acl.this[0].arn : var.waf.web_acl_arn
}
