# Spark sizing from a machine's vCPUs and RAM. Pure arithmetic, no provider.
#
#   reserved  = os_reserved_mb + floor(ram_mb * os_reserved_fraction) + daemon_memory_mb
#   worker    = ram_mb - reserved                       (SPARK_WORKER_MEMORY)
#   cores     = vcpus - reserved_cores                  (SPARK_WORKER_CORES)
#   executor cores: the largest c <= executor_cores_max dividing cores evenly
#   slot      = floor(worker / (cores / executor cores)) (one executor's heap + overhead)
#   heap      = min(floor(slot / (1 + overhead fraction)), slot - overhead minimum)
#   overhead  = slot - heap
#   driver    = floor(worker * driver_memory_fraction)

locals {
  reserved_mb = var.os_reserved_mb + floor(var.ram_mb * var.os_reserved_fraction) + var.daemon_memory_mb

  worker_memory_mb = var.ram_mb - local.reserved_mb
  worker_cores     = var.vcpus - var.reserved_cores

  # range() refuses a start below the end, so clamp before listing the candidates.
  executor_cores_candidates = [
    for c in range(max(1, min(var.executor_cores_max, local.worker_cores)), 0, -1) : c
    if local.worker_cores % c == 0
  ]
  executor_cores       = local.executor_cores_candidates[0]
  executors_per_worker = max(1, floor(local.worker_cores / local.executor_cores))

  slot_mb = floor(local.worker_memory_mb / local.executors_per_worker)
  executor_memory_mb = min(
    floor(local.slot_mb / (1 + var.memory_overhead_fraction)),
    local.slot_mb - var.memory_overhead_min_mb,
  )
  memory_overhead_mb = local.slot_mb - local.executor_memory_mb
  driver_memory_mb   = floor(local.worker_memory_mb * var.driver_memory_fraction)
}
