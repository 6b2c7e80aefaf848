locals {
  public_address = openstack_networking_floatingip_v2.master.address
  scheme         = var.tls == null ? "http" : "https"
  # ~/.ssh/id_ed25519.pub -> ~/.ssh/id_ed25519, the private key beside it.
  identity_file = endswith(var.ssh_public_key_file, ".pub") ? trimsuffix(var.ssh_public_key_file, ".pub") : ""
}

output "master_name" {
  description = "Name of the master server."
  value       = local.names.master
}

output "worker_names" {
  description = "Names of the worker servers, in order."
  value       = local.names.workers
}

output "master_public_ip" {
  description = "The master's floating IP."
  value       = local.public_address
}

output "master_private_ip" {
  description = "The master's address on the cluster network (Spark master host, NFS server)."
  value       = openstack_networking_port_v2.master.all_fixed_ips[0]
}

output "worker_private_ips" {
  description = "The workers' addresses on the cluster network, in worker order."
  value       = [for port in openstack_networking_port_v2.worker : port.all_fixed_ips[0]]
}

output "jupyter_url" {
  description = "JupyterLab, behind nginx on the master (its password: the deployment's `password` task)."
  value       = "${local.scheme}://${local.public_address}/jupyter/"

  precondition {
    condition     = var.tls != null || var.plain_http
    error_message = "No TLS certificate and plain_http is false: give tls (or leave it null for the wrapper's self-signed one), or set plain_http: true on purpose."
  }
}

output "spark_ui_url" {
  description = "The Spark master's web UI, behind nginx on the master."
  value       = "${local.scheme}://${local.public_address}/spark/"
}

output "ssh_command" {
  description = "How to log in to the master (`ssh-config` prints a ~/.ssh/config entry with its host key pinned)."
  value       = join(" ", compact(["ssh", local.identity_file == "" ? "" : "-i ${local.identity_file}", "${var.ssh_user}@${local.public_address}"]))
}

output "ssh" {
  description = "What `ssh-config` needs: host alias, address, user, identity file and the master's server name (its console log holds the host keys)."
  value = {
    alias         = local.names.master
    host          = local.public_address
    user          = var.ssh_user
    port          = var.ports.ssh
    identity_file = local.identity_file
    server        = local.names.master
  }
}

output "ready_lines" {
  description = "The console-log line each node prints once configured, keyed by server name (`up` and `status` wait for them)."
  value       = module.cluster.ready_lines
}

output "spark_sizes" {
  description = "Spark's cut of the worker flavor, and the driver's heap on the master."
  value       = merge(module.cluster.worker_size, { driver_memory_mb = module.cluster.driver_memory_mb })
}

output "metadata" {
  description = "The metadata every server carries (deployment, owner, image, role): how `status` finds them."
  value       = module.cluster.metadata
}

output "node_images" {
  description = "The Glance image ID each node was created from, keyed by server name: what the wrapper passes back as image_id to keep a running cluster on its image. Read from Nova (the server's image, or with boot_from_volume the boot volume's image metadata)."
  value = merge(
    { (local.names.master) = var.boot_from_volume == null ? openstack_compute_instance_v2.master.image_id : openstack_compute_instance_v2.master.block_device[0].uuid },
    { for i, server in openstack_compute_instance_v2.worker : local.names.workers[i] => var.boot_from_volume == null ? server.image_id : server.block_device[0].uuid },
  )
}

output "image_id" {
  description = "The image ID this configuration boots new nodes from (var.image_id, or the newest image named image.glance_name when it was empty)."
  value       = terraform_data.image.output
}
