# A Hail/Spark cluster of qemu VMs on this machine: the OpenStack node path booted for real. The
# nodes boot the image packer's qemu source built, each with exactly the user-data that
# ../spark/modules/cluster renders for OpenStack (the same module, fed the VMs' flavor sizes and
# static addresses); only what cannot be the same differs: the addresses, and the tmp volume's
# device (a qemu disk whose serial is the made-up volume ID, so /dev/disk/by-id/virtio-... is the
# path the module derives, as with Cinder).
#
# Builtin terraform_data only: one for the cluster network (a bridge in a network namespace that lets
# through between the VMs only what the OpenStack internal security group opens), one
# per VM (scripts/vm-node --start / --destroy), one for the tmp volume. Workers are keyed "1".."N":
# scaling adds or removes the highest and never touches the running VMs.

locals {
  runtime = "${var.deployment_dir}/runtime"
  workers = toset([for i in range(1, var.workers + 1) : tostring(i)])

  # Short and unique per deployment: network device names hold 15 characters (IFNAMSIZ), and a
  # tap is briefly in the host's namespace before it moves into the deployment's.
  id     = substr(sha1("${var.deployment_name}/${var.deployment_owner}"), 0, 8)
  netns  = "hgi-${module.cluster.names.prefix}-${local.id}"
  bridge = "br-cluster" # inside the namespace: no clash with the host's or another deployment's
  taps   = merge({ master = "hs${local.id}m" }, { for k in local.workers : k => "hs${local.id}w${k}" })

  prefix_length    = tonumber(split("/", var.subnet_cidr)[1])
  bridge_address   = "${cidrhost(var.subnet_cidr, 1)}/${local.prefix_length}"
  host_numbers     = merge({ master = var.master_host_number }, { for k in local.workers : k => var.master_host_number + tonumber(k) })
  fits             = var.master_host_number + var.workers <= pow(2, 32 - local.prefix_length) - 2
  master_address   = local.fits ? cidrhost(var.subnet_cidr, var.master_host_number) : "0.0.0.0"
  worker_addresses = [for i in range(1, var.workers + 1) : local.fits ? cidrhost(var.subnet_cidr, var.master_host_number + i) : "0.0.0.0"]

  # Locally administered MACs: the deployment's id, then the host number (distinct per VM).
  mac_prefix = "${substr(local.id, 0, 2)}:${substr(local.id, 2, 2)}"
  macs       = { for k, n in local.host_numbers : k => format("52:54:00:%s:%02x", local.mac_prefix, n) }
  public_mac = format("52:54:01:%s:%02x", local.mac_prefix, var.master_host_number)

  # The tmp volume: a made-up Cinder-like volume ID; its first 20 characters are the disk's serial,
  # which is what the cluster module's /dev/disk/by-id/virtio-<serial> expects.
  volume_hash   = sha1("tmp-volume ${var.deployment_name}/${var.deployment_owner}")
  tmp_volume_id = var.tmp_volume_gb > 0 ? join("-", [substr(local.volume_hash, 0, 8), substr(local.volume_hash, 8, 4), substr(local.volume_hash, 12, 4), substr(local.volume_hash, 16, 4), substr(local.volume_hash, 20, 12)]) : ""
  tmp_volume    = var.tmp_volume_gb > 0 ? { path = "${local.runtime}/volumes/master-tmp.qcow2", serial = substr(local.tmp_volume_id, 0, 20) } : null

  # The master's "floating IP": ports on this machine's 127.0.0.1 forwarded to the master.
  hostfwd = join(",", [
    "tcp:127.0.0.1:${var.forwarded_ports.ssh}-:${var.ports.ssh}",
    "tcp:127.0.0.1:${var.forwarded_ports.http}-:${var.ports.http}",
    "tcp:127.0.0.1:${var.forwarded_ports.https}-:${var.ports.https}",
  ])

  scripts_dir = abspath("${path.module}/scripts")
  public_keys = trimspace(file(pathexpand(var.ssh_public_key_file)))
}

# --- the pure part: the same module as terraform/spark -------------------------------------------

