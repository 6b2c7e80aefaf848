# Table-driven: real OpenStack flavor shapes from 2 vCPU / 4 GiB to 64 vCPU / 512 GiB (m1.medium,
# m1.large, m1.xlarge and the memory-heavy and many-core shapes of research clouds), sized with the
# default reservations. Expected values were worked out by hand from the formula in main.tf
# (e.g. 2 vCPU / 4096 MiB: reserved 1024 + floor(4096 * 0.05) + 1024 = 2252, worker 1844,
# one 2-core executor, heap min(floor(1844 / 1.1), 1844 - 384) = 1460, overhead 384).
# tests/terraform/test_node_system_mode.py reads this table too: for every flavor here, Spark's
# ports and the security group's rules must agree (executors pin no port; 64 vCPUs run 16).

variables {
  expected = {
    "2c-4g"    = { vcpus = 2, ram_mb = 4096, worker_cores = 2, worker_memory_mb = 1844, executor_cores = 2, executors = 1, executor_memory_mb = 1460, memory_overhead_mb = 384, driver_memory_mb = 1475 }
    "2c-8g"    = { vcpus = 2, ram_mb = 8192, worker_cores = 2, worker_memory_mb = 5735, executor_cores = 2, executors = 1, executor_memory_mb = 5213, memory_overhead_mb = 522, driver_memory_mb = 4588 }
    "4c-8g"    = { vcpus = 4, ram_mb = 8192, worker_cores = 4, worker_memory_mb = 5735, executor_cores = 4, executors = 1, executor_memory_mb = 5213, memory_overhead_mb = 522, driver_memory_mb = 4588 }
    "4c-16g"   = { vcpus = 4, ram_mb = 16384, worker_cores = 4, worker_memory_mb = 13517, executor_cores = 4, executors = 1, executor_memory_mb = 12288, memory_overhead_mb = 1229, driver_memory_mb = 10813 }
    "6c-24g"   = { vcpus = 6, ram_mb = 24576, worker_cores = 6, worker_memory_mb = 21300, executor_cores = 3, executors = 2, executor_memory_mb = 9681, memory_overhead_mb = 969, driver_memory_mb = 17040 }
    "8c-16g"   = { vcpus = 8, ram_mb = 16384, worker_cores = 8, worker_memory_mb = 13517, executor_cores = 4, executors = 2, executor_memory_mb = 6143, memory_overhead_mb = 615, driver_memory_mb = 10813 }
    "8c-32g"   = { vcpus = 8, ram_mb = 32768, worker_cores = 8, worker_memory_mb = 29082, executor_cores = 4, executors = 2, executor_memory_mb = 13219, memory_overhead_mb = 1322, driver_memory_mb = 23265 }
    "10c-40g"  = { vcpus = 10, ram_mb = 40960, worker_cores = 10, worker_memory_mb = 36864, executor_cores = 2, executors = 5, executor_memory_mb = 6701, memory_overhead_mb = 671, driver_memory_mb = 29491 }
    "12c-48g"  = { vcpus = 12, ram_mb = 49152, worker_cores = 12, worker_memory_mb = 44647, executor_cores = 4, executors = 3, executor_memory_mb = 13529, memory_overhead_mb = 1353, driver_memory_mb = 35717 }
    "16c-64g"  = { vcpus = 16, ram_mb = 65536, worker_cores = 16, worker_memory_mb = 60212, executor_cores = 4, executors = 4, executor_memory_mb = 13684, memory_overhead_mb = 1369, driver_memory_mb = 48169 }
    "16c-128g" = { vcpus = 16, ram_mb = 131072, worker_cores = 16, worker_memory_mb = 122471, executor_cores = 4, executors = 4, executor_memory_mb = 27833, memory_overhead_mb = 2784, driver_memory_mb = 97976 }
    "32c-128g" = { vcpus = 32, ram_mb = 131072, worker_cores = 32, worker_memory_mb = 122471, executor_cores = 4, executors = 8, executor_memory_mb = 13916, memory_overhead_mb = 1392, driver_memory_mb = 97976 }
    "32c-256g" = { vcpus = 32, ram_mb = 262144, worker_cores = 32, worker_memory_mb = 246989, executor_cores = 4, executors = 8, executor_memory_mb = 28066, memory_overhead_mb = 2807, driver_memory_mb = 197591 }
    "48c-384g" = { vcpus = 48, ram_mb = 393216, worker_cores = 48, worker_memory_mb = 371508, executor_cores = 4, executors = 12, executor_memory_mb = 28144, memory_overhead_mb = 2815, driver_memory_mb = 297206 }
    "60c-480g" = { vcpus = 60, ram_mb = 491520, worker_cores = 60, worker_memory_mb = 464896, executor_cores = 4, executors = 15, executor_memory_mb = 28175, memory_overhead_mb = 2818, driver_memory_mb = 371916 }
    "64c-256g" = { vcpus = 64, ram_mb = 262144, worker_cores = 64, worker_memory_mb = 246989, executor_cores = 4, executors = 16, executor_memory_mb = 14032, memory_overhead_mb = 1404, driver_memory_mb = 197591 }
    "64c-512g" = { vcpus = 64, ram_mb = 524288, worker_cores = 64, worker_memory_mb = 496026, executor_cores = 4, executors = 16, executor_memory_mb = 28182, memory_overhead_mb = 2819, driver_memory_mb = 396820 }
  }
}

