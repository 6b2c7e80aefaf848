variable "role" {
  description = "The node's role: master or worker."
  type        = string
  nullable    = false

  validation {
    condition     = contains(["master", "worker"], var.role)
    error_message = "role must be one of: master, worker."
  }
}

variable "node_env" {
  description = "The node environment of ../spark-node/README.md, written to env_file as given. Values are single words (no spaces, quotes, '$' or newlines) so the file reads the same from bash and from systemd's EnvironmentFile."
  type        = map(string)
  nullable    = false

  validation {
    condition = alltrue([
      for k, v in var.node_env : can(regex("^[A-Za-z0-9_./:,@+=%*-]*$", v))
    ])
    error_message = "node_env values must be single words of letters, digits and _ . / : , @ + = % * - (no spaces, quotes, '$' or newlines)."
  }

  validation {
    condition     = alltrue([for k in keys(var.node_env) : can(regex("^[A-Z][A-Z0-9_]*$", k))])
    error_message = "node_env keys must be environment variable names (A-Z, 0-9, _), as in ../spark-node/README.md."
  }

  validation {
    # The few variables this module itself reads; the whole contract is checked where the
    # environment is built (terraform/spark/modules/cluster) and by the node scripts at boot.
    condition     = alltrue([for k in ["NODE_MODE", "NODE_NAME", "STATE_DIR", "APP_USER"] : lookup(var.node_env, k, "") != ""])
    error_message = "node_env must set NODE_MODE, NODE_NAME, STATE_DIR and APP_USER (see ../spark-node/README.md)."
  }

  validation {
    condition     = lookup(var.node_env, "NODE_MODE", "system") == "system"
    error_message = "cloud-init configures OpenStack nodes: node_env.NODE_MODE must be system (local mode is the local cluster's)."
  }
}

variable "env_file" {
  description = "Where the node environment is written on the node."
  type        = string
  default     = "/etc/hgi-spark/node.env"
  nullable    = false

  validation {
    condition     = startswith(var.env_file, "/")
    error_message = "env_file must be an absolute path."
  }
}

variable "run_node" {
  description = "The baked boot-time script that configures and starts the node (packer puts the spark-node scripts in /opt/hgi-spark/node/)."
  type        = string
  default     = "/opt/hgi-spark/node/run-node"
  nullable    = false

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+$", var.run_node))
    error_message = "run_node must be an absolute path of letters, digits and _ . / -."
  }
}

variable "jupyter_password_hash" {
  description = "JupyterLab's hashed password (jupyter_server's passwd() format, e.g. argon2:... or sha1:salt:digest), written on the master to node_env.JUPYTER_PASSWORD_HASH_FILE; never the plain password."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true

  validation {
    condition     = var.jupyter_password_hash == "" || can(regex("^(argon2|sha1|sha256|sha512):\\S+$", var.jupyter_password_hash))
    error_message = "jupyter_password_hash must be a hash in jupyter_server's format (argon2:..., sha1:salt:digest, ...), not a plain password."
  }
}

variable "tls_certificate_pem" {
  description = "Optional PEM certificate (chain) for nginx on the master, written to node_env.TLS_CERT_FILE; empty for plain http."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.tls_certificate_pem == "" || strcontains(var.tls_certificate_pem, "-----BEGIN CERTIFICATE-----")
    error_message = "tls_certificate_pem must be empty or a PEM certificate (-----BEGIN CERTIFICATE-----)."
  }
}

variable "tls_private_key_pem" {
  description = "Optional PEM private key matching tls_certificate_pem, written to node_env.TLS_KEY_FILE with mode 0600."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true

  validation {
    condition     = var.tls_private_key_pem == "" || can(regex("-----BEGIN [A-Z ]*PRIVATE KEY-----", var.tls_private_key_pem))
    error_message = "tls_private_key_pem must be empty or a PEM private key (-----BEGIN ... PRIVATE KEY-----)."
  }
}

variable "ready_marker" {
  description = "Start of the console-log line that says the node is configured (run-node itself writes STATE_DIR/ready); `up` and `status` look for it."
  type        = string
  default     = "hgi-spark-node-ready"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.ready_marker))
    error_message = "ready_marker must be lowercase letters, digits and '-'."
  }
}

variable "data_volume" {
  description = "Optional block device to format (only when it holds no filesystem with this label) and mount, e.g. the master's Cinder volume for the shared tmp directory. device is a stable path such as /dev/disk/by-id/virtio-<first 20 characters of the volume id>."
  type = object({
    device      = string
    mount_point = string
    label       = string
    filesystem  = optional(string, "ext4")
  })
  default = null

  validation {
    condition     = var.data_volume == null || (startswith(try(var.data_volume.device, ""), "/dev/") && startswith(try(var.data_volume.mount_point, ""), "/"))
    error_message = "data_volume.device must be a /dev/ path and data_volume.mount_point an absolute path."
  }

  validation {
    condition     = var.data_volume == null || can(regex("^[a-z0-9-]{1,16}$", try(var.data_volume.label, "")))
    error_message = "data_volume.label must be 1 to 16 characters of a-z, 0-9 and '-' (ext4 labels hold 16)."
  }

  validation {
    condition     = var.data_volume == null || contains(["ext4", "xfs"], try(var.data_volume.filesystem, ""))
    error_message = "data_volume.filesystem must be one of: ext4, xfs."
  }
}
