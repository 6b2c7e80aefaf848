# shellcheck shell=bash
# Variables set here are read by run-node, and the contract's variables come from the environment:
# shellcheck disable=SC2034,SC2153
# Functions shared by run-node: logging, the environment contract, rendering of every
# configuration file, and detached processes with pid files. Sourced, never executed.
# The contract (every variable read here) is documented in ../README.md.

# --- logging ---------------------------------------------------------------------------------------

log() { printf '[%s] %s: %s\n' "$(date '+%H:%M:%S')" "${NODE_NAME:-node}" "$*" >&2; }

die() {
  printf '[%s] %s: error: %s\n' "$(date '+%H:%M:%S')" "${NODE_NAME:-node}" "$*" >&2
  exit 1
}

# --- the environment contract ---------------------------------------------------------------------

# Variables every node needs; the master and worker lists add to it.
readonly COMMON_VARS=(
  NODE_MODE NODE_NAME STATE_DIR APP_USER HAIL_HOME HAIL_VENV HAIL_TMP_DIR NODE_BIND_ADDRESS
  SPARK_MASTER_HOST SPARK_MASTER_PORT SPARK_MASTER_WEBUI_PORT
  SPARK_EXECUTOR_CORES SPARK_EXECUTOR_MEMORY_MB SPARK_DRIVER_MEMORY_MB SPARK_MEMORY_OVERHEAD_MB
  SPARK_DRIVER_PORT SPARK_BLOCKMANAGER_PORT SPARK_UI_PORT SPARK_UI_PORT_RETRIES
  SPARK_WORKER_CLEANUP_INTERVAL_S SPARK_WORKER_APPDATA_TTL_S READY_TIMEOUT_S
)
readonly MASTER_VARS=(JUPYTER_PORT HTTP_PORT HTTP_LISTEN_ADDRESS JUPYTER_PASSWORD_HASH_FILE NOTEBOOK_DIR)
readonly WORKER_VARS=(SPARK_WORKER_CORES SPARK_WORKER_MEMORY_MB SPARK_WORKER_WEBUI_PORT)
readonly NUMBER_VARS=(
  SPARK_MASTER_PORT SPARK_MASTER_WEBUI_PORT SPARK_EXECUTOR_CORES SPARK_EXECUTOR_MEMORY_MB
  SPARK_DRIVER_MEMORY_MB SPARK_MEMORY_OVERHEAD_MB SPARK_DRIVER_PORT SPARK_BLOCKMANAGER_PORT
  SPARK_UI_PORT SPARK_UI_PORT_RETRIES SPARK_WORKER_CLEANUP_INTERVAL_S SPARK_WORKER_APPDATA_TTL_S
  JUPYTER_PORT HTTP_PORT HTTPS_PORT SPARK_WORKER_CORES SPARK_WORKER_MEMORY_MB SPARK_WORKER_WEBUI_PORT
  READY_TIMEOUT_S
)

