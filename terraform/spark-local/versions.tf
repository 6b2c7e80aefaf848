terraform {
  # Builtin terraform_data only (terraform >= 1.4): no provider to download, runs offline.
  required_version = ">= 1.6.0"
}
