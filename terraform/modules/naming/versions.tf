terraform {
  # Provider-free: names are string functions, so `terraform test` runs offline.
  required_version = ">= 1.6.0"
}
