# Filled in by the wrapper (invoke/hgi_spark): never set these in YAML.

variable "deployment_name" {
  description = "The deployment's name (spark-local), injected by the wrapper."
  type        = string
}

variable "deployment_owner" {
  description = "The deployment's owner (e.g. demo), injected by the wrapper."
  type        = string
}

variable "deployment_dir" {
  description = "Absolute path of the deployment folder (deployments/spark-local/<owner>); runtime/ below it holds pid files, logs and the shared tmp dir. Injected by the wrapper."
  type        = string

  validation {
    condition     = startswith(var.deployment_dir, "/")
    error_message = "deployment_dir must be an absolute path."
  }
}

variable "prefix" {
  description = "The Hail prefix: a virtualenv with hail, pyspark and jupyterlab at the image's versions, installed once and shared (set by the wrapper, see invoke/hgi_spark/local.py)."
  type        = string

  validation {
    condition     = startswith(var.prefix, "/")
    error_message = "prefix must be an absolute path."
  }
}

variable "host_vcpus" {
  description = "Cores of this machine (set by the wrapper)."
  type        = number

  validation {
    condition     = var.host_vcpus >= 1
    error_message = "host_vcpus must be at least 1."
  }
}

variable "host_ram_mb" {
  description = "RAM of this machine in MiB (set by the wrapper)."
  type        = number

  validation {
    condition     = var.host_ram_mb >= 4096
    error_message = "host_ram_mb must be at least 4096: a local cluster needs 4 GiB."
  }
}

variable "http_port" {
  description = "The port nginx listens on: ports.http, or the first free port above it when that one is taken (chosen and printed by the wrapper)."
  type        = number

  validation {
    condition     = var.http_port >= 1024 && var.http_port <= 65535
    error_message = "http_port must be an unprivileged port, 1024 to 65535."
  }
}

variable "jupyter_password_hash_file" {
  description = "The 0600 file with the hashed Jupyter password, in the deployment's secrets/ (written by the wrapper)."
  type        = string
}

variable "app_user" {
  description = "The image's application user (app_user.name of the image definition, set by the wrapper); the node scripts need one, though the local cluster runs as whoever calls it."
  type        = string
}

variable "generations" {
  description = "Per node (\"master\", \"1\", \"2\" ...), a restart generation: the wrapper moves it on when the node's processes died, so the next plan replaces (restarts) that node. Set by the wrapper."
  type        = map(number)
  default     = {}
}

# From YAML (deployments/defaults.yml < deployments/spark-local/defaults.yml < deployment.yml).


variable "workers" {
  description = "How many Spark workers to run on this machine."
  type        = number
  default     = 1

  validation {
    condition     = var.workers == floor(var.workers) && var.workers >= 0 && var.workers <= 8
    error_message = "workers must be a whole number from 0 to 8 on one machine."
  }
}

variable "ports" {
  description = "The deployment's ports. Two local deployments at once need different spark_master, spark_master_ui, spark_worker_ui (a range: one per worker), jupyter and http ports."
  type = object({
    ssh                = number
    http               = number
    https              = number
    spark_master       = number
    spark_master_ui    = number
    spark_worker_ui    = number
    spark_app_ui_first = number
    spark_app_ui_last  = number
    spark_driver       = number
    spark_blockmanager = number
    jupyter            = number
    nfs                = number
  })

  validation {
    condition     = alltrue([for p in values(var.ports) : p == floor(p) && p >= 1 && p <= 65535])
    error_message = "every port must be a whole number from 1 to 65535."
  }
}

variable "worker_ram_fraction" {
  description = "Share of this machine's RAM that one local worker is sized for (its sizing does not depend on the number of workers, so scaling never restarts the running ones)."
  type        = number
  default     = 0.25

  validation {
    condition     = var.worker_ram_fraction > 0 && var.worker_ram_fraction <= 1
    error_message = "worker_ram_fraction must be above 0 and at most 1."
  }
}

variable "driver_memory_fraction" {
  description = "Share of a worker's Spark memory given to a driver (pyspark, Jupyter kernels, submit): driver and workers share this machine."
  type        = number
  default     = 0.5

  validation {
    condition     = var.driver_memory_fraction > 0 && var.driver_memory_fraction <= 0.9
    error_message = "driver_memory_fraction must be above 0 and at most 0.9."
  }
}

variable "ready_timeout_s" {
  description = "How long each node may take to become ready before apply fails (and stops what it started)."
  type        = number

  validation {
    condition     = var.ready_timeout_s >= 5 && var.ready_timeout_s <= 3600
    error_message = "ready_timeout_s must be from 5 to 3600."
  }
}
