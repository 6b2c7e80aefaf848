# The machine: a flavor's vCPUs and RAM (Nova reports RAM in MiB), or the local host's.

variable "vcpus" {
  description = "Virtual CPUs of the machine (a flavor's vcpus, or the local host's cores)."
  type        = number
  nullable    = false

  validation {
    condition     = var.vcpus == floor(var.vcpus) && var.vcpus >= 1 && var.vcpus <= 1024
    error_message = "vcpus must be a whole number from 1 to 1024."
  }
}

variable "ram_mb" {
  description = "RAM of the machine in MiB (a flavor's ram, or the local host's MemTotal / 1024)."
  type        = number
  nullable    = false

  validation {
    condition     = var.ram_mb == floor(var.ram_mb) && var.ram_mb >= 2048 && var.ram_mb <= 16777216
    error_message = "ram_mb must be a whole number of MiB from 2048 (2 GiB, the smallest machine that can run Spark and the OS) to 16777216 (16 TiB)."
  }
}

# What is kept away from Spark's executors.

variable "os_reserved_mb" {
  description = "Fixed MiB kept for the kernel, sshd, cloud-init, the NFS server or client and nginx."
  type        = number
  default     = 1024
  nullable    = false

  validation {
    condition     = var.os_reserved_mb == floor(var.os_reserved_mb) && var.os_reserved_mb >= 256
    error_message = "os_reserved_mb must be a whole number of MiB, at least 256."
  }
}

variable "os_reserved_fraction" {
  description = "Share of RAM kept for the OS on top of os_reserved_mb: page cache for the NFS-shared tmp directory and kernel tables grow with the machine."
  type        = number
  default     = 0.05
  nullable    = false

  validation {
    condition     = var.os_reserved_fraction >= 0 && var.os_reserved_fraction <= 0.5
    error_message = "os_reserved_fraction must be from 0 to 0.5."
  }
}

variable "daemon_memory_mb" {
  description = "MiB for the long-running JVM daemons of the node (Spark worker or master, SPARK_DAEMON_MEMORY defaults to 1 GiB) and JupyterLab on the master."
  type        = number
  default     = 1024
  nullable    = false

  validation {
    condition     = var.daemon_memory_mb == floor(var.daemon_memory_mb) && var.daemon_memory_mb >= 0
    error_message = "daemon_memory_mb must be a whole number of MiB, 0 or more."
  }
}

variable "reserved_cores" {
  description = "vCPUs not offered to Spark executors (0: Spark may use every vCPU; the daemons are mostly idle)."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.reserved_cores == floor(var.reserved_cores) && var.reserved_cores >= 0
    error_message = "reserved_cores must be a whole number, 0 or more (and less than vcpus)."
  }
}

# How the worker's share is cut into executors.

variable "executor_cores_max" {
  description = "Most cores per executor. The module picks the largest value up to this that divides the worker's cores evenly, so no core is left idle (Spark's tuning guide: 3 to 5 keeps HDFS/NFS throughput and GC pauses reasonable)."
  type        = number
  default     = 4
  nullable    = false

  validation {
    condition     = var.executor_cores_max == floor(var.executor_cores_max) && var.executor_cores_max >= 1 && var.executor_cores_max <= 32
    error_message = "executor_cores_max must be a whole number from 1 to 32."
  }
}

variable "memory_overhead_fraction" {
  description = "Off-heap overhead per executor as a share of its heap (Spark's spark.executor.memoryOverheadFactor default: 0.10)."
  type        = number
  default     = 0.10
  nullable    = false

  validation {
    condition     = var.memory_overhead_fraction >= 0.05 && var.memory_overhead_fraction <= 1
    error_message = "memory_overhead_fraction must be from 0.05 to 1."
  }
}

variable "memory_overhead_min_mb" {
  description = "Smallest off-heap overhead per executor in MiB (Spark's minimum: 384)."
  type        = number
  default     = 384
  nullable    = false

  validation {
    condition     = var.memory_overhead_min_mb == floor(var.memory_overhead_min_mb) && var.memory_overhead_min_mb >= 384
    error_message = "memory_overhead_min_mb must be a whole number of MiB, at least 384 (Spark's own minimum)."
  }
}

variable "driver_memory_fraction" {
  description = "Share of the node's Spark memory (worker_memory_mb) given to a driver started on it. 0.8 as hailctl dataproc does for its master; the local cluster, where driver and worker share one host, passes less."
  type        = number
  default     = 0.8
  nullable    = false

  validation {
    condition     = var.driver_memory_fraction > 0 && var.driver_memory_fraction <= 0.9
    error_message = "driver_memory_fraction must be above 0 and at most 0.9."
  }
}

variable "min_executor_memory_mb" {
  description = "Smallest executor heap in MiB the module accepts; a machine that leaves less is refused (Hail needs room for its jar and buffers)."
  type        = number
  default     = 1024
  nullable    = false

  validation {
    condition     = var.min_executor_memory_mb == floor(var.min_executor_memory_mb) && var.min_executor_memory_mb >= 512
    error_message = "min_executor_memory_mb must be a whole number of MiB, at least 512."
  }
}
