# Everything about the cluster that is pure: names, sizes, the node environment of every node
# (the contract of ../../../modules/spark-node/README.md) and its user-data. One module call per
# role; workers are a count, so 100 workers are one line of input.

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

locals {
  with_tls = var.tls_certificate_pem != ""

  # What every node shares; NODE_NAME and NODE_BIND_ADDRESS are added per node.
  common_env = {
    NODE_MODE                       = "system"
    STATE_DIR                       = var.node_paths.state_dir
    APP_USER                        = var.app_user
    SPARK_HOME                      = "${var.node_paths.hail_venv}/lib/python${var.image.software["python"]}/site-packages/pyspark"
    HAIL_HOME                       = var.node_paths.hail_home
    HAIL_VENV                       = var.node_paths.hail_venv
    HAIL_TMP_DIR                    = var.node_paths.hail_tmp_dir
    SPARK_MASTER_HOST               = var.master_address
    SPARK_MASTER_PORT               = tostring(var.ports.spark_master)
    SPARK_MASTER_WEBUI_PORT         = tostring(var.ports.spark_master_ui)
    SPARK_WORKER_WEBUI_PORT         = tostring(var.ports.spark_worker_ui)
    SPARK_WORKER_CORES              = tostring(module.worker_size.worker_cores)
    SPARK_WORKER_MEMORY_MB          = tostring(module.worker_size.worker_memory_mb)
    SPARK_EXECUTOR_CORES            = tostring(module.worker_size.executor_cores)
    SPARK_EXECUTOR_MEMORY_MB        = tostring(module.worker_size.executor_memory_mb)
    SPARK_MEMORY_OVERHEAD_MB        = tostring(module.worker_size.memory_overhead_mb)
    SPARK_DRIVER_MEMORY_MB          = tostring(module.master_size.driver_memory_mb)
    SPARK_DRIVER_PORT               = tostring(var.ports.spark_driver)
    SPARK_BLOCKMANAGER_PORT         = tostring(var.ports.spark_blockmanager)
    SPARK_UI_PORT                   = tostring(var.ports.spark_app_ui_first)
    SPARK_UI_PORT_RETRIES           = tostring(var.ports.spark_app_ui_last - var.ports.spark_app_ui_first)
    SPARK_WORKER_CLEANUP_INTERVAL_S = tostring(var.spark.worker_cleanup_interval_s)
    SPARK_WORKER_APPDATA_TTL_S      = tostring(var.spark.worker_appdata_ttl_s)
    NFS_EXPORT_CIDR                 = var.subnet_cidr
    JUPYTER_PORT                    = tostring(var.ports.jupyter)
    HTTP_PORT                       = tostring(var.ports.http)
    HTTPS_PORT                      = tostring(var.ports.https)
    # nginx on the master answers on every interface; the security group decides who reaches it.
    HTTP_LISTEN_ADDRESS        = "0.0.0.0"
    NOTEBOOK_DIR               = var.node_paths.notebook_dir
    JUPYTER_PASSWORD_HASH_FILE = "${var.node_paths.etc_dir}/jupyter-password.hash"
    TLS_CERT_FILE              = ""
    TLS_KEY_FILE               = ""
    READY_TIMEOUT_S            = tostring(var.ready_timeout_s)
  }

  # Only the master serves http(s): it alone gets the certificate.
  master_env = merge(local.common_env, {
    NODE_NAME         = module.names.master_name
    NODE_BIND_ADDRESS = var.master_address
    TLS_CERT_FILE     = local.with_tls ? "${var.node_paths.etc_dir}/tls/cert.pem" : ""
    TLS_KEY_FILE      = local.with_tls ? "${var.node_paths.etc_dir}/tls/key.pem" : ""
  })

  worker_envs = [
    for i, name in module.names.worker_names : merge(local.common_env, {
      NODE_NAME         = name
      NODE_BIND_ADDRESS = try(var.worker_addresses[i], "")
    })
  ]

  # Nova gives a virtio disk the first 20 characters of the volume ID as its serial.
  tmp_volume = var.tmp_volume_id == "" ? null : {
    device      = "/dev/disk/by-id/virtio-${substr(var.tmp_volume_id, 0, 20)}"
    mount_point = var.node_paths.hail_tmp_dir
    label       = "hgi-spark-tmp"
    filesystem  = "ext4"
  }
}

module "master_user_data" {
  source = "../../../modules/cloud-init"

  role                  = "master"
  node_env              = local.master_env
  env_file              = "${var.node_paths.etc_dir}/node.env"
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
  env_file = "${var.node_paths.etc_dir}/node.env"
}
