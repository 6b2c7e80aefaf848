# Test harness for the table-driven suite: sizes every flavor of var.flavors with the module under
# test (defaults for every knob) and returns the results keyed like the input table.

terraform {
  required_version = ">= 1.6.0"
}

variable "flavors" {
  description = "Machines to size, keyed by a label: vCPUs and RAM in MiB."
  type = map(object({
    vcpus  = number
    ram_mb = number
  }))
}

module "sizing" {
  source   = "../.."
  for_each = var.flavors

  vcpus  = each.value.vcpus
  ram_mb = each.value.ram_mb
}

output "sizes" {
  description = "The module's outputs per flavor label."
  value = {
    for label, m in module.sizing : label => {
      reserved_mb          = m.reserved_mb
      worker_cores         = m.worker_cores
      worker_memory_mb     = m.worker_memory_mb
      executor_cores       = m.executor_cores
      executors_per_worker = m.executors_per_worker
      executor_memory_mb   = m.executor_memory_mb
      memory_overhead_mb   = m.memory_overhead_mb
      driver_memory_mb     = m.driver_memory_mb
    }
  }
}
