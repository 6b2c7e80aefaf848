# Everything about the cluster that is pure: names, sizes, the node environment of every node
# (../../../modules/spark-node renders it, the contract of its README) and its user-data. Workers
# are a count, so 100 workers are one line of input.

# Who runs things on a node and where they are: the image definition's (install-node put them there).
locals {
  app_user = var.image.app_user.name
  node_paths = {
    hail_home    = var.image.layout.hail_home
    hail_venv    = var.image.layout.hail_venv
    hail_tmp_dir = var.image.layout.hail_tmp_dir
    state_dir    = var.image.layout.state_dir
    etc_dir      = var.image.layout.etc_dir
    notebook_dir = var.image.app_user.home
  }
}

module "names" {
  source = "../../../modules/naming"

  deployment_name  = var.deployment_name
  deployment_owner = var.deployment_owner
  worker_count     = var.workers
  image_name       = var.image.name
  image_version    = var.image.version
}

module "worker_size" {
  source = "../../../modules/spark-sizing"

  vcpus                    = var.worker_flavor.vcpus
  ram_mb                   = var.worker_flavor.ram_mb
  os_reserved_mb           = var.sizing.os_reserved_mb
  os_reserved_fraction     = var.sizing.os_reserved_fraction
  daemon_memory_mb         = var.sizing.daemon_memory_mb
  reserved_cores           = var.sizing.reserved_cores
  executor_cores_max       = var.sizing.executor_cores_max
  memory_overhead_fraction = var.sizing.memory_overhead_fraction
  memory_overhead_min_mb   = var.sizing.memory_overhead_min_mb
  driver_memory_fraction   = var.sizing.driver_memory_fraction
  min_executor_memory_mb   = var.sizing.min_executor_memory_mb
}

# The driver runs on the master (JupyterLab, pyspark): its memory comes from the master's flavor.
module "master_size" {
  source = "../../../modules/spark-sizing"

  vcpus                    = var.master_flavor.vcpus
  ram_mb                   = var.master_flavor.ram_mb
  os_reserved_mb           = var.sizing.os_reserved_mb
  os_reserved_fraction     = var.sizing.os_reserved_fraction
  daemon_memory_mb         = var.sizing.daemon_memory_mb
  reserved_cores           = var.sizing.reserved_cores
  executor_cores_max       = var.sizing.executor_cores_max
  memory_overhead_fraction = var.sizing.memory_overhead_fraction
  memory_overhead_min_mb   = var.sizing.memory_overhead_min_mb
  driver_memory_fraction   = var.sizing.driver_memory_fraction
  min_executor_memory_mb   = var.sizing.min_executor_memory_mb
}

# The node environment has one home: ../../../modules/spark-node (the contract of its README),
# shared with the local cluster. One instance for the master, one per worker.

locals {
  with_tls = var.tls_certificate_pem != ""

  # The worker flavor sizes the executors; the driver runs on the master and follows its flavor.
  sizing = {
    worker_cores       = module.worker_size.worker_cores
    worker_memory_mb   = module.worker_size.worker_memory_mb
    executor_cores     = module.worker_size.executor_cores
    executor_memory_mb = module.worker_size.executor_memory_mb
    memory_overhead_mb = module.worker_size.memory_overhead_mb
    driver_memory_mb   = module.master_size.driver_memory_mb
  }

  worker_cleanup = {
    interval_s     = var.spark.worker_cleanup_interval_s
    app_data_ttl_s = var.spark.worker_appdata_ttl_s
  }
}

locals {
  # Nova gives a virtio disk the first 20 characters of the volume ID as its serial.
  tmp_device = var.tmp_volume_id == "" ? "" : "/dev/disk/by-id/virtio-${substr(var.tmp_volume_id, 0, 20)}"
}

module "master_node" {
  source = "../../../modules/spark-node"

  role                       = "master"
  mode                       = "system"
  node_name                  = module.names.master_name
  state_dir                  = local.node_paths.state_dir
  app_user                   = local.app_user
  hail_home                  = local.node_paths.hail_home
  hail_venv                  = local.node_paths.hail_venv
  hail_tmp_dir               = local.node_paths.hail_tmp_dir
  notebook_dir               = local.node_paths.notebook_dir
  bind_address               = var.master_address
  master_host                = var.master_address
  http_listen_address        = "*" # every interface; the security group decides who reaches it
  ports                      = var.ports
  nfs_export_cidr            = var.subnet_cidr
  tmp_device                 = local.tmp_device
  sizing                     = local.sizing
  worker_cleanup             = local.worker_cleanup
  jupyter_password_hash_file = "${local.node_paths.etc_dir}/jupyter-password.hash"
  tls = local.with_tls ? {
    cert_file = "${local.node_paths.etc_dir}/tls/cert.pem"
    key_file  = "${local.node_paths.etc_dir}/tls/key.pem"
  } : null
  ready_timeout_s = var.ready_timeout_s
}

