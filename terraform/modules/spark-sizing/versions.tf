terraform {
  # terraform test with expect_failures on outputs: terraform >= 1.6 (OpenTofu >= 1.6 too).
  # No provider: everything here is pure arithmetic, so `terraform test` runs offline.
  required_version = ">= 1.6.0"
}