module "cluster" {
  source = "../spark/modules/cluster"

  deployment_name          = var.deployment_name
  deployment_owner         = var.deployment_owner
  image                    = var.image
  workers                  = var.workers
  ports                    = var.ports
  internal_ephemeral_ports = var.internal_ephemeral_ports
  master_flavor            = { vcpus = var.master_flavor.vcpus, ram_mb = var.master_flavor.memory_mb }
  worker_flavor            = { vcpus = var.worker_flavor.vcpus, ram_mb = var.worker_flavor.memory_mb }
  sizing                   = var.sizing
  spark                    = var.spark
  ready_timeout_s          = var.ready_timeout_s
  master_address           = local.master_address
  worker_addresses         = local.worker_addresses
  subnet_cidr              = var.subnet_cidr
  jupyter_password_hash    = var.jupyter_password_hash
  tls_certificate_pem      = var.tls == null ? "" : file(pathexpand(var.tls.certificate_file))
  tls_private_key_pem      = var.tls == null ? "" : file(pathexpand(var.tls.key_file))
  tmp_volume_id            = local.tmp_volume_id
}

locals {
  names = module.cluster.names

  # The OpenStack cluster's internal security group (the cluster module's rules), which vm-net
  # enforces between the VMs: "tcp:MIN-MAX" words, sorted.
  member_rules = join(" ", sort([for rule in values(module.cluster.internal_rules) : "${rule.protocol}:${rule.min}-${rule.max}"]))

  # What every VM's vm-node reads (README.md); the user-data is added only when a VM is created.
  vm_common = {
    VM_NETNS        = local.netns
    VM_BRIDGE       = local.bridge
    VM_IMAGE        = var.image_path
    VM_ACCEL        = var.accelerator
    VM_ROOT_DISK_GB = tostring(var.root_disk_gb)
    VM_PUBLIC_KEYS  = local.public_keys
    VM_STOP_GRACE_S = tostring(var.stop_grace_s)
  }

  master_vm = merge(local.vm_common, {
    VM_NAME             = local.names.master
    VM_DIR              = "${local.runtime}/master"
    VM_VCPUS            = tostring(var.master_flavor.vcpus)
    VM_MEMORY_MB        = tostring(var.master_flavor.memory_mb)
    VM_TAP              = local.taps.master
    VM_MAC              = local.macs.master
    VM_ADDRESS          = "${local.master_address}/${local.prefix_length}"
    VM_INSTANCE_ID      = "${local.names.master}-${lookup(var.generations, "master", 0)}"
    VM_PUBLIC_MAC       = local.public_mac
    VM_HOSTFWD          = local.hostfwd
    VM_DATA_DISK        = local.tmp_volume == null ? "" : local.tmp_volume.path
    VM_DATA_DISK_SERIAL = local.tmp_volume == null ? "" : local.tmp_volume.serial
  })

  # Settings that only say how a VM is stopped: a change updates the input, never the VM.
  not_replacing = ["VM_STOP_GRACE_S"]

  worker_vms = {
    for k in local.workers : k => merge(local.vm_common, {
      VM_NAME        = local.names.workers[tonumber(k) - 1]
      VM_DIR         = "${local.runtime}/worker-${k}"
      VM_VCPUS       = tostring(var.worker_flavor.vcpus)
      VM_MEMORY_MB   = tostring(var.worker_flavor.memory_mb)
      VM_TAP         = local.taps[k]
      VM_MAC         = local.macs[k]
      VM_ADDRESS     = "${local.worker_addresses[tonumber(k) - 1]}/${local.prefix_length}"
      VM_INSTANCE_ID = "${local.names.workers[tonumber(k) - 1]}-${lookup(var.generations, k, 0)}"
    })
  }
}

# --- the cluster network ----------------------------------------------------------------------------

