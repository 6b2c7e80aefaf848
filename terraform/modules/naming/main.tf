# Every cloud name and tag of a deployment, derived from its name and owner only, so that
# `status` can find a deployment's resources again and two deployments never collide.

locals {
  # Hostnames allow only [a-z0-9-]: '_' and '.' of a folder name become '-'.
  prefix = "${replace(var.deployment_name, "/[_.]/", "-")}-${replace(var.deployment_owner, "/[_.]/", "-")}"

  # worker-01 .. worker-99, worker-001 .. worker-100 ...: the width follows the count.
  worker_width = max(2, length(tostring(var.worker_count)))
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
