terraform {
  # Provider-free: the root module terraform/spark/ feeds it what OpenStack knows (flavor sizes,
  # port addresses, subnet); everything derived from those is computed here, where
  # `terraform test` and tests/terraform/ can run it offline with 100 workers.
  required_version = ">= 1.6.0"
}
