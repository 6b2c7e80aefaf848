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

output "scripts_sha256" {
  description = "Digest of every node script: a root module puts it in a node's triggers so that a changed script restarts the node (the local cluster tests each change for real)."
  value       = sha256(join("", [for f in sort(fileset("${path.module}/scripts", "**")) : filesha256("${path.module}/scripts/${f}")]))
}
