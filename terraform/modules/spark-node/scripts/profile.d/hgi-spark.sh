# shellcheck shell=sh
# The application user's login environment: SPARK_HOME, HAIL_HOME, PYSPARK_PYTHON, Spark's
# configuration (the master, Hail's jar and Kryo settings) and a `pyspark` alias.
# On a node: /etc/profile.d/hgi-spark.sh (baked into the image). On the local cluster:
# runtime/master/profile.sh sets HGI_SPARK_ENV_FILE and sources this same file.
# Values come in two layers: where the software is (/etc/hgi-spark/image.env, written when the
# image is built, so a login works even before boot configuration), then the node's own
# configuration (STATE_DIR/conf/app.env, rendered by run-node at boot), which wins.

HGI_SPARK_IMAGE_ENV_FILE="${HGI_SPARK_IMAGE_ENV_FILE:-/etc/hgi-spark/image.env}"
HGI_SPARK_ENV_FILE="${HGI_SPARK_ENV_FILE:-/var/lib/hgi-spark/conf/app.env}"
for hgi_spark_env in "${HGI_SPARK_IMAGE_ENV_FILE}" "${HGI_SPARK_ENV_FILE}"; do
  if [ -r "${hgi_spark_env}" ]; then
    set -a
    # shellcheck disable=SC1090
    . "${hgi_spark_env}"
    set +a
  fi
done
unset hgi_spark_env
if [ -n "${HAIL_VENV:-}" ] && [ -n "${SPARK_HOME:-}" ]; then
  case ":${PATH}:" in
    *":${HAIL_VENV}/bin:"*) ;;
    *) PATH="${HAIL_VENV}/bin:${PATH}" ;;
  esac
  export PATH
  # pyspark reads SPARK_CONF_DIR/spark-defaults.conf: the master, Hail's jar, Kryo.
  # shellcheck disable=SC2139
  alias pyspark="${SPARK_HOME}/bin/pyspark"
fi
