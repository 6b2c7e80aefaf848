terraform {
  # Provider-free: the user-data is rendered with yamlencode, so `terraform test` runs offline.
  required_version = ">= 1.6.0"
}
