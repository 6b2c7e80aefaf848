# The same names as terraform/spark/outputs.tf where they mean the same, so the code that reads an
# OpenStack deployment's outputs reads these; console_logs replaces Nova's console output.

locals {
  public_address = "127.0.0.1"
  # nginx's https port inside the master, forwarded to this machine's loopback; http redirects there.
  site = var.tls == null ? "http://${local.public_address}:${var.forwarded_ports.http}" : "https://${local.public_address}:${var.forwarded_ports.https}"
  # ~/.ssh/id_ed25519.pub -> ~/.ssh/id_ed25519, the private key beside it.
  identity_file = endswith(var.ssh_public_key_file, ".pub") ? trimsuffix(var.ssh_public_key_file, ".pub") : ""
}

output "master_name" {
  description = "Name of the master VM (its hostname, as the OpenStack server's name)."
  value       = local.names.master
}

output "worker_names" {
  description = "Names of the worker VMs, in order."
  value       = local.names.workers
}

output "master_public_ip" {
  description = "Where the master's forwarded ports listen: this machine's loopback (the VMs' \"floating IP\")."
  value       = local.public_address
}

output "master_private_ip" {
  description = "The master's address on the cluster network (Spark master host, NFS server)."
  value       = local.master_address
}

output "worker_private_ips" {
  description = "The workers' addresses on the cluster network, in worker order."
  value       = local.worker_addresses
}

output "jupyter_url" {
  description = "JupyterLab, behind nginx on the master, through the forwarded https port (password: `password` task or `outputs --show-secrets`)."
  value       = "${local.site}/jupyter/"

  precondition {
    condition     = var.tls != null || var.plain_http
    error_message = "No TLS certificate and plain_http is false: give tls (or leave it null for the wrapper's self-signed one), or set plain_http: true on purpose."
  }
}

output "spark_ui_url" {
  description = "The Spark master's web UI, behind nginx on the master, through the forwarded https port."
  value       = "${local.site}/spark/"
}

output "ssh_command" {
  description = "How to log in to the master through its forwarded ssh port (`ssh-config` prints a ~/.ssh/config entry with its host key pinned)."
  value       = join(" ", compact(["ssh", "-p ${var.forwarded_ports.ssh}", local.identity_file == "" ? "" : "-i ${local.identity_file}", "${var.ssh_user}@${local.public_address}"]))
}

output "ssh" {
  description = "What `ssh-config` needs: host alias, address, user, port, identity file and the master's server name (its console log holds the host keys)."
  value = {
    alias         = local.names.master
    host          = local.public_address
    user          = var.ssh_user
    port          = var.forwarded_ports.ssh
    identity_file = local.identity_file
    server        = local.names.master
  }
}

output "ready_lines" {
  description = "The console-log line each node prints once configured, keyed by server name (`up` and `status` wait for them in console_logs)."
  value       = module.cluster.ready_lines
}

output "console_logs" {
  description = "Each VM's serial console log (Nova's console output for OpenStack servers), keyed by server name: cloud-init's output, the ssh host keys and the ready line."
  value = merge(
    { (local.names.master) = "${local.master_vm.VM_DIR}/console.log" },
    { for k, vm in local.worker_vms : vm.VM_NAME => "${vm.VM_DIR}/console.log" },
  )
}

output "vms" {
  description = "Each VM keyed by server name: role, its folder, the env file for `vm-node --env-file F --status`, pid file, address and tap (for status and diagnostics)."
  value = merge(
    { (local.names.master) = { role = "master", key = "master", dir = local.master_vm.VM_DIR, env_file = "${local.master_vm.VM_DIR}/vm.env", pid_file = "${local.master_vm.VM_DIR}/qemu.pid", address = local.master_address, tap = local.master_vm.VM_TAP } },
    { for k, vm in local.worker_vms : vm.VM_NAME => { role = "worker", key = k, dir = vm.VM_DIR, env_file = "${vm.VM_DIR}/vm.env", pid_file = "${vm.VM_DIR}/qemu.pid", address = local.worker_addresses[tonumber(k) - 1], tap = vm.VM_TAP } },
  )
}

output "vm_node" {
  description = "The VM script (scripts/vm-node): `vm-node --env-file VMS[name].env_file --status | --wait LINE | --stop`."
  value       = "${local.scripts_dir}/vm-node"
}

output "network" {
  description = "The cluster network: namespace (`ip netns exec NETNS ssh ADDRESS` reaches any VM), bridge, its address and the subnet."
  value = {
    netns          = local.netns
    bridge         = local.bridge
    bridge_address = local.bridge_address
    subnet_cidr    = var.subnet_cidr
  }
}

output "tmp_volume" {
  description = "The master's tmp volume: the disk file and the made-up volume ID whose first 20 characters are its serial; null without one."
  value       = local.tmp_volume == null ? null : merge(local.tmp_volume, { id = local.tmp_volume_id, size_gb = var.tmp_volume_gb })
}

output "accelerator" {
  description = "kvm or tcg: how the VMs run (tcg is several times slower; readiness waits should allow for it)."
  value       = var.accelerator
}

output "runtime_dir" {
  description = "Overlays, seeds, console logs, pid files and the tmp volume of the VMs."
  value       = local.runtime
}

output "spark_sizes" {
  description = "Spark's cut of the worker flavor, and the driver's heap on the master."
  value       = merge(module.cluster.worker_size, { driver_memory_mb = module.cluster.driver_memory_mb })
}

output "metadata" {
  description = "The metadata every OpenStack server would carry (deployment, owner, image, role), for parity with terraform/spark."
  value       = module.cluster.metadata
}
