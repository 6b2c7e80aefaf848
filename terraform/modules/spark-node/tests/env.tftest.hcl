# The node environment the scripts read: every contract variable, per role, and each validation.

variables {
  role            = "master"
  mode            = "system"
  node_name       = "spark-ld14-master"
  state_dir       = "/var/lib/hgi-spark"
  hail_home       = "/opt/hail"
  hail_venv       = "/opt/hail/venv"
  hail_tmp_dir    = "/opt/hail/tmp"
  bind_address    = "10.0.0.5"
  master_host     = "10.0.0.5"
  ready_timeout_s = 600
  ports = {
    http               = 80
    https              = 443
    spark_master       = 7077
    spark_master_ui    = 8080
    spark_worker_ui    = 8081
    spark_app_ui_first = 4040
    spark_app_ui_last  = 4050
    spark_driver       = 40000
    spark_blockmanager = 40001
    jupyter            = 8889
  }
  sizing = {
    worker_cores       = 4
    worker_memory_mb   = 12000
    executor_cores     = 4
    executor_memory_mb = 10000
    driver_memory_mb   = 9600
    memory_overhead_mb = 1000
  }
  nfs_export_cidr = "10.0.0.0/24"
}

run "master_env_has_the_master_contract" {
  command = plan

  assert {
    condition = alltrue([for k in [
      "NODE_MODE", "NODE_NAME", "STATE_DIR", "APP_USER", "HAIL_HOME", "HAIL_VENV", "HAIL_TMP_DIR", "SPARK_HOME", "HAIL_JAR",
      "NODE_BIND_ADDRESS", "SPARK_MASTER_HOST", "SPARK_MASTER_PORT", "SPARK_MASTER_WEBUI_PORT",
      "SPARK_EXECUTOR_CORES", "SPARK_EXECUTOR_MEMORY_MB", "SPARK_DRIVER_MEMORY_MB", "SPARK_MEMORY_OVERHEAD_MB",
      "SPARK_DRIVER_PORT", "SPARK_BLOCKMANAGER_PORT", "SPARK_UI_PORT", "SPARK_UI_PORT_RETRIES",
      "SPARK_WORKER_CLEANUP_INTERVAL_S", "SPARK_WORKER_APPDATA_TTL_S", "READY_TIMEOUT_S",
      "JUPYTER_PORT", "HTTP_PORT", "HTTPS_PORT", "HTTP_LISTEN_ADDRESS", "JUPYTER_PASSWORD_HASH_FILE",
      "NOTEBOOK_DIR", "NFS_EXPORT_CIDR", "TLS_CERT_FILE", "TLS_KEY_FILE", "HAIL_TMP_DEVICE",
    ] : contains(keys(output.env), k)])
    error_message = "the master environment misses a contract variable"
  }

  assert {
    condition     = !contains(keys(output.env), "SPARK_WORKER_CORES")
    error_message = "worker-only variables must not be in a master's environment"
  }

  assert {
    condition     = output.env.SPARK_UI_PORT == "4040" && output.env.SPARK_UI_PORT_RETRIES == "10"
    error_message = "the application UI range must become a first port and a retry count"
  }

  assert {
    condition     = output.env.NFS_EXPORT_CIDR == "10.0.0.0/24" && output.env.TLS_CERT_FILE == ""
    error_message = "NFS export and (absent) TLS must be passed through"
  }

  assert {
    condition     = strcontains(output.env_file, "SPARK_MASTER_PORT='7077'\n")
    error_message = "env_file must hold KEY='value' lines"
  }
}

run "worker_env_is_sized_and_gets_its_own_ui_port" {
  command = plan

  variables {
    role              = "worker"
    node_name         = "spark-ld14-worker-002"
    worker_webui_port = 8082
  }

  assert {
    condition     = output.env.SPARK_WORKER_CORES == "4" && output.env.SPARK_WORKER_MEMORY_MB == "12000"
    error_message = "a worker's cores and memory come from the sizing"
  }

  assert {
    condition     = output.env.SPARK_WORKER_WEBUI_PORT == "8082" && !contains(keys(output.env), "JUPYTER_PORT")
    error_message = "a worker gets its web UI port and no master variables"
  }
}

