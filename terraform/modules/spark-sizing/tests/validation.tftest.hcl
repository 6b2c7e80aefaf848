# Every validation rule fires on a value it must refuse.

variables {
  vcpus  = 4
  ram_mb = 16384
}

run "defaults_are_accepted" {
  command = plan

  assert {
    condition     = output.worker_cores == 4
    error_message = "The base values of this suite must be valid."
  }
}

run "vcpus_must_be_whole" {
  command = plan
  variables {
    vcpus = 2.5
  }
  expect_failures = [var.vcpus]
}

run "vcpus_must_be_positive" {
  command = plan
  variables {
    vcpus = 0
  }
  expect_failures = [var.vcpus]
}

run "ram_below_2_gib_is_refused" {
  command = plan
  variables {
    ram_mb = 1024
  }
  expect_failures = [var.ram_mb]
}

run "ram_in_gib_by_mistake_is_refused" {
  command = plan
  variables {
    ram_mb = 64
  }
  expect_failures = [var.ram_mb]
}

run "os_reserved_mb_minimum" {
  command = plan
  variables {
    os_reserved_mb = 100
  }
  expect_failures = [var.os_reserved_mb]
}

run "os_reserved_fraction_range" {
  command = plan
  variables {
    os_reserved_fraction = 0.75
  }
  expect_failures = [var.os_reserved_fraction]
}

run "daemon_memory_not_negative" {
  command = plan
  variables {
    daemon_memory_mb = -1
  }
  expect_failures = [var.daemon_memory_mb]
}

run "reserved_cores_not_negative" {
  command = plan
  variables {
    reserved_cores = -1
  }
  expect_failures = [var.reserved_cores]
}

run "executor_cores_max_range" {
  command = plan
  variables {
    executor_cores_max = 0
  }
  expect_failures = [var.executor_cores_max]
}

run "overhead_fraction_range" {
  command = plan
  variables {
    memory_overhead_fraction = 0.01
  }
  expect_failures = [var.memory_overhead_fraction]
}

run "overhead_minimum_is_sparks" {
  command = plan
  variables {
    memory_overhead_min_mb = 256
  }
  expect_failures = [var.memory_overhead_min_mb]
}

run "driver_fraction_range" {
  command = plan
  variables {
    driver_memory_fraction = 1
  }
  expect_failures = [var.driver_memory_fraction]
}

run "min_executor_memory_minimum" {
  command = plan
  variables {
    min_executor_memory_mb = 128
  }
  expect_failures = [var.min_executor_memory_mb]
}

# Cross-variable rules live in output preconditions (variable validations that refer to other
# variables need terraform >= 1.9 and are not in every OpenTofu).

run "all_cores_reserved_is_refused" {
  command = plan
  variables {
    reserved_cores = 4
  }
  expect_failures = [output.worker_cores]
}

run "too_little_ram_per_executor_is_refused" {
  # m1.small-like: 1 vCPU / 2 GiB leaves nothing once the OS and daemons have their share.
  command = plan
  variables {
    vcpus  = 1
    ram_mb = 2048
  }
  expect_failures = [output.worker_memory_mb]
}

run "many_cores_little_ram_is_refused" {
  # 64 vCPUs with 16 GiB: 16 executors of well under 1 GiB each.
  command = plan
  variables {
    vcpus  = 64
    ram_mb = 16384
  }
  expect_failures = [output.worker_memory_mb]
}
