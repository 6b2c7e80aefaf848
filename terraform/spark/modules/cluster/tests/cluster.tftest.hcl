# The cluster's pure part with the deployment defaults of deployments/defaults.yml and
# deployments/spark/defaults.yml, a 4 vCPU / 16 GiB master and 8 vCPU / 32 GiB workers.

variables {
  deployment_name  = "spark"
  deployment_owner = "ld14"
  image = {
    name        = "hail-base"
    version     = "1.0.0"
    glance_name = "hail-base-1.0.0"
    software    = { java = "17", python = "3.11", hail = "0.2.139", pyspark = "3.5.9", jupyterlab = "4.5.11" }
    app_user    = { name = "hgi", uid = 2000, gid = 2000, home = "/home/hgi" }
    layout = {
      hail_home        = "/opt/hail", hail_venv = "/opt/hail/venv", hail_tmp_dir = "/opt/hail/tmp",
      node_scripts_dir = "/opt/hgi-spark/node", etc_dir = "/etc/hgi-spark", state_dir = "/var/lib/hgi-spark"
    }
  }
  workers = 3
  ports = {
    ssh                = 22, http = 80, https = 443, spark_master = 7077, spark_master_ui = 8080, spark_worker_ui = 8081,
    spark_app_ui_first = 4040, spark_app_ui_last = 4050, spark_driver = 40000, spark_blockmanager = 40001,
    jupyter            = 8889, nfs = 2049
  }
  internal_ephemeral_ports = { first = 32768, last = 60999 }
  master_flavor            = { vcpus = 4, ram_mb = 16384 }
  worker_flavor            = { vcpus = 8, ram_mb = 32768 }
  spark                    = { worker_cleanup_interval_s = 1800, worker_appdata_ttl_s = 86400 }
  ready_timeout_s          = 600
  master_address           = "10.42.0.10"
  worker_addresses         = ["10.42.0.11", "10.42.0.12", "10.42.0.13"]
  subnet_cidr              = "10.42.0.0/24"
  jupyter_password_hash    = "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567"
}

run "three_workers" {
  command = plan

  assert {
    condition     = output.names.master == "spark-ld14-master" && output.names.workers == ["spark-ld14-worker-001", "spark-ld14-worker-002", "spark-ld14-worker-003"]
    error_message = "Names come from the naming module."
  }

  assert {
    condition = alltrue([
      for i, env in output.worker_envs :
      env.SPARK_MASTER_HOST == "10.42.0.10" && env.NODE_BIND_ADDRESS == var.worker_addresses[i] && env.NODE_NAME == output.names.workers[i]
    ])
    error_message = "Each worker binds its own address and points at the master."
  }

  assert {
    condition = (
      output.worker_envs[0].SPARK_WORKER_MEMORY_MB == "29082" && output.worker_envs[0].SPARK_WORKER_CORES == "8"
      && output.master_env.SPARK_EXECUTOR_MEMORY_MB == "13219" && output.master_env.SPARK_EXECUTOR_CORES == "4"
      && output.master_env.SPARK_DRIVER_MEMORY_MB == "10813" && output.worker_envs[2].SPARK_DRIVER_MEMORY_MB == "10813"
    )
    error_message = "Executors are sized from the worker flavor (8/32), the driver from the master flavor (4/16)."
  }

  assert {
    condition     = output.master_env.SPARK_UI_PORT_RETRIES == "10" && output.master_env.NODE_MODE == "system" && output.master_env.HTTP_LISTEN_ADDRESS == "*"
    error_message = "The UI retries cover 4040..4050; OpenStack nodes run in system mode, nginx on every interface."
  }

  assert {
    condition     = output.master_env.TLS_CERT_FILE == "" && output.master_env.TLS_KEY_FILE == "" && output.master_env.NFS_EXPORT_CIDR == "10.42.0.0/24"
    error_message = "No TLS without a certificate; NFS exported to the subnet only."
  }

  assert {
    condition     = length(output.worker_user_data) == 3 && strcontains(output.worker_user_data[2], "--role worker")
    error_message = "One user-data per worker."
  }

  assert {
    condition     = output.ready_lines["spark-ld14-worker-002"] == "hgi-spark-node-ready role=worker name=spark-ld14-worker-002"
    error_message = "Ready lines are keyed by node name."
  }

  assert {
    condition     = output.metadata.worker["hgi-spark-role"] == "worker" && output.metadata.master["hgi-spark-image-version"] == "1.0.0"
    error_message = "Metadata carries role and image version."
  }
}