resource "terraform_data" "network" {
  # generations["network"]: moved on by the wrapper when the namespace is gone (a reboot of this
  # machine), so the next plan re-creates it; the VMs then need theirs moved on too.
  triggers_replace = { netns = local.netns, bridge = local.bridge, address = local.bridge_address, generation = lookup(var.generations, "network", 0) }
  input = {
    vm_net = "${local.scripts_dir}/vm-net"
    env = {
      VM_NETNS          = local.netns
      VM_BRIDGE         = local.bridge
      VM_BRIDGE_ADDRESS = local.bridge_address
      VM_MEMBER_RULES   = local.member_rules
    }
  }

  lifecycle {
    precondition {
      condition     = local.fits
      error_message = "subnet_cidr ${var.subnet_cidr} has no room for the master at host ${var.master_host_number} and ${var.workers} workers after it."
    }
  }

  provisioner "local-exec" {
    command     = "\"$VM_NET\" --up"
    environment = merge(self.input.env, { VM_NET = self.input.vm_net })
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$VM_NET\" --down"
    environment = merge(self.input.env, { VM_NET = self.input.vm_net })
  }
}

# --- the master's tmp volume (its Cinder volume): outlives a re-created master -----------------------

resource "terraform_data" "tmp_volume" {
  count = var.tmp_volume_gb > 0 ? 1 : 0

  triggers_replace = { path = local.tmp_volume.path, size_gb = var.tmp_volume_gb }
  input = {
    vm_node = "${local.scripts_dir}/vm-node"
    env     = { VM_DATA_DISK = local.tmp_volume.path, VM_DATA_DISK_GB = tostring(var.tmp_volume_gb) }
  }

  provisioner "local-exec" {
    command     = "\"$VM_NODE\" --create-volume"
    environment = merge(self.input.env, { VM_NODE = self.input.vm_node })
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$VM_NODE\" --delete-volume"
    environment = merge(self.input.env, { VM_NODE = self.input.vm_node })
  }
}

# --- the VMs -----------------------------------------------------------------------------------------

resource "terraform_data" "master" {
  # A new user-data, image, flavor or accelerator re-creates the VM (as Nova would rebuild it);
  # input carries what destroy needs. The user-data itself is in no input: it holds the Jupyter
  # password hash; only its digest is here.
  triggers_replace = {
    user_data  = sha256(module.cluster.master_user_data)
    vm         = { for k, v in local.master_vm : k => v if !contains(local.not_replacing, k) }
    generation = lookup(var.generations, "master", 0)
  }
  input = {
    vm_node = "${local.scripts_dir}/vm-node"
    env     = local.master_vm
  }

  provisioner "local-exec" {
    command = "\"$VM_NODE\" --start"
    # nonsensitive: terraform would otherwise hide vm-node's whole log; the user-data reaches only
    # the VM's seed (0600) and never the log.
    environment = merge(self.input.env, { VM_NODE = self.input.vm_node, VM_USER_DATA = nonsensitive(module.cluster.master_user_data) })
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$VM_NODE\" --destroy"
    environment = merge(self.input.env, { VM_NODE = self.input.vm_node })
  }

  depends_on = [terraform_data.network, terraform_data.tmp_volume]
}

resource "terraform_data" "worker" {
  for_each = local.workers

  triggers_replace = {
    user_data  = sha256(module.cluster.worker_user_data[tonumber(each.key) - 1])
    vm         = { for k, v in local.worker_vms[each.key] : k => v if !contains(local.not_replacing, k) }
    generation = lookup(var.generations, each.key, 0)
  }
  input = {
    vm_node = "${local.scripts_dir}/vm-node"
    env     = local.worker_vms[each.key]
  }

  provisioner "local-exec" {
    command     = "\"$VM_NODE\" --start"
    environment = merge(self.input.env, { VM_NODE = self.input.vm_node, VM_USER_DATA = nonsensitive(module.cluster.worker_user_data[tonumber(each.key) - 1]) })
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$VM_NODE\" --destroy"
    environment = merge(self.input.env, { VM_NODE = self.input.vm_node })
  }

  # After the master: its qemu starts half a second later (run-node on a worker waits for the master
  # itself, as on OpenStack), and, what matters, workers are destroyed before the master, so a
  # worker's power-off can still unmount the master's NFS export instead of hanging on it.
  depends_on = [terraform_data.network, terraform_data.master]
}