run "worker_ui_port_defaults_to_ports_spark_worker_ui" {
  command = plan

  variables {
    role = "worker"
  }

  assert {
    condition     = output.env.SPARK_WORKER_WEBUI_PORT == "8081"
    error_message = "without worker_webui_port the worker uses ports.spark_worker_ui"
  }
}

run "tls_paths_are_passed" {
  command = plan

  variables {
    tls = { cert_file = "/etc/ssl/hgi.crt", key_file = "/etc/ssl/private/hgi.key" }
  }

  assert {
    condition     = output.env.TLS_CERT_FILE == "/etc/ssl/hgi.crt" && output.env.TLS_KEY_FILE == "/etc/ssl/private/hgi.key"
    error_message = "TLS paths must reach the scripts"
  }
}

run "scripts_digest_is_stable" {
  command = plan

  assert {
    condition     = length(output.scripts_sha256) == 64
    error_message = "scripts_sha256 must be a sha256 of the scripts"
  }
}

run "rejects_unknown_role" {
  command = plan
  variables {
    role = "slave"
  }
  expect_failures = [var.role]
}

run "rejects_unknown_mode" {
  command = plan
  variables {
    mode = "docker"
  }
  expect_failures = [var.mode]
}

run "rejects_relative_state_dir" {
  command = plan
  variables {
    state_dir = "runtime/master"
  }
  expect_failures = [var.state_dir]
}

run "rejects_a_port_out_of_range" {
  command = plan
  variables {
    ports = {
      http               = 80, https = 443, spark_master = 70770, spark_master_ui = 8080, spark_worker_ui = 8081,
      spark_app_ui_first = 4040, spark_app_ui_last = 4050, spark_driver = 40000, spark_blockmanager = 40001,
      jupyter            = 8889
    }
  }
  expect_failures = [var.ports]
}

run "rejects_an_inverted_app_ui_range" {
  command = plan
  variables {
    ports = {
      http               = 80, https = 443, spark_master = 7077, spark_master_ui = 8080, spark_worker_ui = 8081,
      spark_app_ui_first = 4050, spark_app_ui_last = 4040, spark_driver = 40000, spark_blockmanager = 40001,
      jupyter            = 8889
    }
  }
  expect_failures = [var.ports]
}

run "tmp_device_reaches_the_master" {
  command = plan

  variables {
    tmp_device = "/dev/disk/by-id/virtio-6f1c2d3e-4b5a-6978-8"
  }

  assert {
    condition     = output.env.HAIL_TMP_DEVICE == "/dev/disk/by-id/virtio-6f1c2d3e-4b5a-6978-8"
    error_message = "the tmp volume's device must reach run-node (it grows the filesystem and orders NFS after the mount)"
  }
}

run "rejects_a_tmp_device_outside_dev" {
  command = plan
  variables {
    tmp_device = "vdb"
  }
  expect_failures = [var.tmp_device]
}

run "rejects_a_bad_cidr" {
  command = plan
  variables {
    nfs_export_cidr = "10.0.0.0/33"
  }
  expect_failures = [var.nfs_export_cidr]
}

run "rejects_zero_sizes" {
  command = plan
  variables {
    sizing = {
      worker_cores     = 0, worker_memory_mb = 1, executor_cores = 1, executor_memory_mb = 1,
      driver_memory_mb = 1, memory_overhead_mb = 1
    }
  }
  expect_failures = [var.sizing]
}

run "rejects_a_too_short_cleanup" {
  command = plan
  variables {
    worker_cleanup = { interval_s = 5, app_data_ttl_s = 3600 }
  }
  expect_failures = [var.worker_cleanup]
}
