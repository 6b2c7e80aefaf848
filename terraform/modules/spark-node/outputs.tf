output "env" {
  description = "The node environment (map of strings): pass it to run-node as its environment (local-exec) or write it as KEY=value lines to the --env-file (cloud-init)."
  value       = local.env
}

output "env_file" {
  description = "The same environment as the text of an env file (KEY='value' lines, sorted), for cloud-init's write_files."
  value       = join("", [for k in sort(keys(local.env)) : "${k}='${replace(local.env[k], "'", "'\\''")}'\n"])
}

output "scripts_dir" {
  description = "The folder of the node scripts in this checkout (run-node, node-lib.sh, node-probe, profile.d/); packer copies it to /opt/hgi-spark/node/."
  value       = abspath("${path.module}/scripts")
}
