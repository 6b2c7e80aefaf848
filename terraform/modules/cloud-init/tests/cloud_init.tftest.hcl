# Renders master and worker user-data with a complete node environment and checks what is in
# the document (the YAML is decoded back, so these are structural checks, not string matches).
# tests/terraform/test_cloud_init.py feeds the same renderings to `cloud-init schema -c`.

variables {
  role                  = "master"
  jupyter_password_hash = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
  node_env = {
    NODE_MODE                  = "system"
    NODE_NAME                  = "spark-ld14-master"
    STATE_DIR                  = "/var/lib/hgi-spark"
    APP_USER                   = "hgi"
    SPARK_HOME                 = "/opt/hail/venv/lib/python3.11/site-packages/pyspark"
    HAIL_HOME                  = "/opt/hail"
    HAIL_VENV                  = "/opt/hail/venv"
    HAIL_TMP_DIR               = "/opt/hail/tmp"
    SPARK_MASTER_HOST          = "10.0.0.10"
    SPARK_MASTER_PORT          = "7077"
    SPARK_MASTER_WEBUI_PORT    = "8080"
    SPARK_WORKER_WEBUI_PORT    = "8081"
    SPARK_WORKER_CORES         = "4"
    SPARK_WORKER_MEMORY_MB     = "13517"
    SPARK_EXECUTOR_CORES       = "4"
    SPARK_EXECUTOR_MEMORY_MB   = "12288"
    SPARK_DRIVER_MEMORY_MB     = "10813"
    SPARK_MEMORY_OVERHEAD_MB   = "1229"
    SPARK_DRIVER_PORT          = "40000"
    SPARK_BLOCKMANAGER_PORT    = "40001"
    SPARK_UI_PORT              = "4040"
    NODE_BIND_ADDRESS          = "10.0.0.10"
    NFS_EXPORT_CIDR            = "10.0.0.0/24"
    JUPYTER_PORT               = "8889"
    HTTP_PORT                  = "80"
    HTTPS_PORT                 = "443"
    JUPYTER_PASSWORD_HASH_FILE = "/etc/hgi-spark/jupyter-password.hash"
    TLS_CERT_FILE              = ""
    TLS_KEY_FILE               = ""
  }
}

run "master_writes_env_and_password_hash" {
  command = plan

  assert {
    condition     = startswith(output.user_data, "#cloud-config\n")
    error_message = "User-data must start with #cloud-config."
  }

  assert {
    condition = [for f in yamldecode(output.user_data).write_files : f.path] == [
      "/etc/hgi-spark/node.env", "/etc/hgi-spark/jupyter-password.hash",
    ]
    error_message = "The master writes the node environment and the password hash, nothing else."
  }

  assert {
    condition     = yamldecode(output.user_data).write_files[1].content == "${var.jupyter_password_hash}\n" && yamldecode(output.user_data).write_files[1].permissions == "0640" && yamldecode(output.user_data).write_files[1].owner == "root:hgi"
    error_message = "The hash file holds the hash, 0640 root:APP_USER."
  }

  assert {
    condition     = yamldecode(output.user_data).write_files[0].content == output.env_file_content
    error_message = "The env file's content is env_file_content."
  }

  assert {
    condition = (
      length(split("\n", trimsuffix(output.env_file_content, "\n"))) == 29
      && strcontains(output.env_file_content, "\nSPARK_MASTER_HOST=10.0.0.10\n")
      && startswith(output.env_file_content, "APP_USER=hgi\n")
      && !strcontains(output.env_file_content, "argon2")
    )
    error_message = "The env file holds the 29 contract variables as sorted KEY=value lines and no secret."
  }

  assert {
    condition = yamldecode(output.user_data).runcmd == [
      "/opt/hgi-spark/node/run-node --role master --env-file /etc/hgi-spark/node.env && echo 'hgi-spark-node-ready role=master name=spark-ld14-master' || { echo 'hgi-spark-node-ready-failed role=master name=spark-ld14-master'; exit 1; }",
    ]
    error_message = "runcmd runs run-node once and prints the readiness marker: ${output.run_command}."
  }

  assert {
    condition = (
      yamldecode(output.user_data).package_update == false
      && yamldecode(output.user_data).package_upgrade == false
      && !contains(keys(yamldecode(output.user_data)), "packages")
      && yamldecode(output.user_data).ssh.emit_keys_to_console == true
      && yamldecode(output.user_data).hostname == "spark-ld14-master"
    )
    error_message = "Nothing is installed at boot; host keys go to the console; hostname is the node name."
  }

  assert {
    condition     = output.ready_line == "hgi-spark-node-ready role=master name=spark-ld14-master"
    error_message = "Unexpected ready line ${output.ready_line}."
  }
}

