# Plans of the local cluster (no provisioner runs in a plan): nodes, ports, sizes, validations.

variables {
  deployment_name            = "spark-local"
  deployment_owner           = "t"
  deployment_dir             = "/srv/repo/deployments/spark-local/t"
  prefix                     = "/cache/hgi-spark/prefix-0123456789abcdef"
  host_vcpus                 = 2
  host_ram_mb                = 24000
  http_port                  = 8890
  jupyter_password_hash_file = "/srv/repo/deployments/spark-local/t/secrets/jupyter-password.hash"
  app_user                   = "hgi"
  workers                    = 2
  ready_timeout_s            = 600
  ports = {
    ssh                = 22, http = 8888, https = 443, spark_master = 7077, spark_master_ui = 8080, spark_worker_ui = 8081,
    spark_app_ui_first = 4040, spark_app_ui_last = 4050, spark_driver = 40000, spark_blockmanager = 40001,
    jupyter            = 8889, nfs = 2049
  }
}

run "one_master_and_one_resource_per_worker" {
  command = plan

  assert {
    condition     = length(terraform_data.worker) == 2 && contains(keys(terraform_data.worker), "2")
    error_message = "workers = 2 must plan workers \"1\" and \"2\""
  }

  assert {
    condition     = terraform_data.worker["1"].input.env.SPARK_WORKER_WEBUI_PORT == "8081" && terraform_data.worker["2"].input.env.SPARK_WORKER_WEBUI_PORT == "8082"
    error_message = "workers on one host need one web UI port each"
  }

  assert {
    condition     = terraform_data.worker["2"].input.env.STATE_DIR == "/srv/repo/deployments/spark-local/t/runtime/worker-2"
    error_message = "each worker keeps its state in runtime/worker-N"
  }
}

run "everything_binds_to_loopback_and_nginx_takes_the_wrappers_port" {
  command = plan

  assert {
    condition     = terraform_data.master.input.env.NODE_BIND_ADDRESS == "127.0.0.1" && terraform_data.master.input.env.HTTP_LISTEN_ADDRESS == "127.0.0.1"
    error_message = "the local cluster listens on 127.0.0.1 only"
  }

  assert {
    condition     = terraform_data.master.input.env.HTTP_PORT == "8890" && output.jupyter_url == "http://127.0.0.1:8890/jupyter/"
    error_message = "nginx listens on http_port (chosen by the wrapper), and the URL says so"
  }

  assert {
    condition     = terraform_data.master.input.env.NODE_MODE == "local" && terraform_data.master.input.env.HAIL_VENV == var.prefix
    error_message = "local mode, with the prefix as the Hail venv"
  }
}

run "workers_are_sized_from_a_share_of_this_machine" {
  command = plan

  assert {
    # 24000 * 0.25 = 6000 MiB: minus 1024 + 5% (300) + 1024 for the OS and daemons = 3652
    condition     = terraform_data.worker["1"].input.env.SPARK_WORKER_MEMORY_MB == "3652" && terraform_data.worker["1"].input.env.SPARK_WORKER_CORES == "2"
    error_message = "a worker is sized as a machine with this host's cores and worker_ram_fraction of its RAM"
  }
}

run "no_workers" {
  command = plan

  variables {
    workers = 0
  }

  assert {
    condition     = length(terraform_data.worker) == 0
    error_message = "workers = 0 plans the master only"
  }
}

run "rejects_too_many_workers_for_one_machine" {
  command = plan
  variables {
    workers = 9
  }
  expect_failures = [var.workers]
}

run "rejects_a_privileged_nginx_port" {
  command = plan
  variables {
    http_port = 80
  }
  expect_failures = [var.http_port]
}

run "rejects_a_relative_deployment_dir" {
  command = plan
  variables {
    deployment_dir = "deployments/spark-local/t"
  }
  expect_failures = [var.deployment_dir]
}
