# The root module of deployments called `spark` (deployments/spark/OWNER/deployment.yml).
# Defaults live in deployments/defaults.yml and deployments/spark/defaults.yml, not here: every
# variable the YAML sets is required here, so a key missing from the YAML is an error at once.

# --- set by the wrapper ---------------------------------------------------------------------------

variable "deployment_name" {
  description = "NAME of deployments/NAME/OWNER (always spark here). Set by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.deployment_name))
    error_message = "deployment_name must be lowercase letters, digits, '_', '.' and '-'."
  }
}

variable "deployment_owner" {
  description = "OWNER of deployments/NAME/OWNER, e.g. ld14. Set by the wrapper."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_.-]*$", var.deployment_owner))
    error_message = "deployment_owner must be lowercase letters, digits, '_', '.' and '-'."
  }
}

variable "image" {
  description = "The image the nodes boot, from `image: NAME/VERSION` in the YAML (set by the wrapper from images/NAME/VERSION/image.yml): name, version, glance_name and software versions."
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
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.image.version)) && var.image.glance_name != ""
    error_message = "image.version must be MAJOR.MINOR.PATCH and image.glance_name the Glance image's name."
  }
}

variable "image_id" {
  description = "Glance ID of the image the nodes boot, set by the wrapper: resolved from Glance by image.glance_name at the first `up`, then the ID recorded in the state (output node_images) for a running cluster. Empty looks the image up by name (the newest of that name). Changing it replaces every node (terraform_data.image in main.tf), visibly in the plan; it never rebuilds one in place."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.image_id == "" || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.image_id))
    error_message = "image_id must be empty (look the image up by image.glance_name) or a Glance image ID (a UUID, openstack image list)."
  }
}

variable "jupyter_password_hash" {
  description = "Hash of the JupyterLab password (jupyter_server's passwd() format). Set by the wrapper from the password it generates once per deployment and keeps in secrets/; never in the YAML. The master refuses to render without it."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true
}

# --- deployments/defaults.yml ----------------------------------------------------------------------

variable "ports" {
  description = "Every port of the cluster, the single home of port numbers: security groups, node environment, Spark and nginx configuration read it."
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

  validation {
    condition     = abs(var.ports.spark_driver - var.ports.spark_blockmanager) >= 1 && length(distinct([for name, port in var.ports : port])) == length(var.ports)
    error_message = "Ports must all differ (the driver and block manager ports too)."
  }
}

# --- deployments/spark/defaults.yml and deployment.yml ---------------------------------------------

variable "workers" {
  description = "Number of Spark workers, 0 to 999. Growing or shrinking the count adds or removes the last workers only: names, user-data and metadata of the others do not depend on it."
  type        = number
  nullable    = false

  validation {
    # Worker names have three digits (terraform/modules/naming), whatever the count.
    condition     = var.workers == floor(var.workers) && var.workers >= 0 && var.workers <= 999
    error_message = "workers must be a whole number from 0 to 999 (workers are named worker-001 .. worker-999)."
  }
}

variable "master_flavor" {
  description = "Nova flavor name of the master (Spark master, NFS server, JupyterLab and the driver)."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.master_flavor) != ""
    error_message = "master_flavor must name a flavor (openstack flavor list)."
  }
}

variable "worker_flavor" {
  description = "Nova flavor name of every worker; Spark's worker and executor sizes follow its vCPUs and RAM."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.worker_flavor) != ""
    error_message = "worker_flavor must name a flavor (openstack flavor list)."
  }
}

variable "availability_zone" {
  description = "Nova availability zone of the nodes (and Cinder zone of the tmp volume unless volume_availability_zone is set); null lets the cloud choose. Changing it replaces every node (ForceNew)."
  type        = string
}

variable "volume_availability_zone" {
  description = "Cinder availability zone of the master's tmp volume, for clouds whose compute and volume zones have different names; null uses availability_zone. Changing it replaces the volume (ForceNew): its data is lost."
  type        = string
}

variable "boot_from_volume" {
  description = "Boot every node from a Cinder volume made from the image (size_gb, volume_type: null for the cloud's default), for flavors with no or a small root disk; null boots from the image on the flavor's local disk. The boot volumes are deleted with their servers. Changing it replaces every node."
  type = object({
    size_gb     = number
    volume_type = optional(string)
  })

  validation {
    # `||` does not short-circuit in terraform: the size check is guarded by the conditional.
    condition     = var.boot_from_volume == null ? true : try(var.boot_from_volume.size_gb == floor(var.boot_from_volume.size_gb) && var.boot_from_volume.size_gb >= 1 && var.boot_from_volume.size_gb <= 65536, false)
    error_message = "boot_from_volume must be null (boot from the image on the local disk) or {size_gb: N} with N a whole number of GB from 1 to 65536 (at least the image's min_disk), and optionally volume_type."
  }
}

