variable "name" {
  description = "Prefix of the layer name, which is \"<name>-shared\"."
  type        = string
}

variable "description" {
  description = "Layer description."
  type        = string
  default     = "Shared ai_comms package and its pinned dependencies."
}

variable "filename" {
  description = "Path of the prebuilt layer zip (content under python/)."
  type        = string
}

variable "compatible_runtimes" {
  description = "Runtimes the bundled wheels were built for."
  type        = list(string)
  default     = ["python3.12"]
}

variable "compatible_architectures" {
  description = "Architectures the bundled wheels were built for."
  type        = list(string)
  default     = ["x86_64"]
}