# Check the contract for ROLE: every required variable set, numbers numeric, mode known.
require_env() {
  local role="$1" name missing=()
  local -a needed=("${COMMON_VARS[@]}")
  if [[ ${role} == master ]]; then needed+=("${MASTER_VARS[@]}"); else needed+=("${WORKER_VARS[@]}"); fi
  for name in "${needed[@]}"; do
    [[ -n "${!name:-}" ]] || missing+=("${name}")
  done
  [[ ${#missing[@]} -eq 0 ]] \
    || die "missing node environment: ${missing[*]} (see terraform/modules/spark-node/README.md)"
  for name in "${NUMBER_VARS[@]}"; do
    [[ -z "${!name:-}" || "${!name}" =~ ^[0-9]+$ ]] || die "${name}='${!name}' is not a whole number"
  done
  case "${NODE_MODE}" in
    local | system) ;;
    *) die "NODE_MODE='${NODE_MODE}' must be 'local' or 'system'" ;;
  esac
  HTTPS_PORT="${HTTPS_PORT:-}"
  TLS_CERT_FILE="${TLS_CERT_FILE:-}"
  TLS_KEY_FILE="${TLS_KEY_FILE:-}"
  NFS_EXPORT_CIDR="${NFS_EXPORT_CIDR:-}"
  HAIL_TMP_DEVICE="${HAIL_TMP_DEVICE:-}"
  if [[ -n "${TLS_CERT_FILE}" || -n "${TLS_KEY_FILE}" ]]; then
    [[ -n "${TLS_CERT_FILE}" && -n "${TLS_KEY_FILE}" && -n "${HTTPS_PORT}" ]] \
      || die "TLS needs TLS_CERT_FILE, TLS_KEY_FILE and HTTPS_PORT together"
  fi
}

# Paths derived from the contract, in one place.
derive_paths() {
  CONF_DIR="${STATE_DIR}/conf"
  RUN_DIR="${STATE_DIR}/run"
  LOG_DIR="${STATE_DIR}/logs"
  SPARK_CONF_DIR="${CONF_DIR}/spark"
  JUPYTER_CONF_DIR="${CONF_DIR}/jupyter"
  NGINX_CONF_DIR="${CONF_DIR}/nginx"
  READY_MARKER="${STATE_DIR}/ready"
  PYTHON_BIN="${HAIL_VENV}/bin/python"
  if [[ -z "${SPARK_HOME:-}" ]]; then
    SPARK_HOME="$(first_match "${HAIL_VENV}"/lib/python3*/site-packages/pyspark)"
  fi
  HAIL_JAR="${HAIL_JAR:-$(first_match "${HAIL_VENV}"/lib/python3*/site-packages/hail/backend/hail-all-spark.jar)}"
}

first_match() {
  [[ -e "$1" ]] || return 0
  printf '%s\n' "$1"
}

# One line naming what is missing and how to install it.
require_tools() {
  local role="$1"
  [[ -x "${PYTHON_BIN}" ]] || die "no Python in HAIL_VENV=${HAIL_VENV} (install the Hail prefix first)"
  [[ -n "${SPARK_HOME}" && -x "${SPARK_HOME}/bin/spark-class" ]] \
    || die "no Spark in ${HAIL_VENV} (pyspark is not installed there)"
  [[ -n "${HAIL_JAR}" ]] || die "no hail-all-spark.jar in ${HAIL_VENV} (hail is not installed there)"
  if [[ -n "${JAVA_HOME:-}" ]]; then
    [[ -x "${JAVA_HOME}/bin/java" ]] || die "JAVA_HOME=${JAVA_HOME} has no bin/java"
  else
    command -v java >/dev/null 2>&1 || die "java not found: install it with 'apt-get install openjdk-17-jre-headless'"
  fi
  if [[ ${role} == master ]]; then
    # nginx lives in /usr/sbin, which a normal user's PATH on Debian does not name.
    NGINX="${NGINX:-$(PATH="${PATH}:/usr/sbin:/sbin" command -v nginx || true)}"
    if [[ -z "${NGINX}" ]] || ! command -v "${NGINX}" >/dev/null 2>&1; then
      die "nginx not found: install it with 'apt-get install nginx-light'"
    fi
  fi
}

# --- rendering --------------------------------------------------------------------------------------

# Write stdin to FILE atomically with MODE.
write_file() {
  local file="$1" mode="${2:-0644}" tmp
  mkdir -p "$(dirname "${file}")"
  tmp="$(mktemp "${file}.XXXXXX")"
  cat >"${tmp}"
  chmod "${mode}" "${tmp}"
  mv -f "${tmp}" "${file}"
}

# shell-quote a value for an env file that is sourced by sh
shell_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Spark's configuration for every process of the cluster: daemons, pyspark, spark-submit, Jupyter kernels.
render_spark_defaults() {
  write_file "${SPARK_CONF_DIR}/spark-defaults.conf" <<CONF
# Rendered by run-node for ${NODE_NAME}; edit the deployment's YAML instead.
spark.master                          spark://${SPARK_MASTER_HOST}:${SPARK_MASTER_PORT}
# Hail: its jar on the driver and executor class paths, Kryo with Hail's registrator, BGzip codecs.
# Every node has the jar at the same path (the image, or the local prefix), so executors load it
# from there: no spark.jars, no 141 MB copy into each application's work dir (about 10 s saved).
spark.driver.extraClassPath           ${HAIL_JAR}
spark.executor.extraClassPath         ${HAIL_JAR}
spark.serializer                      org.apache.spark.serializer.KryoSerializer
spark.kryo.registrator                is.hail.kryo.HailKryoRegistrator
spark.kryoserializer.buffer.max       1g
spark.driver.maxResultSize            0
spark.hadoop.io.compression.codecs    org.apache.hadoop.io.compress.DefaultCodec,is.hail.io.compress.BGzipCodec,is.hail.io.compress.BGzipCodecTbi,org.apache.hadoop.io.compress.GzipCodec
# Sizes from the spark-sizing module.
spark.executor.cores                  ${SPARK_EXECUTOR_CORES}
spark.executor.memory                 ${SPARK_EXECUTOR_MEMORY_MB}m
spark.executor.memoryOverhead         ${SPARK_MEMORY_OVERHEAD_MB}m
spark.driver.memory                   ${SPARK_DRIVER_MEMORY_MB}m
# The driver's ports are pinned (security groups name them); Spark tries up to maxRetries next
# ones when taken (one setting for every port: the app UI range is SPARK_UI_PORT .. +RETRIES).
# Only the driver's block manager is pinned: executors' RPC and block manager ports come from the
# kernel's ephemeral range (opened between cluster members), since a pinned spark.blockManager.port
# would cap a worker at maxRetries + 1 executors, and a 64-vCPU worker runs 16.
spark.driver.port                     ${SPARK_DRIVER_PORT}
spark.driver.blockManager.port        ${SPARK_BLOCKMANAGER_PORT}
spark.ui.port                         ${SPARK_UI_PORT}
spark.port.maxRetries                 ${SPARK_UI_PORT_RETRIES}
spark.ui.killEnabled                  false
# The master proxies worker and application UIs, and nginx serves the master's UI at /spark/.
spark.ui.reverseProxy                 true
spark.ui.reverseProxyUrl              /spark
# Each application leaves a copy of Hail's jar in the worker's work dir: clean up after it.
spark.worker.cleanup.enabled          true
spark.worker.cleanup.interval         ${SPARK_WORKER_CLEANUP_INTERVAL_S}
spark.worker.cleanup.appDataTtl       ${SPARK_WORKER_APPDATA_TTL_S}
# Shared use: several people (notebooks, pyspark, submit) use one cluster at once. An application
# holds executors only while it has tasks (dynamic allocation; shuffle files are tracked, so no
# external shuffle service is needed), so an idle notebook's SparkContext leaves the cores to a
# job submitted meanwhile; executors that keep shuffle data are released after the timeout.
spark.dynamicAllocation.enabled                   true
spark.dynamicAllocation.shuffleTracking.enabled   true
spark.dynamicAllocation.shuffleTracking.timeout   300s
spark.dynamicAllocation.executorIdleTimeout       60s
# A quiet console for drivers (pyspark, notebooks, submit): warnings and errors only; the daemons
# log everything to their files. log4j2.properties beside this file is named explicitly: Hail's jar,
# first on the class path, carries a configuration of its own (INFO to stdout).
spark.driver.extraJavaOptions         -Dlog4j2.configurationFile=file:${SPARK_CONF_DIR}/log4j2.properties -Dhgi.console.level=warn
CONF
}

# Logging of every Spark process on the node: the console at hgi.console.level (INFO for the
# daemons, WARN for drivers, see spark.driver.extraJavaOptions), and, when the environment's
# HGI_DRIVER_LOG names a file (submit does), every INFO line of the driver there.
render_log4j() {
  write_file "${SPARK_CONF_DIR}/log4j2.properties" <<'LOG4J'
# Rendered by run-node.
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
rootLogger.appenderRef.file.ref = file
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
appender.console.filter.threshold.type = ThresholdFilter
appender.console.filter.threshold.level = ${sys:hgi.console.level:-info}
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${env:HGI_DRIVER_LOG:-/dev/null}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
# Spark's own defaults for chatty libraries.
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
logger.parquet.name = org.apache.parquet
logger.parquet.level = error
LOG4J
}

# The login environment of the application user, read by profile.d/hgi-spark.sh.
render_app_env() {
  {
    printf '# Rendered by run-node for %s: the application user'"'"'s Spark/Hail environment.\n' "${NODE_NAME}"
    local name
    for name in SPARK_HOME HAIL_HOME HAIL_VENV HAIL_TMP_DIR SPARK_CONF_DIR; do
      printf '%s=%s\n' "${name}" "$(shell_quote "${!name}")"
    done
    printf 'PYSPARK_PYTHON=%s\n' "$(shell_quote "${PYTHON_BIN}")"
    printf 'PYSPARK_DRIVER_PYTHON=%s\n' "$(shell_quote "${PYTHON_BIN}")"
    printf 'SPARK_LOCAL_IP=%s\n' "$(shell_quote "${NODE_BIND_ADDRESS}")"
    printf 'SPARK_MASTER_URL=%s\n' "$(shell_quote "spark://${SPARK_MASTER_HOST}:${SPARK_MASTER_PORT}")"
    [[ -z "${JAVA_HOME:-}" ]] || printf 'JAVA_HOME=%s\n' "$(shell_quote "${JAVA_HOME}")"
  } | write_file "${CONF_DIR}/app.env"
}

# A local cluster's entry to the login environment: source it, as /etc/profile.d/ would on a node.
render_local_profile() {
  local profile_script
  profile_script="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/profile.d/hgi-spark.sh"
  write_file "${STATE_DIR}/profile.sh" <<PROFILE
# shellcheck shell=sh
# The local cluster's login environment: . this file, then run pyspark, spark-submit or python.
HGI_SPARK_ENV_FILE=$(shell_quote "${CONF_DIR}/app.env")
export HGI_SPARK_ENV_FILE
. $(shell_quote "${profile_script}")
PROFILE
}

render_jupyter_config() {
  local ALLOW_ROOT=False
  [[ ${NODE_MODE} == local ]] && ALLOW_ROOT=True
  write_file "${JUPYTER_CONF_DIR}/jupyter_server_config.py" <<PY
# Rendered by run-node for ${NODE_NAME}. JupyterLab listens on localhost only; nginx is in front.
from pathlib import Path

c = get_config()  # noqa: F821 (injected by Jupyter)
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = ${JUPYTER_PORT}
c.ServerApp.port_retries = 0
c.ServerApp.base_url = "/jupyter/"
c.ServerApp.open_browser = False
c.ServerApp.root_dir = "${NOTEBOOK_DIR}"
# nginx forwards the browser's Host header, which names the public address.
c.ServerApp.allow_remote_access = True
c.ServerApp.trust_xheaders = True
# The local cluster runs as whoever calls it (root in CI); a node runs it as APP_USER.
c.ServerApp.allow_root = ${ALLOW_ROOT}
# Password only (hashed, read from a file the wrapper wrote); no token.
c.IdentityProvider.token = ""
c.PasswordIdentityProvider.hashed_password = Path("${JUPYTER_PASSWORD_HASH_FILE}").read_text().strip()
c.PasswordIdentityProvider.password_required = True
c.PasswordIdentityProvider.allow_password_change = False
# The login cookie holds for the whole site, not only /jupyter/: nginx asks Jupyter (/api/me) with
# it before serving any page of the Spark UIs under /spark/ (one password for every page).
c.IdentityProvider.cookie_options = {"path": "/"}
# No calls to the internet from the server.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.app_settings_dir = "${JUPYTER_CONF_DIR}/lab-settings"
PY
  # ... and no question about fetching news in the browser.
  write_file "${JUPYTER_CONF_DIR}/lab-settings/overrides.json" <<'JSON'
{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}
JSON
}

# The server block (and its map) for nginx's http context: /jupyter/ and /spark/.
render_nginx_server() {
  local listen_http="${HTTP_LISTEN_ADDRESS}:${HTTP_PORT}" tls_block="" plain_jupyter=1
  [[ ${HTTP_LISTEN_ADDRESS} == "*" ]] && listen_http="${HTTP_PORT}"
  if [[ -n "${TLS_CERT_FILE}" ]]; then
    plain_jupyter=0
    local listen_https="${HTTP_LISTEN_ADDRESS}:${HTTPS_PORT}"
    [[ ${HTTP_LISTEN_ADDRESS} == "*" ]] && listen_https="${HTTPS_PORT}"
    tls_block="    listen ${listen_https} ssl;
    ssl_certificate ${TLS_CERT_FILE};
    ssl_certificate_key ${TLS_KEY_FILE};"
  fi
  {
    cat <<'NGINX'
# Rendered by run-node. JupyterLab at /jupyter/ (websockets proxied), the Spark master UI at /spark/.
map $http_upgrade $hgi_connection_upgrade {
    default upgrade;
    ''      close;
}
NGINX
    if [[ ${plain_jupyter} -eq 0 ]]; then
      cat <<NGINX
server {
    listen ${listen_http};
    return 301 https://\$host:${HTTPS_PORT}\$request_uri;
}
NGINX
    fi
    cat <<NGINX
server {
NGINX
    [[ ${plain_jupyter} -eq 1 ]] && printf '    listen %s;\n' "${listen_http}"
    [[ -n "${tls_block}" ]] && printf '%s\n' "${tls_block}"
    cat <<NGINX
    server_name _;
    client_max_body_size 1g;

    location = / {
        return 302 /jupyter/;
    }

    location /jupyter/ {
        proxy_pass http://127.0.0.1:${JUPYTER_PORT};
        proxy_http_version 1.1;
        proxy_set_header Host \$http_host;
        proxy_set_header X-Real-IP \$remote_addr;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_set_header Upgrade \$http_upgrade;
        proxy_set_header Connection \$hgi_connection_upgrade;
        proxy_read_timeout 1d;
        proxy_buffering off;
    }

    # One login for every page: JupyterLab's. Each request to the Spark UIs (the master's, and the
    # workers' and applications' it proxies, with their logs and environment pages) is first asked
    # of Jupyter's /api/me with the browser's cookie: 200 logged in, 403 not (then: the login page).
    location = /_hgi_auth {
        internal;
        proxy_pass http://127.0.0.1:${JUPYTER_PORT}/jupyter/api/me;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Host \$http_host;
        proxy_set_header X-Forwarded-Proto \$scheme;
    }

    location @hgi_login {
        return 302 /jupyter/login?next=\$request_uri;
    }

    location = /spark {
        return 302 /spark/;
    }

    location /spark/ {
        auth_request /_hgi_auth;
        error_page 401 403 = @hgi_login;
        proxy_pass http://${SPARK_MASTER_HOST}:${SPARK_MASTER_WEBUI_PORT}/;
        proxy_http_version 1.1;
        proxy_set_header Host \$http_host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
    }
}
NGINX
  } | write_file "${NGINX_CONF_DIR}/hgi-spark-server.conf"
}

# A whole nginx configuration for an unprivileged nginx (local mode): every path in STATE_DIR.
render_nginx_local() {
  local temp="${STATE_DIR}/nginx"
  mkdir -p "${temp}"
  write_file "${NGINX_CONF_DIR}/nginx.conf" <<NGINX
# Rendered by run-node for ${NODE_NAME}: an unprivileged nginx, in the foreground, files under STATE_DIR.
daemon off;
worker_processes 1;
pid ${temp}/nginx.pid;
error_log ${LOG_DIR}/nginx-error.log warn;

events {
    worker_connections 256;
}

http {
    access_log ${LOG_DIR}/nginx-access.log;
    client_body_temp_path ${temp}/client_body;
    proxy_temp_path ${temp}/proxy;
    fastcgi_temp_path ${temp}/fastcgi;
    uwsgi_temp_path ${temp}/uwsgi;
    scgi_temp_path ${temp}/scgi;
    include ${NGINX_CONF_DIR}/hgi-spark-server.conf;
}
NGINX
}

# Optional variables of the contract, kept with the required ones in a local node's node.env.
readonly OPTIONAL_VARS=(
  HTTPS_PORT TLS_CERT_FILE TLS_KEY_FILE NFS_EXPORT_CIDR SPARK_HOME HAIL_JAR JAVA_HOME NGINX
)

# A local node's environment, kept in STATE_DIR/node.env: a node a killed apply left running
# outside terraform's state can still be inspected and stopped (run-node --env-file it --status).
save_node_env() {
  local role="$1" name
  local -a names=("${COMMON_VARS[@]}" "${OPTIONAL_VARS[@]}")
  if [[ ${role} == master ]]; then names+=("${MASTER_VARS[@]}"); else names+=("${WORKER_VARS[@]}"); fi
  for name in "${names[@]}"; do
    [[ -n "${!name+set}" ]] && printf '%s=%s\n' "${name}" "$(shell_quote "${!name}")"
  done | write_file "${STATE_DIR}/node.env" 0600
}

# Everything ROLE needs on disk, written before anything starts.
render_all() {
  local role="$1"
  mkdir -p "${CONF_DIR}" "${RUN_DIR}" "${LOG_DIR}" "${HAIL_TMP_DIR}"
  [[ ${NODE_MODE} != local ]] || save_node_env "${role}"
  render_spark_defaults
  render_log4j
  render_app_env
  if [[ ${role} == master ]]; then
    mkdir -p "${NOTEBOOK_DIR}"
    render_jupyter_config
    render_nginx_server
    [[ ${NODE_MODE} == local ]] && render_nginx_local
    [[ ${NODE_MODE} == local ]] && render_local_profile
  fi
  return 0
}

# --- processes ----------------------------------------------------------------------------------------

# Alive and not a zombie (an exited daemon stays a zombie until PID 1 reaps it).
running() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)"
  [[ -n "${state}" && "${state}" != Z ]]
}

