# Same meaning as the root module's variables of the same names (terraform/spark/variables.tf).

variable "deployment_name" {
  description = "NAME of deployments/NAME/OWNER."
  type        = string
  nullable    = false
}

variable "deployment_owner" {
  description = "OWNER of deployments/NAME/OWNER."
  type        = string
  nullable    = false
}

variable "image" {
  description = "The image definition the nodes boot: name, version, glance_name, its software versions, and the nodes' application user and layout (app_user: and layout: of images/NAME/defaults.yml; the root modules check them)."
  type = object({
    name        = string
    version     = string
    glance_name = string
    software    = map(string)
    app_user    = object({ name = string, uid = number, gid = number, home = string })
    layout = object({
      hail_home        = string
      hail_venv        = string
      hail_tmp_dir     = string
      node_scripts_dir = string
      etc_dir          = string
      state_dir        = string
    })
  })
  nullable = false
}

variable "workers" {
  description = "Number of workers."
  type        = number
  nullable    = false

  validation {
    condition     = var.workers == floor(var.workers) && var.workers >= 0 && var.workers <= 999
    error_message = "workers must be a whole number from 0 to 999 (worker names have three digits)."
  }
}

variable "ports" {
  description = "Every port number of the cluster (deployments/defaults.yml), passed through to each node. Its shape is declared once, by the root module (terraform/spark/variables.tf), and checked again by ../../../modules/spark-node where the ports are used."
  type        = map(number)
  nullable    = false
}

variable "internal_ephemeral_ports" {
  description = "The Linux ephemeral port range of the nodes, opened between cluster members for Spark's unpinned ports (executors' RPC and block manager ports, a worker's RPC port)."
  type = object({
    first = number
    last  = number
  })
  nullable = false
}

variable "master_flavor" {
  description = "vCPUs and RAM (MiB) of the master's flavor: sizes the driver."
  type = object({
    vcpus  = number
    ram_mb = number
  })
  nullable = false
}

variable "worker_flavor" {
  description = "vCPUs and RAM (MiB) of the workers' flavor: sizes the Spark workers and executors."
  type = object({
    vcpus  = number
    ram_mb = number
  })
  nullable = false
}

variable "sizing" {
  description = "Knobs of ../../../modules/spark-sizing; an attribute left null keeps that module's default."
  type = object({
    os_reserved_mb           = optional(number)
    os_reserved_fraction     = optional(number)
    daemon_memory_mb         = optional(number)
    reserved_cores           = optional(number)
    executor_cores_max       = optional(number)
    memory_overhead_fraction = optional(number)
    memory_overhead_min_mb   = optional(number)
    driver_memory_fraction   = optional(number)
    min_executor_memory_mb   = optional(number)
  })
  default  = {}
  nullable = false
}

variable "spark" {
  description = "Spark settings of the node scripts: the worker's cleanup of finished applications' work dirs (each Hail application copies its jar there)."
  type = object({
    worker_cleanup_interval_s = number
    worker_appdata_ttl_s      = number
  })
  nullable = false
}

variable "ready_timeout_s" {
  description = "How long run-node waits for its node to be ready (a worker waits for the master too)."
  type        = number
  nullable    = false
}

variable "master_address" {
  description = "The master's private IPv4 address (its port's fixed IP)."
  type        = string
  nullable    = false
}

variable "worker_addresses" {
  description = "The workers' private IPv4 addresses, in worker order."
  type        = list(string)
  nullable    = false
}

variable "subnet_cidr" {
  description = "The cluster subnet: the only network allowed to mount the master's NFS export."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be a CIDR, e.g. 10.0.0.0/24."
  }
}

variable "jupyter_password_hash" {
  description = "JupyterLab's hashed password for the master (jupyter_server's passwd() format)."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true
}

variable "tls_certificate_pem" {
  description = "Optional PEM certificate for nginx on the master; empty for plain http."
  type        = string
  default     = ""
  nullable    = false
}

variable "tls_private_key_pem" {
  description = "Optional PEM private key matching tls_certificate_pem."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true
}

variable "tmp_volume_id" {
  description = "ID of the Cinder volume attached to the master for the shared tmp directory; empty for none."
  type        = string
  default     = ""
  nullable    = false
}