variable "external_network" {
  description = "Name of the external network: the floating IP pool of the master, and the gateway of the router when network.create is true."
  type        = string
  nullable    = false

  validation {
    condition     = trimspace(var.external_network) != ""
    error_message = "external_network must name the external network (openstack network list --external)."
  }
}

variable "network" {
  description = "The cluster's private network: an existing one by name (create = false; subnet_name when it has several IPv4 subnets), or a network, subnet (cidr, dns_nameservers) and router to the external network that the deployment creates (create = true)."
  type = object({
    create          = bool
    name            = optional(string)
    subnet_name     = optional(string)
    cidr            = optional(string)
    dns_nameservers = optional(list(string), [])
  })
  nullable = false

  validation {
    condition     = var.network.create || try(trimspace(var.network.name), "") != ""
    error_message = "network.name must name an existing network when network.create is false."
  }

  validation {
    condition     = !var.network.create || can(cidrhost(var.network.cidr, 0))
    error_message = "network.cidr must be an IPv4 CIDR such as 10.42.0.0/24 when network.create is true."
  }

  validation {
    condition     = alltrue([for ip in coalesce(var.network.dns_nameservers, []) : can(cidrhost("${ip}/32", 0))])
    error_message = "network.dns_nameservers must be IPv4 addresses."
  }
}

variable "allowed_cidrs" {
  description = "Networks allowed to reach the master's ssh, http and https ports (e.g. your institution's ranges). Everything else on the cluster is reachable only from its own members."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_cidrs must list at least one CIDR, e.g. 192.0.2.0/24."
  }

  validation {
    condition     = alltrue([for c in var.allowed_cidrs : try(tonumber(split("/", c)[1]) > 0, true)])
    error_message = "allowed_cidrs must not hold 0.0.0.0/0 or ::/0: name the networks that need the cluster."
  }
}

variable "ssh_public_key_file" {
  description = "Path of your OpenSSH public key (~ allowed); it becomes the deployment's Nova key pair."
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
  description = "Login user of the image for ssh (the cloud image's default user that receives the key pair)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "ssh_user must be a Linux user name."
  }
}

variable "tmp_volume_gb" {
  description = "Size in GB of a Cinder volume mounted at the master's shared tmp directory (HAIL_TMP_DIR, exported over NFS); 0 keeps it on the master's root disk. It may grow on a running cluster (extended online, the filesystem grown by the master's hgi-spark-grow-tmp unit); shrinking is refused (Cinder cannot)."
  type        = number
  nullable    = false

  validation {
    condition     = var.tmp_volume_gb == floor(var.tmp_volume_gb) && var.tmp_volume_gb >= 0 && var.tmp_volume_gb <= 65536
    error_message = "tmp_volume_gb must be a whole number of GB from 0 (no volume) to 65536."
  }
}

variable "tmp_volume_type" {
  description = "Cinder volume type of the tmp volume; null for the cloud's default."
  type        = string
}

variable "tls" {
  description = "TLS for nginx on the master: paths on this machine of a PEM certificate (chain) and its private key. null in the YAML: the wrapper makes a self-signed certificate once per deployment (secrets/, 0600) and sets this to it; plain http only with plain_http: true."
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
  description = "Serve plain http instead of https (the Jupyter password then crosses the network in clear text): only when set to true on purpose; every `up` warns about it."
  type        = bool
  nullable    = false
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
  description = "Spark settings of the nodes: how often a worker removes the work dirs of finished applications (each Hail application copies its 141 MB jar there) and after how long."
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

variable "internal_ephemeral_ports" {
  description = "TCP range opened between cluster members for Spark's unpinned ports (a worker's RPC port, every executor's RPC and block manager ports): the Linux ephemeral port range (net.ipv4.ip_local_port_range), from which the kernel gives a port-0 bind."
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

variable "ready_timeout_s" {
  description = "How long a node's run-node waits for the node to be ready, in seconds (a worker waits for the master too)."
  type        = number
  nullable    = false

  validation {
    condition     = var.ready_timeout_s == floor(var.ready_timeout_s) && var.ready_timeout_s >= 30
    error_message = "ready_timeout_s must be a whole number of seconds, at least 30."
  }
}
