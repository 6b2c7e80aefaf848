output "worker_cores" {
  description = "Cores the Spark worker offers (SPARK_WORKER_CORES)."
  value       = local.worker_cores

  precondition {
    condition     = local.worker_cores >= 1
    error_message = "reserved_cores (${var.reserved_cores}) must be less than vcpus (${var.vcpus}): nothing would be left for Spark."
  }
}

output "worker_memory_mb" {
  description = "MiB the Spark worker offers to executors (SPARK_WORKER_MEMORY): RAM minus what the OS, NFS and the daemons keep."
  value       = local.worker_memory_mb

  precondition {
    condition     = local.executor_memory_mb >= var.min_executor_memory_mb
    error_message = "A machine with ${var.vcpus} vCPUs and ${var.ram_mb} MiB leaves ${local.executor_memory_mb} MiB per executor (less than min_executor_memory_mb = ${var.min_executor_memory_mb}) after reserving ${local.reserved_mb} MiB: pick a flavor with more RAM per vCPU, or lower the reserved memory or executor_cores_max."
  }
}

output "reserved_mb" {
  description = "MiB kept for the OS, NFS and the node's daemons (ram_mb - worker_memory_mb)."
  value       = local.reserved_mb
}

output "executor_cores" {
  description = "Cores per executor (spark.executor.cores); divides worker_cores evenly."
  value       = local.executor_cores
}

output "executors_per_worker" {
  description = "Executors one worker runs at full load (worker_cores / executor_cores)."
  value       = local.executors_per_worker
}

output "executor_memory_mb" {
  description = "Heap per executor in MiB (spark.executor.memory)."
  value       = local.executor_memory_mb
}

output "memory_overhead_mb" {
  description = "Off-heap overhead per executor in MiB (spark.executor.memoryOverhead); heap plus overhead of all executors fits in worker_memory_mb."
  value       = local.memory_overhead_mb
}

output "driver_memory_mb" {
  description = "Heap in MiB for a driver started on this machine (spark.driver.memory)."
  value       = local.driver_memory_mb
}