run "tls_and_tmp_volume" {
  command = plan

  variables {
    tls_certificate_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    tls_private_key_pem = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    tmp_volume_id       = "6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"
  }

  assert {
    condition     = output.master_env.TLS_CERT_FILE == "/etc/hgi-spark/tls/cert.pem" && output.master_env.TLS_KEY_FILE == "/etc/hgi-spark/tls/key.pem" && lookup(output.worker_envs[0], "TLS_KEY_FILE", "") == ""
    error_message = "With a certificate the master knows the TLS paths; workers serve no http."
  }

  assert {
    condition     = yamldecode(output.master_user_data).mounts[0][0] == "/dev/disk/by-id/virtio-6f1c2d3e-4b5a-6978-8" && yamldecode(output.master_user_data).mounts[0][1] == "/opt/hail/tmp"
    error_message = "The tmp volume is found by its virtio serial (20 characters of its ID) and mounted at HAIL_TMP_DIR."
  }

  assert {
    condition     = !strcontains(output.worker_user_data[0], "fs_setup") && !strcontains(output.worker_user_data[0], "PRIVATE KEY")
    error_message = "Workers get neither the volume nor the TLS key."
  }

  assert {
    condition     = output.master_env.HAIL_TMP_DEVICE == "/dev/disk/by-id/virtio-6f1c2d3e-4b5a-6978-8" && yamldecode(output.master_user_data).mounts[0][0] == output.master_env.HAIL_TMP_DEVICE
    error_message = "run-node learns the tmp volume's device (to grow its filesystem and export only once it is mounted)."
  }
}

run "no_tmp_volume_no_device" {
  command = plan

  assert {
    condition     = run.three_workers.master_env.HAIL_TMP_DEVICE == "" && !strcontains(run.three_workers.master_user_data, "fs_setup")
    error_message = "Without a tmp volume there is no device to grow or to wait for."
  }
}

# NFS is v4 only, Spark's pinned ports move up by at most spark.port.maxRetries, executors use the
# ephemeral range: what the internal security group opens (main.tf turns each entry into a rule).
run "internal_rules_are_nfs4_and_spark" {
  command = plan

  assert {
    condition = output.internal_rules == {
      "spark-master tcp"              = { protocol = "tcp", min = 7077, max = 7077 }
      "spark-master-ui tcp"           = { protocol = "tcp", min = 8080, max = 8080 }
      "spark-worker-ui tcp"           = { protocol = "tcp", min = 8081, max = 8081 }
      "spark-app-ui tcp"              = { protocol = "tcp", min = 4040, max = 4050 }
      "spark-driver-blockmanager tcp" = { protocol = "tcp", min = 40000, max = 40011 }
      "spark-rpc-ephemeral tcp"       = { protocol = "tcp", min = 32768, max = 60999 }
      "nfs tcp"                       = { protocol = "tcp", min = 2049, max = 2049 }
      "ssh tcp"                       = { protocol = "tcp", min = 22, max = 22 }
    }
    error_message = "Unexpected internal rules: ${jsonencode(output.internal_rules)}."
  }

  assert {
    condition     = alltrue([for name, rule in output.internal_rules : rule.protocol == "tcp"]) && !contains([for name, rule in output.internal_rules : rule.min], 111)
    error_message = "NFSv4 needs neither udp nor rpcbind (111), mountd or statd."
  }
}

run "one_hundred_workers" {
  command = plan

  variables {
    workers          = 100
    worker_addresses = [for i in range(100) : cidrhost("10.42.0.0/24", 20 + i)]
  }

  assert {
    condition     = length(output.worker_user_data) == 100 && length(distinct(output.worker_user_data)) == 100
    error_message = "100 distinct worker user-data documents."
  }

  assert {
    condition     = output.names.workers[99] == "spark-ld14-worker-100" && output.worker_envs[99].NODE_BIND_ADDRESS == "10.42.0.119"
    error_message = "The 100th worker is spark-ld14-worker-100 at 10.42.0.119."
  }
}

# Scaling never touches existing nodes: user_data is ForceNew on openstack_compute_instance_v2
# (terraform-provider-openstack v3.x, openstack/resource_openstack_compute_instance_v2.go: "user_data"
# has ForceNew: true), and the name and metadata would change them in place. Growing from 99 to
# 100 workers must leave the master's and the first 99 workers' documents byte for byte the same.
run "ninety_nine_workers" {
  command = plan

  variables {
    workers          = 99
    worker_addresses = [for i in range(99) : cidrhost("10.42.0.0/24", 20 + i)]
  }

  assert {
    condition     = length(output.worker_user_data) == 99
    error_message = "99 workers."
  }
}

run "growing_to_one_hundred_changes_no_existing_node" {
  command = plan

  variables {
    workers          = 100
    worker_addresses = [for i in range(100) : cidrhost("10.42.0.0/24", 20 + i)]
  }

  assert {
    condition     = output.master_user_data == run.ninety_nine_workers.master_user_data && output.master_env == run.ninety_nine_workers.master_env
    error_message = "The master's user-data (ForceNew) must not depend on the number of workers."
  }

  assert {
    condition     = slice(output.worker_user_data, 0, 99) == run.ninety_nine_workers.worker_user_data
    error_message = "The first 99 workers' user-data (ForceNew) must stay byte for byte the same when a 100th worker is added."
  }

  assert {
    condition     = slice(output.names.workers, 0, 99) == run.ninety_nine_workers.names.workers && output.names.master == run.ninety_nine_workers.names.master
    error_message = "Existing nodes keep their names (Nova server name, hostname): ${run.ninety_nine_workers.names.workers[0]} became ${output.names.workers[0]}."
  }

  assert {
    condition     = output.metadata == run.ninety_nine_workers.metadata && output.tags == run.ninety_nine_workers.tags
    error_message = "Metadata and tags must not depend on the number of workers."
  }
}

run "addresses_must_match_the_count" {
  command = plan

  variables {
    workers = 4
  }

  expect_failures = [output.worker_user_data]
}
