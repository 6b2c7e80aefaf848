# Every cloud name and tag of a deployment, derived from its name and owner only, so that
# `status` can find a deployment's resources again and two deployments never collide.

locals {
  # The digits of a worker's number; var.worker_count's maximum (999) fits in them.
  worker_width = 3

  # Hostnames allow only [a-z0-9-]: '_' and '.' of a folder name become '-'.
  prefix = "${replace(var.deployment_name, "/[_.]/", "-")}-${replace(var.deployment_owner, "/[_.]/", "-")}"

  # worker-001 .. worker-999: a fixed width, so a worker's name (Nova's server name and hostname,
  # the NODE_NAME in its user-data, which is ForceNew) never changes when the count grows. A width
  # that followed the count would rename, and so replace, every worker going from 99 to 100.
  worker_names = [for i in range(1, var.worker_count + 1) : format("%s-worker-%0${local.worker_width}d", local.prefix, i)]

  # Nova server metadata (string map) and Neutron/Nova tags (strings), the same facts in both.
  metadata = merge(
    {
      "hgi-spark-deployment" = "${var.deployment_name}/${var.deployment_owner}"
      "hgi-spark-name"       = var.deployment_name
      "hgi-spark-owner"      = var.deployment_owner
    },
    var.image_name == "" ? {} : { "hgi-spark-image" = var.image_name },
    var.image_version == "" ? {} : { "hgi-spark-image-version" = var.image_version },
  )

  # Nova and Neutron refuse '/' and ',' in a tag (and Nova more than 60 characters): the tags
  # carry name and owner separately instead of NAME/OWNER.
  tags = sort([for k, v in local.metadata : "${k}=${v}" if k != "hgi-spark-deployment"])
}
