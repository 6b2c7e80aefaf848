output "names" {
  description = "Every resource name (../../../modules/naming)."
  value = {
    prefix    = module.names.prefix
    master    = module.names.master_name
    workers   = module.names.worker_names
    keypair   = module.names.keypair_name
    secgroups = module.names.secgroup_names
    network   = module.names.network_names
    volume    = module.names.volume_name
  }
}

output "metadata" {
  description = "Nova metadata per role (deployment, name, owner, image, image version, role)."
  value       = module.names.role_metadata
}

output "tags" {
  description = "Neutron tags of every resource that takes them."
  value       = module.names.tags
}

output "worker_size" {
  description = "Spark's cut of a worker flavor."
  value = {
    worker_cores         = module.worker_size.worker_cores
    worker_memory_mb     = module.worker_size.worker_memory_mb
    executor_cores       = module.worker_size.executor_cores
    executors_per_worker = module.worker_size.executors_per_worker
    executor_memory_mb   = module.worker_size.executor_memory_mb
    memory_overhead_mb   = module.worker_size.memory_overhead_mb
  }
}

output "driver_memory_mb" {
  description = "The driver's heap on the master."
  value       = module.master_size.driver_memory_mb
}

output "master_env" {
  description = "The master's node environment (no secret in it)."
  value       = local.master_env
}

output "worker_envs" {
  description = "Each worker's node environment, in worker order."
  value       = local.worker_envs
}

output "master_user_data" {
  description = "The master's #cloud-config (sensitive: Jupyter password hash, TLS key)."
  value       = module.master_user_data.user_data
  sensitive   = true
}

output "worker_user_data" {
  description = "Each worker's #cloud-config, in worker order."
  value       = [for m in module.worker_user_data : m.user_data]
  sensitive   = true

  precondition {
    condition     = length(var.worker_addresses) == var.workers
    error_message = "worker_addresses must hold one address per worker (${var.workers}), got ${length(var.worker_addresses)}."
  }
}

output "internal_rules" {
  description = "The internal security group's rules, keyed by rule name: protocol and port range (min, max), each open between cluster members only."
  value       = local.internal_rules
}

output "ready_lines" {
  description = "The console-log line of each node once ready, keyed by node name."
  value = merge(
    { (module.names.master_name) = module.master_user_data.ready_line },
    { for i, m in module.worker_user_data : module.names.worker_names[i] => m.ready_line },
  )
}
