# shellcheck shell=sh
# The application user's login environment: SPARK_HOME, HAIL_HOME, PYSPARK_PYTHON, Spark's
# configuration (the master, Hail's jar and Kryo settings) and a `pyspark` alias.
# On a node: /etc/profile.d/hgi-spark.sh (baked into the image). On the local cluster:
# runtime/master/profile.sh sets HGI_SPARK_ENV_FILE and sources this same file.
# The values come from the env file that run-node renders (STATE_DIR/conf/app.env).

HGI_SPARK_ENV_FILE="${HGI_SPARK_ENV_FILE:-/var/lib/hgi-spark/conf/app.env}"
if [ -r "${HGI_SPARK_ENV_FILE}" ]; then
  set -a
  # shellcheck disable=SC1090
  . "${HGI_SPARK_ENV_FILE}"
  set +a
  case ":${PATH}:" in
    *":${HAIL_VENV}/bin:"*) ;;
    *) PATH="${HAIL_VENV}/bin:${PATH}" ;;
  esac
  export PATH
  # pyspark reads SPARK_CONF_DIR/spark-defaults.conf: the master, Hail's jar, Kryo.
  # shellcheck disable=SC2139
  alias pyspark="${SPARK_HOME}/bin/pyspark"
fi