pid_file() { printf '%s/%s.pid\n' "${RUN_DIR}" "$1"; }

# The pid in NAME's pid file if that process is alive and is ours (its command line names STATE_DIR).
live_pid() {
  local file pid
  file="$(pid_file "$1")"
  [[ -f "${file}" ]] || return 1
  pid="$(cat "${file}")"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  running "${pid}" || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${STATE_DIR}" || return 1
  printf '%s\n' "${pid}"
}

# A pid file whose process is gone (a crash, a reboot) or is someone else's now: remove it.
clear_stale() {
  local name="$1" file
  file="$(pid_file "${name}")"
  if [[ -f "${file}" ]] && ! live_pid "${name}" >/dev/null; then
    log "removing stale pid file ${file} (process $(cat "${file}") is not running)"
    rm -f "${file}"
  fi
}

port_in_use() {
  local host="$1" port="$2"
  [[ ${host} == "*" || ${host} == 0.0.0.0 ]] && host=127.0.0.1
  timeout 2 bash -c "exec 3<>/dev/tcp/${host}/${port}" 2>/dev/null
}

# Refuse to start when a port is taken by something else; NAME says which setting to change.
require_free_port() {
  local host="$1" port="$2" setting="$3"
  if port_in_use "${host}" "${port}"; then
    die "port ${port} on ${host} (${setting}) is already in use by another process: stop it, or give this deployment other ports (ports: in its deployment.yml)"
  fi
}

