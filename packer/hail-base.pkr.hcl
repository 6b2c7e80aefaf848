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

# --- the build VM on this machine (source qemu; none of these matter to the openstack source) ---

variable "qemu_base_disk" {
  type        = string
  default     = ""
  description = "The base disk (raw or qcow2) made by scripts/make-base-disk; copied, never changed."
}

variable "qemu_output_directory" {
  type        = string
  default     = ""
  description = "Folder for the new image, <image_name>.qcow2; it must not exist yet. Empty = output-hail-base in the working folder."
}

variable "qemu_accelerator" {
  type        = string
  default     = "tcg"
  description = "qemu accelerator: tcg (software emulation, always works) or kvm (when a probe showed it boots)."
}

variable "qemu_cpu_model" {
  type        = string
  default     = "max"
  description = "qemu -cpu model: max under tcg (fastest emulation), host under kvm."
}

variable "qemu_cpus" {
  type        = number
  default     = 2
  description = "vCPUs of the build VM."
}

variable "qemu_memory_mb" {
  type        = number
  default     = 2048
  description = "Memory of the build VM in MiB."
}

variable "qemu_seed_dir" {
  type        = string
  default     = ""
  description = "Folder with the NoCloud user-data and meta-data of this build (authorizes qemu_ssh_private_key_file's public key for ssh_username); packer attaches them as a cidata CD."
}

variable "qemu_ssh_private_key_file" {
  type        = string
  default     = ""
  description = "Private key made for this build only; its public key is in qemu_seed_dir/user-data."
}

variable "qemu_wheelhouse_dir" {
  type        = string
  default     = ""
  description = "Wheels of the venv built on the host (scripts/make-wheelhouse), served on 127.0.0.1 to the VM; install-node then installs from it only. Empty = the package index."
}

variable "qemu_serial_log" {
  type        = string
  default     = ""
  description = "File for the build VM's serial console (boot and cloud-init messages); empty = none."
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

# The same image built on this machine: a copy of the base disk booted under qemu, packer logging
# in with a key made for this build only (delivered by a NoCloud seed on a CD). Everything listens
# on 127.0.0.1 only: the ssh port forward, VNC, and the http server of the wheelhouse (the guest
# reaches it as 10.0.2.2 through user-mode networking).
source "qemu" "hail-base" {
  disk_image       = true
  iso_url          = var.qemu_base_disk
  iso_checksum     = "none"
  format           = "qcow2"
  skip_resize_disk = true
  disk_interface   = "virtio"
  # The build's guest flushes are not waited for: qemu writes everything out when the VM stops,
  # and a build that fails half-way is thrown away anyway.
  disk_cache       = "unsafe"
  net_device       = "virtio-net"
  vm_name          = "${var.image_name}.qcow2"
  output_directory = var.qemu_output_directory
  accelerator      = var.qemu_accelerator
  cpus             = var.qemu_cpus
  memory           = var.qemu_memory_mb
  headless         = true
  vnc_bind_address = "127.0.0.1"
  qemuargs = concat(
    [
      ["-cpu", var.qemu_cpu_model],
      # packer's default forward listens on every interface: loopback only.
      ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ],
    var.qemu_serial_log != "" ? [["-serial", "file:${var.qemu_serial_log}"]] : [],
  )
  cd_files               = var.qemu_seed_dir != "" ? ["${var.qemu_seed_dir}/user-data", "${var.qemu_seed_dir}/meta-data"] : []
  cd_label               = "cidata"
  http_directory         = var.qemu_wheelhouse_dir
  http_bind_address      = "127.0.0.1"
  ssh_username           = var.ssh_username
  ssh_private_key_file   = var.qemu_ssh_private_key_file
  ssh_timeout            = "30m"
  ssh_handshake_attempts = 200
  shutdown_command       = "sudo -n shutdown -P now"
  shutdown_timeout       = "10m"
}

build {
  sources = ["source.openstack.hail-base", "source.qemu.hail-base"]

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
    source      = "${path.root}/scripts/install-hail-env"
    destination = "${local.staging}/install-hail-env"
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

  # The qemu source installs the venv from the host's wheelhouse (packer serves it; the shell
  # provisioner exports its address as PACKER_HTTP_ADDR); the openstack source from the index.
  provisioner "shell" {
    inline = [
      "sudo -n bash ${local.staging}/install-node --env-file ${local.staging}/install.env --constraints ${local.staging}/constraints.txt --node-scripts ${local.staging}/node${source.type == "qemu" && var.qemu_wheelhouse_dir != "" ? " --find-links http://$PACKER_HTTP_ADDR/" : ""}",
      "rm -rf ${local.staging}",
    ]
  }

  # Every clone boots fresh: cloud-init runs again (no state, logs or seed), systemd makes a new
  # machine id (an empty file, not "uninitialized": no first-boot presets re-enabling disabled
  # units), and the build's login key leaves authorized_keys, the user's and root's (cloud-init's
  # disable_root puts it there behind a "login as" command; the session stays open). Where
  # systemd-networkd is not the network, its wait-online unit is masked (it stalls boots 2 min).
  provisioner "shell" {
    inline = [
      "if command -v cloud-init >/dev/null; then sudo -n cloud-init clean --logs --seed; fi",
      "systemctl is-enabled --quiet systemd-networkd.service || sudo -n systemctl mask --quiet systemd-networkd-wait-online.service",
      "sudo -n truncate -s 0 /etc/machine-id",
      "if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then sudo -n rm -f /var/lib/dbus/machine-id; fi",
      "sudo -n rm -f /root/.ssh/authorized_keys",
      "rm -f ~/.ssh/authorized_keys",
    ]
  }
}