run "flavor_table" {
  command = plan

  module {
    source = "./tests/table"
  }

  variables {
    flavors = { for label, f in var.expected : label => { vcpus = f.vcpus, ram_mb = f.ram_mb } }
  }

  assert {
    condition = length([
      for label, f in var.expected : label
      if output.sizes[label].worker_cores != f.worker_cores
      || output.sizes[label].worker_memory_mb != f.worker_memory_mb
      || output.sizes[label].executor_cores != f.executor_cores
      || output.sizes[label].executors_per_worker != f.executors
      || output.sizes[label].executor_memory_mb != f.executor_memory_mb
      || output.sizes[label].memory_overhead_mb != f.memory_overhead_mb
      || output.sizes[label].driver_memory_mb != f.driver_memory_mb
    ]) == 0
    error_message = "Sizing differs from the table for: ${join(", ", [for label, f in var.expected : "${label} got ${jsonencode(output.sizes[label])}" if output.sizes[label].worker_memory_mb != f.worker_memory_mb || output.sizes[label].executor_cores != f.executor_cores || output.sizes[label].executor_memory_mb != f.executor_memory_mb || output.sizes[label].memory_overhead_mb != f.memory_overhead_mb || output.sizes[label].driver_memory_mb != f.driver_memory_mb || output.sizes[label].executors_per_worker != f.executors])}"
  }

  # Invariants that hold for every flavor, whatever the table says.
  assert {
    condition = alltrue([
      for label, s in output.sizes :
      s.executors_per_worker * (s.executor_memory_mb + s.memory_overhead_mb) <= s.worker_memory_mb
    ])
    error_message = "Executors' heap plus overhead must fit in the worker's memory on every flavor."
  }

  assert {
    condition = alltrue([
      for label, s in output.sizes :
      s.executors_per_worker * s.executor_cores == s.worker_cores && s.executor_cores <= 4
    ])
    error_message = "Executor cores must divide the worker's cores evenly and stay at or below executor_cores_max."
  }

  assert {
    condition = alltrue([
      for label, s in output.sizes :
      s.reserved_mb + s.worker_memory_mb == var.expected[label].ram_mb && s.driver_memory_mb < s.worker_memory_mb
      && s.memory_overhead_mb >= 384 && s.executor_memory_mb >= 1024
    ])
    error_message = "Reserved plus worker memory must equal the flavor's RAM; driver below the worker's share; overhead at least 384 MiB; heap at least 1 GiB."
  }
}

# The local cluster passes the host's cores and RAM and its own knobs.
run "knobs_change_the_cut" {
  command = plan

  variables {
    vcpus                  = 8
    ram_mb                 = 32768
    os_reserved_mb         = 2048
    os_reserved_fraction   = 0
    daemon_memory_mb       = 2048
    reserved_cores         = 2
    executor_cores_max     = 5
    driver_memory_fraction = 0.25
  }

  assert {
    condition     = output.worker_memory_mb == 28672 && output.worker_cores == 6
    error_message = "32768 - 2048 - 0 - 2048 = 28672 MiB and 8 - 2 = 6 cores expected, got ${output.worker_memory_mb} MiB and ${output.worker_cores} cores."
  }

  assert {
    # 6 cores, at most 5 per executor: 3 divides 6, so two 3-core executors of 14336 MiB each.
    condition     = output.executor_cores == 3 && output.executors_per_worker == 2 && output.executor_memory_mb == 13032 && output.memory_overhead_mb == 1304
    error_message = "Expected two 3-core executors with 13032 MiB heap and 1304 MiB overhead."
  }

  assert {
    condition     = output.driver_memory_mb == 7168
    error_message = "A quarter of 28672 MiB is 7168 MiB for the driver, got ${output.driver_memory_mb}."
  }
}
