# The root module of deployments called `spark-vm` (deployments/spark-vm/OWNER/deployment.yml).
# Defaults live in deployments/defaults.yml and deployments/spark-vm/defaults.yml, not here: every
# variable the YAML sets is required here, so a key missing from the YAML is an error at once.

# --- set by the wrapper ---------------------------------------------------------------------------

variable "deployment_name" {
  description = "NAME of deployments/NAME/OWNER (always spark-vm here). Set by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.deployment_name))
    error_message = "deployment_name must be lowercase letters, digits, '_', '.' and '-'."
  }
}

variable "deployment_owner" {
  description = "OWNER of deployments/NAME/OWNER, e.g. demo. Set by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.deployment_owner))
    error_message = "deployment_owner must be lowercase letters, digits, '_', '.' and '-'."
  }
}

variable "deployment_dir" {
  description = "Absolute path of the deployment folder (deployments/spark-vm/<owner>); runtime/ below it holds every VM's overlay, seed, console log and pid file, and the tmp volume. Set by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = startswith(var.deployment_dir, "/") && !strcontains(var.deployment_dir, "\n")
    error_message = "deployment_dir must be an absolute path."
  }
}

variable "image" {
  description = "The image the nodes boot, from `image: NAME/VERSION` in the YAML (set by the wrapper from images/NAME/VERSION/image.yml, as for terraform/spark): name, version, glance_name and software versions."
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

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.image.app_user.name)) && alltrue([for name, path in merge(var.image.layout, { home = var.image.app_user.home }) : startswith(path, "/")])
    error_message = "image.app_user.name must be a Linux user name, and image.layout and image.app_user.home absolute paths (app_user: and layout: of images/NAME/defaults.yml)."
  }

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.image.version))
    error_message = "image.version must be MAJOR.MINOR.PATCH."
  }
}

variable "image_path" {
  description = "Absolute path of the image's qcow2 on this machine, built by packer's qemu source (~/.cache/hgi-spark/images/NAME-VERSION-DIGEST.qcow2). Set by the wrapper; never written to: every VM boots a copy-on-write overlay."
  type        = string
  nullable    = false

  validation {
    condition     = startswith(var.image_path, "/") && endswith(var.image_path, ".qcow2")
    error_message = "image_path must be the absolute path of a .qcow2 file."
  }
}

variable "accelerator" {
  description = "How qemu runs the VMs: kvm (hardware virtualisation, when the wrapper's short probe boots a KVM guest) or tcg (software emulation, several times slower). Set by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["kvm", "tcg"], var.accelerator)
    error_message = "accelerator must be one of: kvm, tcg."
  }
}

variable "jupyter_password_hash" {
  description = "Hash of the JupyterLab password (jupyter_server's passwd() format). Set by the wrapper from the password it keeps in secrets/; never in the YAML. The master refuses to render without it."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true
}

variable "generations" {
  description = "Per node (\"master\", \"1\", \"2\" ...), a restart generation: the wrapper moves it on when the node's VM died, so the next plan replaces (re-creates) that VM; \"network\" likewise re-creates the network namespace when it is gone (after a reboot of this machine). Set by the wrapper."
  type        = map(number)
  default     = {}
  nullable    = false
}

# --- deployments/defaults.yml ----------------------------------------------------------------------

variable "ports" {
  description = "Every port of the cluster inside the VMs, the single home of port numbers (node environment, Spark and nginx configuration). The host reaches ssh, http and https through forwarded_ports."
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
  nullable = false

  validation {
    condition     = alltrue([for name, port in var.ports : port == floor(port) && port >= 1 && port <= 65535])
    error_message = "Every port must be a whole number from 1 to 65535."
  }

  validation {
    condition     = var.ports.spark_app_ui_first <= var.ports.spark_app_ui_last
    error_message = "ports.spark_app_ui_first must not be above ports.spark_app_ui_last."
  }
}

# --- deployments/spark-vm/defaults.yml and deployment.yml -----------------------------------------

variable "internal_ephemeral_ports" {
  description = "The nodes' Linux ephemeral port range (Spark's unpinned ports). The VMs have no security groups; it is passed on because the cluster module renders the OpenStack rules from it, the same for both."
  type = object({
    first = number
    last  = number
  })
  nullable = false

  validation {
    condition     = var.internal_ephemeral_ports.first >= 1024 && var.internal_ephemeral_ports.first <= var.internal_ephemeral_ports.last && var.internal_ephemeral_ports.last <= 65535
    error_message = "internal_ephemeral_ports must be a range within 1024..65535, first <= last."
  }
}