module "worker_node" {
  source = "../../../modules/spark-node"
  count  = var.workers

  role            = "worker"
  mode            = "system"
  node_name       = module.names.worker_names[count.index]
  state_dir       = local.node_paths.state_dir
  app_user        = local.app_user
  hail_home       = local.node_paths.hail_home
  hail_venv       = local.node_paths.hail_venv
  hail_tmp_dir    = local.node_paths.hail_tmp_dir
  notebook_dir    = local.node_paths.notebook_dir
  bind_address    = try(var.worker_addresses[count.index], "")
  master_host     = var.master_address
  ports           = var.ports
  sizing          = local.sizing
  worker_cleanup  = local.worker_cleanup
  ready_timeout_s = var.ready_timeout_s
}

locals {
  master_env  = module.master_node.env
  worker_envs = [for node in module.worker_node : node.env]

  tmp_volume = var.tmp_volume_id == "" ? null : {
    device      = local.tmp_device
    mount_point = local.node_paths.hail_tmp_dir
    label       = "hgi-spark-tmp"
    filesystem  = "ext4"
  }
}

module "master_user_data" {
  source = "../../../modules/cloud-init"

  role                  = "master"
  node_env              = local.master_env
  env_file              = "${local.node_paths.etc_dir}/node.env"
  jupyter_password_hash = var.jupyter_password_hash
  tls_certificate_pem   = var.tls_certificate_pem
  tls_private_key_pem   = var.tls_private_key_pem
  data_volume           = local.tmp_volume
}

module "worker_user_data" {
  source = "../../../modules/cloud-init"
  count  = var.workers

  role     = "worker"
  node_env = local.worker_envs[count.index]
  env_file = "${local.node_paths.etc_dir}/node.env"
}

# --- what the security groups open between cluster members ------------------------------------------
#
# Pure, so tests/terraform checks it against the ports Spark and NFS really use, for every flavor.
# Spark's pinned ports (the driver's RPC and block manager ports, the application UI) move up by
# at most spark.port.maxRetries (SPARK_UI_PORT_RETRIES: app_ui_last - app_ui_first, one setting for
# every port) when taken, so each range is [port, port + retries]. Executors pin nothing: a worker
# runs up to vCPUs / executor_cores executors (16 on 64 vCPUs), more than any retry count a
# pinned port allows (spark.port.maxRetries = 10 caps a host at 11), so their RPC and block manager
# ports come from the kernel's ephemeral range, opened here between members only.
# NFS is v4 only (run-node: the master's nfsd has vers3=n, workers mount with nfsvers=4.2): 2049/tcp
# and nothing for rpcbind, mountd or statd, which NFSv4 does not use.
locals {
  spark_port_retries = var.ports.spark_app_ui_last - var.ports.spark_app_ui_first

  internal_rules = {
    "spark-master tcp"    = { protocol = "tcp", min = var.ports.spark_master, max = var.ports.spark_master }
    "spark-master-ui tcp" = { protocol = "tcp", min = var.ports.spark_master_ui, max = var.ports.spark_master_ui }
    "spark-worker-ui tcp" = { protocol = "tcp", min = var.ports.spark_worker_ui, max = var.ports.spark_worker_ui }
    "spark-app-ui tcp"    = { protocol = "tcp", min = var.ports.spark_app_ui_first, max = var.ports.spark_app_ui_last }
    "spark-driver-blockmanager tcp" = {
      protocol = "tcp"
      min      = min(var.ports.spark_driver, var.ports.spark_blockmanager)
      max      = max(var.ports.spark_driver, var.ports.spark_blockmanager) + local.spark_port_retries
    }
    "spark-rpc-ephemeral tcp" = { protocol = "tcp", min = var.internal_ephemeral_ports.first, max = var.internal_ephemeral_ports.last }
    "nfs tcp"                 = { protocol = "tcp", min = var.ports.nfs, max = var.ports.nfs }
    "ssh tcp"                 = { protocol = "tcp", min = var.ports.ssh, max = var.ports.ssh }
  }
}
