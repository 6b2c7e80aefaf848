# #cloud-config for one node. It only writes configuration and starts the baked node script:
# nothing is installed or downloaded at boot, and no script body lives here (terraform's ${}
# collides with shell). The node script is ../spark-node/scripts/run-node, baked by packer.

locals {
  is_master = var.role == "master"
  with_tls  = var.tls_certificate_pem != ""

  # KEY=value lines, sorted: values are single words (see the validation), so no quoting; run-node
  # sources the file with bash (an assignment's `*` is not expanded), systemd reads it as well.
  env_content = join("", [for k in sort(keys(var.node_env)) : "${k}=${var.node_env[k]}\n"])

  node_name = lookup(var.node_env, "NODE_NAME", "")
  app_user  = lookup(var.node_env, "APP_USER", "")

  ready_line = "${var.ready_marker} role=${var.role} name=${local.node_name}"

  env_file = {
    path        = var.env_file
    content     = local.env_content
    owner       = "root:root"
    permissions = "0644"
  }

  # Deferred to cloud-init's final stage: the application user's group (baked in the image)
  # certainly exists then, and it still comes before runcmd.
  password_file = {
    path        = lookup(var.node_env, "JUPYTER_PASSWORD_HASH_FILE", "")
    content     = "${var.jupyter_password_hash}\n"
    owner       = "root:${local.app_user}"
    permissions = "0640"
    defer       = true
  }

  tls_files = [
    {
      path        = lookup(var.node_env, "TLS_CERT_FILE", "")
      content     = var.tls_certificate_pem
      owner       = "root:root"
      permissions = "0644"
    },
    {
      path        = lookup(var.node_env, "TLS_KEY_FILE", "")
      content     = var.tls_private_key_pem
      owner       = "root:root"
      permissions = "0600"
    },
  ]

  write_files = concat(
    [local.env_file],
    local.is_master ? [local.password_file] : [],
    local.is_master && local.with_tls ? local.tls_files : [],
  )

  # One command: run-node waits until the node is ready and writes STATE_DIR/ready; the marker
  # line then goes to the console log (cloud-final's stdout is journal+console). A failure prints
  # its own line and fails runcmd.
  run_command = join(" ", [
    "${var.run_node} --role ${var.role} --env-file ${var.env_file}",
    "&& echo '${local.ready_line}'",
    "|| { echo '${var.ready_marker}-failed role=${var.role} name=${local.node_name}'; exit 1; }",
  ])

  # A data volume: cloud-init's disk_setup stage formats it only when no filesystem with the
  # label is there (partition "auto"), so a re-created master keeps the data; mounts then adds it
  # to fstab with nofail, before runcmd starts the node.
  data_volumes = var.data_volume == null ? [] : [var.data_volume]
  volume_configs = [
    for v in local.data_volumes : {
      fs_setup = [{
        label      = v.label
        filesystem = v.filesystem
        device     = v.device
        partition  = "auto"
        overwrite  = false
      }]
      mounts = [[v.device, v.mount_point, v.filesystem, "defaults,nofail,x-systemd.device-timeout=120s", "0", "2"]]
    }
  ]

  base_config = {
    hostname         = local.node_name
    manage_etc_hosts = true
    package_update   = false
    package_upgrade  = false
    ssh_pwauth       = false
    # `ssh-config` pins the host key from the console log: keep the keys printed there.
    ssh = {
      emit_keys_to_console = true
    }
    write_files = local.write_files
    runcmd      = [local.run_command]
  }

  cloud_config = merge(local.base_config, local.volume_configs...)

  user_data = "#cloud-config\n${yamlencode(local.cloud_config)}"
}