variable "workers" {
  description = "Number of worker VMs on this machine (each takes worker_flavor's memory)."
  type        = number
  nullable    = false

  validation {
    condition     = var.workers == floor(var.workers) && var.workers >= 0 && var.workers <= 16
    error_message = "workers must be a whole number from 0 to 16 on one machine."
  }
}

variable "master_flavor" {
  description = "The master VM's \"flavor\": vCPUs and memory in MiB (the driver is sized from it, as from a Nova flavor)."
  type = object({
    vcpus     = number
    memory_mb = number
  })
  nullable = false

  validation {
    condition     = var.master_flavor.vcpus == floor(var.master_flavor.vcpus) && var.master_flavor.vcpus >= 1 && var.master_flavor.vcpus <= 64
    error_message = "master_flavor.vcpus must be a whole number from 1 to 64."
  }

  validation {
    condition     = var.master_flavor.memory_mb == floor(var.master_flavor.memory_mb) && var.master_flavor.memory_mb >= 2048
    error_message = "master_flavor.memory_mb must be a whole number of MiB, at least 2048 (the OS, Spark's master, JupyterLab and nginx)."
  }
}

variable "worker_flavor" {
  description = "Every worker VM's \"flavor\": vCPUs and memory in MiB (Spark's worker and executors are sized from it, as from a Nova flavor)."
  type = object({
    vcpus     = number
    memory_mb = number
  })
  nullable = false

  validation {
    condition     = var.worker_flavor.vcpus == floor(var.worker_flavor.vcpus) && var.worker_flavor.vcpus >= 1 && var.worker_flavor.vcpus <= 64
    error_message = "worker_flavor.vcpus must be a whole number from 1 to 64."
  }

  validation {
    condition     = var.worker_flavor.memory_mb == floor(var.worker_flavor.memory_mb) && var.worker_flavor.memory_mb >= 2048
    error_message = "worker_flavor.memory_mb must be a whole number of MiB, at least 2048 (the sizing reserves 1 GiB for the OS and 1 GiB for the daemons)."
  }
}

variable "subnet_cidr" {
  description = "The cluster network on the bridge in the deployment's network namespace: the master is host master_host_number, worker N is host master_host_number + N, the bridge itself is host 1. Two deployments at once should use different subnets."
  type        = string
  nullable    = false

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) && !strcontains(var.subnet_cidr, ":") && try(tonumber(split("/", var.subnet_cidr)[1]) >= 16 && tonumber(split("/", var.subnet_cidr)[1]) <= 27, false)
    error_message = "subnet_cidr must be an IPv4 CIDR from /16 to /27, e.g. 10.77.0.0/24."
  }
}

variable "master_host_number" {
  description = "The master's host number in subnet_cidr (10: 10.77.0.10); workers follow it."
  type        = number
  nullable    = false

  validation {
    condition     = var.master_host_number == floor(var.master_host_number) && var.master_host_number >= 2 && var.master_host_number <= 200
    error_message = "master_host_number must be a whole number from 2 to 200 (1 is the bridge)."
  }
}

variable "forwarded_ports" {
  description = "Ports on this machine's 127.0.0.1 forwarded to the master's ssh, http and https (its \"floating IP\"). Two deployments at once need different ones; start fails when another program holds one."
  type = object({
    ssh   = number
    http  = number
    https = number
  })
  nullable = false

  validation {
    condition     = alltrue([for name, port in var.forwarded_ports : port == floor(port) && port >= 1024 && port <= 65535])
    error_message = "forwarded_ports must be unprivileged ports, 1024 to 65535."
  }

  validation {
    condition     = length(distinct(values(var.forwarded_ports))) == 3
    error_message = "forwarded_ports.ssh, http and https must differ."
  }
}

