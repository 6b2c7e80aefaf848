# What one node is.

variable "role" {
  description = "The node's role: master (Spark master, JupyterLab, nginx, the shared tmp export) or worker."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["master", "worker"], var.role)
    error_message = "role must be one of: master, worker."
  }
}

variable "mode" {
  description = "How the node scripts run: system (an OpenStack node: systemd units, the system's nginx and NFS) or local (the local cluster: detached processes with pid files)."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["system", "local"], var.mode)
    error_message = "mode must be one of: system, local."
  }
}

variable "node_name" {
  description = "The node's name, e.g. spark-ld14-master or spark-ld14-worker-003 (logs and pid files name it)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", var.node_name))
    error_message = "node_name must be letters, digits, '.', '_' or '-', starting with a letter or digit."
  }
}

# Where things are on the node.

variable "state_dir" {
  description = "Absolute folder for the node's generated configuration, pid files, logs and Spark work dir (/var/lib/hgi-spark on a node; runtime/<node> of the deployment locally)."
  type        = string
  nullable    = false

  validation {
    condition     = startswith(var.state_dir, "/")
    error_message = "state_dir must be an absolute path."
  }
}

variable "app_user" {
  description = "The application user that runs Spark and JupyterLab on a node (system mode)."
  type        = string
  default     = "hgi"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]*$", var.app_user))
    error_message = "app_user must be a valid Unix user name (lower case, digits, '_' or '-')."
  }
}

variable "hail_home" {
  description = "Hail's home on the node (/opt/hail on the image; the prefix locally)."
  type        = string
  nullable    = false
}

variable "hail_venv" {
  description = "The Python virtualenv with hail, pyspark and jupyterlab; SPARK_HOME and Hail's jar are found inside it."
  type        = string
  nullable    = false

  validation {
    condition     = startswith(var.hail_venv, "/")
    error_message = "hail_venv must be an absolute path."
  }
}

variable "spark_home" {
  description = "Spark's home; empty means the pyspark package inside hail_venv (always set, so an inherited SPARK_HOME never leaks in)."
  type        = string
  default     = ""
  nullable    = false
}

variable "hail_jar" {
  description = "Hail's hail-all-spark.jar; empty means the one inside hail_venv."
  type        = string
  default     = ""
  nullable    = false
}

variable "hail_tmp_dir" {
  description = "The cluster's shared tmp directory, the same path on every node (exported by the master over NFS on OpenStack; a local folder locally)."
  type        = string
  nullable    = false

  validation {
    condition     = startswith(var.hail_tmp_dir, "/")
    error_message = "hail_tmp_dir must be an absolute path."
  }
}

variable "notebook_dir" {
  description = "JupyterLab's root folder (master only)."
  type        = string
  default     = "/home/hgi"
  nullable    = false
}

# Network.

variable "bind_address" {
  description = "The node's private address that Spark binds to (127.0.0.1 locally)."
  type        = string
  nullable    = false
}

variable "master_host" {
  description = "The master's private address, which workers and drivers connect to."
  type        = string
  nullable    = false
}

variable "http_listen_address" {
  description = "Address nginx listens on: \"*\" for every interface (a node, behind its security group) or 127.0.0.1 (local)."
  type        = string
  default     = "*"
  nullable    = false
}

variable "ports" {
  description = "The deployment's ports (the `ports:` object of deployments/defaults.yml)."
  type = object({
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
  })
  nullable = false

  validation {
    condition     = alltrue([for p in values(var.ports) : p == floor(p) && p >= 1 && p <= 65535])
    error_message = "every port must be a whole number from 1 to 65535."
  }

  validation {
    condition     = var.ports.spark_app_ui_last >= var.ports.spark_app_ui_first
    error_message = "ports.spark_app_ui_last must not be below ports.spark_app_ui_first."
  }
}

variable "worker_webui_port" {
  description = "This worker's web UI port; null means ports.spark_worker_ui (workers on one host need one each)."
  type        = number
  default     = null

  validation {
    condition     = var.worker_webui_port == null || (var.worker_webui_port == floor(coalesce(var.worker_webui_port, 0)) && coalesce(var.worker_webui_port, 0) >= 1 && coalesce(var.worker_webui_port, 0) <= 65535)
    error_message = "worker_webui_port must be null or a port from 1 to 65535."
  }
}

variable "nfs_export_cidr" {
  description = "Master, system mode: the cluster subnet allowed to mount the shared tmp directory; null exports nothing (local)."
  type        = string
  default     = null

  validation {
    condition     = var.nfs_export_cidr == null || can(cidrhost(coalesce(var.nfs_export_cidr, "0.0.0.0/0"), 0))
    error_message = "nfs_export_cidr must be null or a CIDR such as 10.0.0.0/24."
  }
}

variable "tmp_device" {
  description = "Master, system mode: the block device (a Cinder volume's /dev/disk/by-id/virtio-... path) holding an ext4 filesystem mounted at hail_tmp_dir, which run-node grows to the device's size at every boot (unit hgi-spark-grow-tmp); the NFS export then requires that mount. Empty: the tmp dir is on the root disk."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.tmp_device == "" || startswith(var.tmp_device, "/dev/")
    error_message = "tmp_device must be empty (no volume) or a device path under /dev/."
  }
}

# Spark sizes and housekeeping.

variable "sizing" {
  description = "The outputs of the spark-sizing module for this node's machine."
  type = object({
    worker_cores       = number
    worker_memory_mb   = number
    executor_cores     = number
    executor_memory_mb = number
    driver_memory_mb   = number
    memory_overhead_mb = number
  })
  nullable = false

  validation {
    condition     = alltrue([for v in values(var.sizing) : v == floor(v) && v >= 1])
    error_message = "every sizing value must be a whole number, at least 1."
  }
}

variable "worker_cleanup" {
  description = "Spark worker cleanup (spark.worker.cleanup.*): every interval_s, remove the work dirs of stopped applications older than app_data_ttl_s. Each Hail application leaves a 141 MB jar there."
  type = object({
    interval_s     = number
    app_data_ttl_s = number
  })
  default  = { interval_s = 1800, app_data_ttl_s = 3600 }
  nullable = false

  validation {
    condition     = var.worker_cleanup.interval_s >= 60 && var.worker_cleanup.app_data_ttl_s >= 60
    error_message = "worker_cleanup.interval_s and app_data_ttl_s must be at least 60 seconds."
  }
}

# JupyterLab access.

variable "jupyter_password_hash_file" {
  description = "Path on the node of the file holding the hashed Jupyter password (never the plain one)."
  type        = string
  default     = "/etc/hgi-spark/jupyter-password.hash"
  nullable    = false
}

variable "tls" {
  description = "Optional TLS for nginx: certificate and key paths on the node; null serves plain http."
  type = object({
    cert_file = string
    key_file  = string
  })
  default = null
}

variable "ready_timeout_s" {
  description = "How long run-node waits for the node to be ready before it fails (deployments/defaults.yml ready_timeout_s, its one default)."
  type        = number
  nullable    = false

  validation {
    condition     = var.ready_timeout_s >= 5 && var.ready_timeout_s <= 3600
    error_message = "ready_timeout_s must be from 5 to 3600."
  }
}
