output "prefix" {
  description = "Prefix of every resource name, e.g. spark-ld14."
  value       = local.prefix

  precondition {
    # The longest name is a worker's: it must stay a valid hostname label (63 characters).
    condition     = length(local.prefix) + length("-worker-") + local.worker_width <= 63
    error_message = "Names from '${local.prefix}' would be longer than a hostname allows (63 characters): shorten the deployment name or owner."
  }
}

output "master_name" {
  description = "Name and hostname of the master, e.g. spark-ld14-master."
  value       = "${local.prefix}-master"
}

output "worker_names" {
  description = "Names and hostnames of the workers in order, e.g. spark-ld14-worker-001 .. spark-ld14-worker-012 (always three digits)."
  value       = local.worker_names
}

output "keypair_name" {
  description = "Name of the Nova key pair."
  value       = "${local.prefix}-key"
}

output "secgroup_names" {
  description = "Names of the security groups: external (ssh/http/https from allowed CIDRs) and internal (the cluster's own traffic)."
  value = {
    external = "${local.prefix}-external"
    internal = "${local.prefix}-internal"
  }
}

output "network_names" {
  description = "Names of the network, subnet and router when the deployment creates its own."
  value = {
    network = "${local.prefix}-network"
    subnet  = "${local.prefix}-subnet"
    router  = "${local.prefix}-router"
  }
}

output "volume_name" {
  description = "Name of the master's Cinder volume for the shared tmp directory."
  value       = "${local.prefix}-master-tmp"
}

output "metadata" {
  description = "Nova metadata of every node: deployment (NAME/OWNER), name, owner, image name and version."
  value       = local.metadata
}

output "role_metadata" {
  description = "metadata plus hgi-spark-role (master or worker), per role."
  value = {
    master = merge(local.metadata, { "hgi-spark-role" = "master" })
    worker = merge(local.metadata, { "hgi-spark-role" = "worker" })
  }
}

output "tags" {
  description = "The metadata as KEY=VALUE strings, sorted, for resources that take tags (Nova, Neutron); without the NAME/OWNER entry, as tags may not hold '/'."
  value       = local.tags
}