variable "ssh_public_key_file" {
  description = "Path of your OpenSSH public key (~ allowed); the VMs get it the way Nova hands out a key pair (NoCloud meta-data public-keys), for ssh_user."
  type        = string
  nullable    = false

  validation {
    condition     = try(fileexists(pathexpand(var.ssh_public_key_file)), false)
    error_message = "ssh_public_key_file must be an existing file, e.g. ~/.ssh/id_ed25519.pub (ssh-keygen -t ed25519 makes one)."
  }

  validation {
    condition     = try(!fileexists(pathexpand(var.ssh_public_key_file)), true) || can(regex("^(ssh-|ecdsa-|sk-)", trimspace(file(pathexpand(var.ssh_public_key_file)))))
    error_message = "ssh_public_key_file must hold an OpenSSH public key (ssh-ed25519 ..., ssh-rsa ..., ecdsa-...), not a private key."
  }
}

variable "ssh_user" {
  description = "Login user of the image for ssh (the image's cloud-init default user, which receives the key)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a Linux user name."
  }
}

variable "root_disk_gb" {
  description = "Virtual size in GB of each VM's root disk (its overlay); 0 keeps the image's size."
  type        = number
  nullable    = false

  validation {
    condition     = var.root_disk_gb == floor(var.root_disk_gb) && var.root_disk_gb >= 0 && var.root_disk_gb <= 2048
    error_message = "root_disk_gb must be a whole number of GB from 0 (the image's size) to 2048."
  }
}

variable "tmp_volume_gb" {
  description = "Size in GB of a data disk on the master for the shared tmp directory (HAIL_TMP_DIR, exported over NFS), the VMs' Cinder volume: a sparse qcow2 in runtime/volumes/ that outlives a re-created master; 0 keeps it on the master's root disk."
  type        = number
  nullable    = false

  validation {
    condition     = var.tmp_volume_gb == floor(var.tmp_volume_gb) && var.tmp_volume_gb >= 0 && var.tmp_volume_gb <= 4096
    error_message = "tmp_volume_gb must be a whole number of GB from 0 (no volume) to 4096."
  }
}

variable "sizing" {
  description = "Knobs of the Spark sizing (terraform/modules/spark-sizing/README.md); an attribute left out keeps that module's default."
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
  nullable = false
}

variable "spark" {
  description = "Spark settings of the nodes: how often a worker removes the work dirs of finished applications and after how long."
  type = object({
    worker_cleanup_interval_s = number
    worker_appdata_ttl_s      = number
  })
  nullable = false

  validation {
    condition     = var.spark.worker_cleanup_interval_s >= 60 && var.spark.worker_appdata_ttl_s >= 60
    error_message = "spark.worker_cleanup_interval_s and spark.worker_appdata_ttl_s must be at least 60 seconds."
  }
}

variable "ready_timeout_s" {
  description = "How long a node's run-node waits for the node to be ready, in seconds (a worker waits for the master too). Under software emulation (tcg) everything is several times slower."
  type        = number
  nullable    = false

  validation {
    condition     = var.ready_timeout_s == floor(var.ready_timeout_s) && var.ready_timeout_s >= 30
    error_message = "ready_timeout_s must be a whole number of seconds, at least 30."
  }
}

variable "stop_grace_s" {
  description = "How long stopping a VM waits for its ACPI power-off (a clean shutdown) before qemu quits; 0 quits at once (the disks are thrown away on destroy anyway; the master's tmp volume is not)."
  type        = number
  nullable    = false

  validation {
    condition     = var.stop_grace_s == floor(var.stop_grace_s) && var.stop_grace_s >= 0 && var.stop_grace_s <= 600
    error_message = "stop_grace_s must be a whole number of seconds from 0 to 600."
  }
}

variable "tls" {
  description = "TLS for nginx on the master, as on OpenStack: paths on this machine of a PEM certificate (chain) and its private key. null in the YAML: the wrapper makes a self-signed certificate once per deployment (secrets/, 0600) and sets this to it; plain http only with plain_http: true."
  type = object({
    certificate_file = string
    key_file         = string
  })

  validation {
    # `||` does not short-circuit in terraform: the file checks are guarded by the conditional.
    condition     = var.tls == null ? true : try(fileexists(pathexpand(var.tls.certificate_file)) && fileexists(pathexpand(var.tls.key_file)), false)
    error_message = "tls.certificate_file and tls.key_file must be existing files (or set tls: null)."
  }
}

variable "plain_http" {
  description = "Serve plain http instead of https: only when set to true on purpose; every plan warns about it."
  type        = bool
  nullable    = false
}
