terraform {
  # Builtin terraform_data only (terraform >= 1.4): no provider to download, runs offline.
  # >= 1.6 for terraform test and the cluster module's functions (startswith, strcontains).
  required_version = ">= 1.6.0"
}
