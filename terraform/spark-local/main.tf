# A Hail/Spark cluster on this machine: one terraform_data per node, whose local-exec provisioners
# run the same node scripts as the OpenStack nodes (terraform/modules/spark-node/scripts/run-node).
# Creating a node starts it and waits until it is ready (a worker: registered with the master);
# destroying it stops it and waits for its ports. Workers are keyed "1".."N": scaling adds or removes the highest ones and leaves the rest.

locals {
  runtime = "${var.deployment_dir}/runtime"
  address = "127.0.0.1"
  ports   = merge(var.ports, { http = var.http_port })
  workers = toset([for i in range(1, var.workers + 1) : tostring(i)])
  node_common = {
    mode     = "local"
    app_user = var.app_user
    # HAIL_HOME is the deployment's, as /opt/hail is a node's: $HAIL_HOME/tmp is the shared tmp
    # directory ($HAIL_TMP_DIR) on every kind of cluster; the software is in the prefix (HAIL_VENV).
    hail_home                  = "${local.runtime}/hail"
    hail_venv                  = var.prefix
    hail_tmp_dir               = "${local.runtime}/hail/tmp"
    notebook_dir               = "${local.runtime}/notebooks"
    bind_address               = local.address
    master_host                = local.address
    http_listen_address        = local.address
    jupyter_password_hash_file = var.jupyter_password_hash_file
    ready_timeout_s            = var.ready_timeout_s
  }
}

# Names follow the same rules as OpenStack nodes (worker-001 ...).
module "names" {
  source = "../modules/naming"

  deployment_name  = var.deployment_name
  deployment_owner = var.deployment_owner
  worker_count     = var.workers
}

module "sizing" {
  source = "../modules/spark-sizing"

  vcpus                  = var.host_vcpus
  ram_mb                 = max(2048, floor(var.host_ram_mb * var.worker_ram_fraction))
  driver_memory_fraction = var.driver_memory_fraction
}

locals {
  sizing = {
    worker_cores       = module.sizing.worker_cores
    worker_memory_mb   = module.sizing.worker_memory_mb
    executor_cores     = module.sizing.executor_cores
    executor_memory_mb = module.sizing.executor_memory_mb
    driver_memory_mb   = module.sizing.driver_memory_mb
    memory_overhead_mb = module.sizing.memory_overhead_mb
  }
}

module "master_node" {
  source = "../modules/spark-node"

  role                       = "master"
  node_name                  = module.names.master_name
  state_dir                  = "${local.runtime}/master"
  ports                      = local.ports
  sizing                     = local.sizing
  mode                       = local.node_common.mode
  app_user                   = local.node_common.app_user
  hail_home                  = local.node_common.hail_home
  hail_venv                  = local.node_common.hail_venv
  hail_tmp_dir               = local.node_common.hail_tmp_dir
  notebook_dir               = local.node_common.notebook_dir
  bind_address               = local.node_common.bind_address
  master_host                = local.node_common.master_host
  http_listen_address        = local.node_common.http_listen_address
  jupyter_password_hash_file = local.node_common.jupyter_password_hash_file
  ready_timeout_s            = local.node_common.ready_timeout_s
}

module "worker_node" {
  source   = "../modules/spark-node"
  for_each = local.workers

  role      = "worker"
  node_name = module.names.worker_names[tonumber(each.key) - 1]
  state_dir = "${local.runtime}/worker-${each.key}"
  ports     = local.ports
  sizing    = local.sizing
  # Workers on one host need a web UI port each: spark_worker_ui, +1, +2 ...
  worker_webui_port          = var.ports.spark_worker_ui + tonumber(each.key) - 1
  mode                       = local.node_common.mode
  app_user                   = local.node_common.app_user
  hail_home                  = local.node_common.hail_home
  hail_venv                  = local.node_common.hail_venv
  hail_tmp_dir               = local.node_common.hail_tmp_dir
  notebook_dir               = local.node_common.notebook_dir
  bind_address               = local.node_common.bind_address
  master_host                = local.node_common.master_host
  http_listen_address        = local.node_common.http_listen_address
  jupyter_password_hash_file = local.node_common.jupyter_password_hash_file
  ready_timeout_s            = local.node_common.ready_timeout_s
}

resource "terraform_data" "master" {
  # A changed environment (ports, sizes, prefix) restarts the node; input carries what destroy needs.
  triggers_replace = { env = module.master_node.env, generation = lookup(var.generations, "master", 0), scripts = module.master_node.scripts_sha256 }
  input = {
    run_node   = "${module.master_node.scripts_dir}/run-node"
    env        = module.master_node.env
    generation = lookup(var.generations, "master", 0)
  }

  provisioner "local-exec" {
    command     = "\"$RUN_NODE\" --role master"
    environment = merge(self.input.env, { RUN_NODE = self.input.run_node })
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$RUN_NODE\" --role master --stop"
    environment = merge(self.input.env, { RUN_NODE = self.input.run_node })
  }
}

resource "terraform_data" "worker" {
  for_each = local.workers

  triggers_replace = { env = module.worker_node[each.key].env, generation = lookup(var.generations, each.key, 0), scripts = module.worker_node[each.key].scripts_sha256 }
  input = {
    run_node   = "${module.worker_node[each.key].scripts_dir}/run-node"
    env        = module.worker_node[each.key].env
    generation = lookup(var.generations, each.key, 0)
  }

  provisioner "local-exec" {
    command     = "\"$RUN_NODE\" --role worker"
    environment = merge(self.input.env, { RUN_NODE = self.input.run_node })
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$RUN_NODE\" --role worker --stop"
    environment = merge(self.input.env, { RUN_NODE = self.input.run_node })
  }

  # No depends_on the master: run-node starts a worker's JVM as soon as the master's web UI says
  # ALIVE (its first registration then succeeds), while the master still waits for JupyterLab.
}
