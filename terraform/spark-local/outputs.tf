output "jupyter_url" {
  description = "JupyterLab through nginx (password: `bash invoke.sh deployment spark-local/<owner> password`)."
  value       = "http://${local.address}:${var.http_port}/jupyter/"
}

output "spark_ui_url" {
  description = "The Spark master's web UI through nginx."
  value       = "http://${local.address}:${var.http_port}/spark/"
}

output "spark_master_url" {
  description = "The Spark master, for --master or spark.master."
  value       = "spark://${local.address}:${var.ports.spark_master}"
}

output "profile" {
  description = "Source this file for the login environment (SPARK_HOME, HAIL_HOME, pyspark alias ...)."
  value       = "${local.runtime}/master/profile.sh"
}

output "runtime_dir" {
  description = "Pid files, logs, configuration and the shared tmp directory of the local cluster."
  value       = local.runtime
}

output "hail_tmp_dir" {
  description = "The shared tmp directory (HAIL_TMP_DIR)."
  value       = local.node_common.hail_tmp_dir
}

output "nodes" {
  description = "Each node: its role, state dir and run-node environment file for status and submit."
  value = merge(
    { master = { role = "master", state_dir = module.master_node.env.STATE_DIR, name = module.master_node.env.NODE_NAME } },
    { for k, w in module.worker_node : "worker-${k}" => { role = "worker", state_dir = w.env.STATE_DIR, name = w.env.NODE_NAME } },
  )
}