run "worker_writes_only_the_env" {
  command = plan

  variables {
    role                  = "worker"
    jupyter_password_hash = ""
    node_env = merge(var.node_env, {
      NODE_NAME         = "spark-ld14-worker-007"
      NODE_BIND_ADDRESS = "10.0.0.17"
    })
  }

  assert {
    condition     = [for f in yamldecode(output.user_data).write_files : f.path] == ["/etc/hgi-spark/node.env"]
    error_message = "A worker gets no password hash and no TLS files."
  }

  assert {
    condition     = strcontains(yamldecode(output.user_data).runcmd[0], "--role worker") && strcontains(output.env_file_content, "NODE_BIND_ADDRESS=10.0.0.17\n")
    error_message = "The worker runs run-node --role worker with its own bind address."
  }
}

run "master_with_tls" {
  command = plan

  variables {
    tls_certificate_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    tls_private_key_pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    node_env = merge(var.node_env, {
      TLS_CERT_FILE = "/etc/hgi-spark/tls/cert.pem"
      TLS_KEY_FILE  = "/etc/hgi-spark/tls/key.pem"
    })
  }

  assert {
    condition = [for f in yamldecode(output.user_data).write_files : "${f.path} ${f.permissions}"] == [
      "/etc/hgi-spark/node.env 0644",
      "/etc/hgi-spark/jupyter-password.hash 0640",
      "/etc/hgi-spark/tls/cert.pem 0644",
      "/etc/hgi-spark/tls/key.pem 0600",
    ]
    error_message = "With TLS the certificate and a 0600 key are written where node_env says."
  }
}

run "master_with_a_data_volume" {
  command = plan

  variables {
    data_volume = {
      device      = "/dev/disk/by-id/virtio-0123456789abcdef0123"
      mount_point = "/opt/hail/tmp"
      label       = "hgi-spark-tmp"
    }
  }

  assert {
    condition = (
      yamldecode(output.user_data).fs_setup[0].device == "/dev/disk/by-id/virtio-0123456789abcdef0123"
      && yamldecode(output.user_data).fs_setup[0].filesystem == "ext4"
      && yamldecode(output.user_data).fs_setup[0].partition == "auto"
      && yamldecode(output.user_data).fs_setup[0].overwrite == false
      && yamldecode(output.user_data).mounts[0][1] == "/opt/hail/tmp"
      && strcontains(yamldecode(output.user_data).mounts[0][3], "nofail")
    )
    error_message = "The volume is formatted only when blank and mounted with nofail at the mount point."
  }
}

run "no_volume_no_disk_keys" {
  command = plan

  assert {
    condition     = !contains(keys(yamldecode(output.user_data)), "fs_setup") && !contains(keys(yamldecode(output.user_data)), "mounts")
    error_message = "Without a data volume, no disk is touched."
  }
}

# Refusals.

run "volume_device_outside_dev_is_refused" {
  command = plan
  variables {
    data_volume = { device = "vdb", mount_point = "/opt/hail/tmp", label = "hgi-spark-tmp" }
  }
  expect_failures = [var.data_volume]
}

