# hail-base: a Debian (or Ubuntu) cloud image with Java, Spark (pyspark), Hail, JupyterLab, nginx
# and NFS baked in. Every value comes from a var file generated from images/hail-base/<version>/image.yml
# (invoke/hgi_spark/packer.py); the variables are documented in packer/README.md.
#
# Works with Debian's packer 1.6.6 (openstack builder built in, no `packer init`) and with current
# packer, which reads packer/plugins/plugins.pkr.hcl through `packer init` only.

packer {
  required_version = ">= 1.6.6"
}

# --- the image -------------------------------------------------------------------------------------

variable "image_name" {
  type        = string
  description = "Glance name of the new image, <name>-<version> (e.g. hail-base-1.0.0)."
}

variable "image_version" {
  type        = string
  description = "Version of the image definition (images/<name>/<version>/), stored as a property."
}

variable "image_visibility" {
  type        = string
  default     = "shared"
  description = "Glance visibility; 'shared' lets `image share` add members (a 'private' image refuses them)."
}

variable "image_tags" {
  type        = list(string)
  default     = []
  description = "Glance tags of the new image."
}

variable "image_properties" {
  type        = map(string)
  default     = {}
  description = "Extra Glance properties; the versions and the git commit are added by the template."
}

variable "software" {
  type        = map(string)
  description = "The versions baked in (image.yml `software:`): java, python, hail, pyspark, jupyterlab."
}

variable "git_commit" {
  type        = string
  default     = "unknown"
  description = "Commit of this repository the image was built from (property hgi_git_commit)."
}

# --- the build VM ----------------------------------------------------------------------------------

variable "cloud" {
  type        = string
  default     = ""
  description = "Name of a clouds.yaml entry; empty = the OS_* environment."
}

variable "source_image_name" {
  type        = string
  default     = ""
  description = "Glance name of the base image; empty when source_image_filter is used."
}

variable "source_image_filter" {
  type        = map(string)
  default     = {}
  description = "Filter for the most recent base image: keys name, owner, visibility (any of them); empty = use source_image_name."
}

variable "source_image_filter_tags" {
  type        = list(string)
  default     = []
  description = "Tags the base image must carry (with source_image_filter)."
}

variable "flavor" {
  type        = string
  description = "Nova flavor of the build VM."
}

variable "networks" {
  type        = list(string)
  default     = []
  description = "Network UUIDs for the build VM; empty = the project's only network."
}

variable "floating_ip_network" {
  type        = string
  default     = ""
  description = "External network to take a floating IP from; empty = none (packer reaches the VM directly)."
}

variable "security_groups" {
  type        = list(string)
  default     = []
  description = "Security groups of the build VM (ssh must be allowed from where packer runs); empty = default."
}

variable "ssh_username" {
  type        = string
  default     = "debian"
  description = "Login user of the base image (debian, ubuntu ...); it must have passwordless sudo."
}

variable "disk_gb" {
  type        = number
  default     = 20
  description = "Root disk in GB: the boot volume size with use_blockstorage_volume, and the image's min_disk."
}

variable "use_blockstorage_volume" {
  type        = bool
  default     = false
  description = "Boot the build VM from a Cinder volume of disk_gb (for flavors without a root disk)."
}

# --- what is installed -----------------------------------------------------------------------------

variable "install_env_file" {
  type        = string
  description = "The env file generated from image.yml (hgi_spark.provisioning.write_install_env)."
}

variable "constraints_file" {
  type        = string
  description = "pip constraints beside image.yml (exact versions of Hail's and JupyterLab's dependencies)."
}

variable "node_scripts_dir" {
  type        = string
  default     = ""
  description = "The node run scripts to bake in; empty = terraform/modules/spark-node/scripts of this repository."
}

locals {
  staging          = "/tmp/hgi-spark-install"
  node_scripts_dir = var.node_scripts_dir != "" ? var.node_scripts_dir : "${path.root}/../terraform/modules/spark-node/scripts"
  properties = merge(
    var.image_properties,
    { for name, version in var.software : "hgi_${name}_version" => version },
    {
      hgi_image_name    = var.image_name
      hgi_image_version = var.image_version
      hgi_git_commit    = var.git_commit
    },
  )
}

source "openstack" "hail-base" {
  cloud                   = var.cloud
  image_name              = var.image_name
  image_visibility        = var.image_visibility
  image_tags              = var.image_tags
  image_min_disk          = var.disk_gb
  metadata                = local.properties
  source_image_name       = var.source_image_name
  flavor                  = var.flavor
  networks                = var.networks
  floating_ip_network     = var.floating_ip_network
  security_groups         = var.security_groups
  ssh_username            = var.ssh_username
  use_blockstorage_volume = var.use_blockstorage_volume
  volume_size             = var.use_blockstorage_volume ? var.disk_gb : 0

  dynamic "source_image_filter" {
    for_each = length(var.source_image_filter) > 0 ? [var.source_image_filter] : []
    content {
      most_recent = true
      filters {
        name       = lookup(source_image_filter.value, "name", "")
        owner      = lookup(source_image_filter.value, "owner", "")
        visibility = lookup(source_image_filter.value, "visibility", "")
        tags       = var.source_image_filter_tags
      }
    }
  }
}

build {
  sources = ["source.openstack.hail-base"]

  # Let cloud-init finish on the base image (it may hold the apt lock), then stage the files.
  provisioner "shell" {
    inline = [
      "if command -v cloud-init >/dev/null; then sudo cloud-init status --wait >/dev/null || [ $? -eq 2 ]; fi",
      "rm -rf ${local.staging} && mkdir -p ${local.staging}/node",
    ]
  }

  provisioner "file" {
    source      = "${path.root}/scripts/install-node"
    destination = "${local.staging}/install-node"
  }

  provisioner "file" {
    source      = var.install_env_file
    destination = "${local.staging}/install.env"
  }

  provisioner "file" {
    source      = var.constraints_file
    destination = "${local.staging}/constraints.txt"
  }

  # A trailing slash uploads the folder's contents into the destination.
  provisioner "file" {
    source      = "${local.node_scripts_dir}/"
    destination = "${local.staging}/node"
  }

  provisioner "shell" {
    inline = [
      "sudo -n bash ${local.staging}/install-node --env-file ${local.staging}/install.env --constraints ${local.staging}/constraints.txt --node-scripts ${local.staging}/node",
      "rm -rf ${local.staging}",
      "if command -v cloud-init >/dev/null; then sudo -n cloud-init clean --logs; fi",
    ]
  }
}
