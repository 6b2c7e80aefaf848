variable "deployment_name" {
  description = "The deployment's NAME (deployments/NAME/OWNER), e.g. spark. Injected by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.deployment_name))
    error_message = "deployment_name must start with a lowercase letter or digit and hold only lowercase letters, digits, '_', '.' and '-' (as deployments/NAME/OWNER folders do)."
  }
}

variable "deployment_owner" {
  description = "The deployment's OWNER (deployments/NAME/OWNER), e.g. ld14. Injected by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.deployment_owner))
    error_message = "deployment_owner must start with a lowercase letter or digit and hold only lowercase letters, digits, '_', '.' and '-' (as deployments/NAME/OWNER folders do)."
  }
}

variable "worker_count" {
  description = "Number of workers, 0 to 999; they are numbered with three digits (worker-001 .. worker-999) whatever the count, so adding workers never renames one."
  type        = number
  nullable    = false

  validation {
    condition     = var.worker_count == floor(var.worker_count) && var.worker_count >= 0 && var.worker_count <= 999
    error_message = "worker_count must be a whole number from 0 to 999 (worker names have three digits: worker-001 .. worker-999)."
  }
}

variable "image_name" {
  description = "Name of the image definition the nodes boot (images/NAME/VERSION), recorded in metadata; empty when unknown."
  type        = string
  default     = ""
  nullable    = false
}

variable "image_version" {
  description = "Version of the image definition the nodes boot, recorded in metadata; empty when unknown."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.image_version == "" || can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.image_version))
    error_message = "image_version must be empty or MAJOR.MINOR.PATCH, e.g. 1.0.0."
  }
}
