terraform {
  # No provider: the module only renders the node environment, so `terraform test` runs offline.
  required_version = ">= 1.6.0"
}
