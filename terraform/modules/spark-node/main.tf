# The node environment: every variable the node scripts read (contract in README.md), as strings.

locals {
  common = {
    NODE_MODE                       = var.mode
    NODE_NAME                       = var.node_name
    STATE_DIR                       = var.state_dir
    APP_USER                        = var.app_user
    HAIL_HOME                       = var.hail_home
    HAIL_VENV                       = var.hail_venv
    SPARK_HOME                      = var.spark_home
    HAIL_JAR                        = var.hail_jar
    HAIL_TMP_DIR                    = var.hail_tmp_dir
    NODE_BIND_ADDRESS               = var.bind_address
    SPARK_MASTER_HOST               = var.master_host
    SPARK_MASTER_PORT               = tostring(var.ports.spark_master)
    SPARK_MASTER_WEBUI_PORT         = tostring(var.ports.spark_master_ui)
    SPARK_EXECUTOR_CORES            = tostring(var.sizing.executor_cores)
    SPARK_EXECUTOR_MEMORY_MB        = tostring(var.sizing.executor_memory_mb)
    SPARK_DRIVER_MEMORY_MB          = tostring(var.sizing.driver_memory_mb)
    SPARK_MEMORY_OVERHEAD_MB        = tostring(var.sizing.memory_overhead_mb)
    SPARK_DRIVER_PORT               = tostring(var.ports.spark_driver)
    SPARK_BLOCKMANAGER_PORT         = tostring(var.ports.spark_blockmanager)
    SPARK_UI_PORT                   = tostring(var.ports.spark_app_ui_first)
    SPARK_UI_PORT_RETRIES           = tostring(var.ports.spark_app_ui_last - var.ports.spark_app_ui_first)
    SPARK_WORKER_CLEANUP_INTERVAL_S = tostring(var.worker_cleanup.interval_s)
    SPARK_WORKER_APPDATA_TTL_S      = tostring(var.worker_cleanup.app_data_ttl_s)
    READY_TIMEOUT_S                 = tostring(var.ready_timeout_s)
  }

  master = {
    JUPYTER_PORT               = tostring(var.ports.jupyter)
    HTTP_PORT                  = tostring(var.ports.http)
    HTTPS_PORT                 = tostring(var.ports.https)
    HTTP_LISTEN_ADDRESS        = var.http_listen_address
    JUPYTER_PASSWORD_HASH_FILE = var.jupyter_password_hash_file
    NOTEBOOK_DIR               = var.notebook_dir
    NFS_EXPORT_CIDR            = var.nfs_export_cidr == null ? "" : var.nfs_export_cidr
    HAIL_TMP_DEVICE            = var.tmp_device
    TLS_CERT_FILE              = var.tls == null ? "" : var.tls.cert_file
    TLS_KEY_FILE               = var.tls == null ? "" : var.tls.key_file
  }

  worker = {
    SPARK_WORKER_CORES      = tostring(var.sizing.worker_cores)
    SPARK_WORKER_MEMORY_MB  = tostring(var.sizing.worker_memory_mb)
    SPARK_WORKER_WEBUI_PORT = tostring(coalesce(var.worker_webui_port, var.ports.spark_worker_ui))
  }

  env = merge(local.common, var.role == "master" ? local.master : local.worker)
}
