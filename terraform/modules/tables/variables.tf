variable "name" {
  description = "Prefix of every table name, \"<name_prefix>-<workspace>\"."
  type        = string
}

variable "deletion_protection" {
  description = "Refuse DeleteTable on every table (turn on where the data matters)."
  type        = bool
  default     = false
}
