# tflint configuration for users who have it (`tflint --init && tflint --recursive`).
# CI here runs terraform fmt/validate and checkov instead.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}

plugin "aws" {
  enabled = true
  version = "0.38.0"
  source  = "github.com/terraform-linters/tflint-ruleset-aws"
}
