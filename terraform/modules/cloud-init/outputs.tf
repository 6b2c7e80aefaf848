output "user_data" {
  description = "The #cloud-config document for the node (sensitive: on the master it holds the Jupyter password hash and the TLS key)."
  value       = local.user_data
  sensitive   = true

  precondition {
    condition     = !local.is_master || var.jupyter_password_hash != ""
    error_message = "The master needs jupyter_password_hash: JupyterLab never runs without a password."
  }

  precondition {
    condition     = !local.is_master || lookup(var.node_env, "JUPYTER_PASSWORD_HASH_FILE", "") != ""
    error_message = "The master's node_env.JUPYTER_PASSWORD_HASH_FILE must name the file the hash is written to."
  }

  precondition {
    condition     = (var.tls_certificate_pem == "") == (var.tls_private_key_pem == "")
    error_message = "Give both tls_certificate_pem and tls_private_key_pem, or neither."
  }

  precondition {
    condition = (
      !local.with_tls
      || (lookup(var.node_env, "TLS_CERT_FILE", "") != "" && lookup(var.node_env, "TLS_KEY_FILE", "") != "")
    )
    error_message = "With a TLS certificate, node_env.TLS_CERT_FILE and TLS_KEY_FILE must name where it is written."
  }

  precondition {
    condition     = local.with_tls || (lookup(var.node_env, "TLS_CERT_FILE", "") == "" && lookup(var.node_env, "TLS_KEY_FILE", "") == "")
    error_message = "node_env.TLS_CERT_FILE and TLS_KEY_FILE must be empty without a TLS certificate (the node scripts would look for files that are never written)."
  }

  precondition {
    condition     = length(base64encode(local.user_data)) <= 65535
    error_message = "The user-data is larger than Nova accepts (65535 bytes once base64-encoded)."
  }
}

output "env_file_content" {
  description = "What the node environment file holds (KEY=value lines, sorted); no secret is in it."
  value       = local.env_content
}

output "ready_line" {
  description = "The console-log line printed when run-node reports the node ready."
  value       = local.ready_line
}

output "run_command" {
  description = "The one command cloud-init runs (runcmd)."
  value       = local.run_command
}