run "volume_label_too_long_is_refused" {
  command = plan
  variables {
    data_volume = { device = "/dev/vdb", mount_point = "/opt/hail/tmp", label = "a-label-longer-than-sixteen" }
  }
  expect_failures = [var.data_volume]
}

run "volume_filesystem_unknown_is_refused" {
  command = plan
  variables {
    data_volume = { device = "/dev/vdb", mount_point = "/opt/hail/tmp", label = "tmp", filesystem = "ntfs" }
  }
  expect_failures = [var.data_volume]
}

run "unknown_role_is_refused" {
  command = plan
  variables {
    role = "slave"
  }
  expect_failures = [var.role]
}

run "missing_node_name_is_refused" {
  command = plan
  variables {
    node_env = { for k, v in var.node_env : k => v if k != "NODE_NAME" }
  }
  expect_failures = [var.node_env]
}

run "lowercase_variable_is_refused" {
  command = plan
  variables {
    node_env = merge(var.node_env, { spark_master_port = "7077" })
  }
  expect_failures = [var.node_env]
}

run "value_with_space_is_refused" {
  command = plan
  variables {
    node_env = merge(var.node_env, { HAIL_HOME = "/opt/my hail" })
  }
  expect_failures = [var.node_env]
}

run "local_mode_is_refused" {
  command = plan
  variables {
    node_env = merge(var.node_env, { NODE_MODE = "local" })
  }
  expect_failures = [var.node_env]
}

run "relative_env_file_is_refused" {
  command = plan
  variables {
    env_file = "node.env"
  }
  expect_failures = [var.env_file]
}

run "run_node_with_shell_characters_is_refused" {
  command = plan
  variables {
    run_node = "/opt/run-node; reboot"
  }
  expect_failures = [var.run_node]
}

run "plain_password_is_refused" {
  command = plan
  variables {
    jupyter_password_hash = "hunter2"
  }
  expect_failures = [var.jupyter_password_hash]
}

run "master_without_password_is_refused" {
  command = plan
  variables {
    jupyter_password_hash = ""
  }
  expect_failures = [output.user_data]
}

run "certificate_without_key_is_refused" {
  command = plan
  variables {
    tls_certificate_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    node_env = merge(var.node_env, {
      TLS_CERT_FILE = "/etc/hgi-spark/tls/cert.pem"
      TLS_KEY_FILE  = "/etc/hgi-spark/tls/key.pem"
    })
  }
  expect_failures = [output.user_data]
}

run "tls_paths_without_certificate_are_refused" {
  command = plan
  variables {
    node_env = merge(var.node_env, { TLS_CERT_FILE = "/etc/hgi-spark/tls/cert.pem" })
  }
  expect_failures = [output.user_data]
}

run "not_a_certificate_is_refused" {
  command = plan
  variables {
    tls_certificate_pem = "/path/to/cert.pem"
  }
  expect_failures = [var.tls_certificate_pem]
}

run "not_a_key_is_refused" {
  command = plan
  variables {
    tls_private_key_pem = "/path/to/key.pem"
  }
  expect_failures = [var.tls_private_key_pem]
}

run "bad_marker_is_refused" {
  command = plan
  variables {
    ready_marker = "Ready!"
  }
  expect_failures = [var.ready_marker]
}

run "oversized_user_data_is_refused" {
  # A 60 KB certificate chain: the document would pass 65535 bytes once base64-encoded.
  command = plan
  variables {
    tls_certificate_pem = "-----BEGIN CERTIFICATE-----\n${join("\n", [for i in range(800) : "MIIBszCCAVmgAwIBAgIUXMIIBszCCAVmgAwIBAgIUXMIIBszCCAVmgAwIBAgIUXMIIBszCC"])}\n-----END CERTIFICATE-----\n"
    tls_private_key_pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    node_env = merge(var.node_env, {
      TLS_CERT_FILE = "/etc/hgi-spark/tls/cert.pem"
      TLS_KEY_FILE  = "/etc/hgi-spark/tls/key.pem"
    })
  }
  expect_failures = [output.user_data]
}
