# The shared package and its pinned third-party dependencies, as one layer every function loads.
# The zip is built outside Terraform for cp312 manylinux x86_64, hence the fixed runtime and
# architecture.

resource "aws_lambda_layer_version" "this" {
  layer_name               = "${var.name}-shared"
  description              = var.description
  filename                 = var.filename
  source_code_hash         = filebase64sha256(var.filename)
  compatible_runtimes      = var.compatible_runtimes
  compatible_architectures = var.compatible_architectures
}