# One run-node at a time per node (local mode): a start or stop waits for one still running, e.g.
# the start of an apply whose terraform was killed, which would otherwise stop what the next
# start began. The lock is fd 9, closed for the daemons so they never hold it.
hold_node_lock() {
  mkdir -p "${STATE_DIR}"
  exec 9>"${STATE_DIR}/.run-node.lock"
  if ! flock -n 9; then
    log "waiting for another run-node of this node to finish"
    flock -w "${READY_TIMEOUT_S}" 9 || die "another run-node of ${NODE_NAME} still runs after ${READY_TIMEOUT_S} s"
  fi
}

# Start a detached process (own session, no terminal) with its log and pid file.
start_detached() {
  local name="$1"
  shift
  local log_file="${LOG_DIR}/${name}.log"
  log "starting ${name}: $*"
  nohup setsid "$@" </dev/null >>"${log_file}" 2>&1 9>&- &
  printf '%s\n' "$!" >"$(pid_file "${name}")"
}

# Stop NAME by its pid file: TERM to its process group, wait, KILL after a grace period. Sets
# STOPPED_ANY=1 when there was a process to stop.
STOPPED_ANY=0
stop_process() {
  local name="$1" grace="${2:-30}" pid waited=0
  clear_stale "${name}"
  pid="$(live_pid "${name}")" || { rm -f "$(pid_file "${name}")"; return 0; }
  STOPPED_ANY=1
  log "stopping ${name} (pid ${pid})"
  kill -TERM -- "-${pid}" 2>/dev/null || kill -TERM "${pid}" 2>/dev/null || true
  while running "${pid}"; do
    if ((waited >= grace * 10)); then
      log "${name} (pid ${pid}) ignored TERM for ${grace}s: killing it"
      kill -KILL -- "-${pid}" 2>/dev/null || kill -KILL "${pid}" 2>/dev/null || true
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$(pid_file "${name}")"
}

wait_port_free() {
  local host="$1" port="$2" waited=0
  while port_in_use "${host}" "${port}"; do
    ((waited < 100)) || die "port ${port} on ${host} is still in use 10 s after its process stopped"
    sleep 0.1
    waited=$((waited + 1))
  done
}

# Wait until COMMAND succeeds; on timeout, show the logs of NAMES and fail.
wait_until() {
  local what="$1" timeout="$2" deadline
  shift 2
  deadline=$((SECONDS + timeout))
  local status=0
  until "$@"; do
    status=$?
    # 2: a process died, no point in waiting any longer; 1: not ready yet.
    ((status != 2)) || return 2
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
  log "${what}: ready after $((timeout - deadline + SECONDS)) s"
}

# Fail if a process we started has exited (so a readiness wait does not sit out its timeout).
require_alive() {
  local name
  for name in "$@"; do
    live_pid "${name}" >/dev/null || return 2
  done
}

show_logs() {
  local name
  for name in "$@"; do
    [[ -f "${LOG_DIR}/${name}.log" ]] || continue
    printf -- '--- last lines of %s ---\n' "${LOG_DIR}/${name}.log" >&2
    tail -n 20 "${LOG_DIR}/${name}.log" >&2
  done
}
