# A Spark standalone cluster on OpenStack: one master with a floating IP and `workers` workers,
# on an existing network or one created here, booted from the baked image. Everything pure
# (names, sizes, node environments, user-data) is in modules/cluster; this file only asks
# OpenStack and creates resources. Workers are `count`: nothing is written per worker.

# --- what the cloud already has -------------------------------------------------------------------

# The image is a deliberate input: the wrapper passes var.image_id (resolved from Glance at the
# first `up`, then pinned from the state). Only without it is the image looked up by name here.
data "openstack_images_image_v2" "node" {
  count       = var.image_id == "" ? 1 : 0
  name        = var.image.glance_name
  most_recent = true
}

data "openstack_compute_flavor_v2" "master" {
  name = var.master_flavor
}

data "openstack_compute_flavor_v2" "worker" {
  name = var.worker_flavor
}

data "openstack_networking_network_v2" "external" {
  name     = var.external_network
  external = true
}

data "openstack_networking_network_v2" "existing" {
  count = var.network.create ? 0 : 1
  name  = var.network.name
}

data "openstack_networking_subnet_v2" "existing" {
  count      = var.network.create ? 0 : 1
  network_id = data.openstack_networking_network_v2.existing[0].id
  name       = var.network.subnet_name
  ip_version = 4
}

# --- the pure part ---------------------------------------------------------------------------------

module "cluster" {
  source = "./modules/cluster"

  deployment_name          = var.deployment_name
  deployment_owner         = var.deployment_owner
  image                    = var.image
  workers                  = var.workers
  ports                    = var.ports
  internal_ephemeral_ports = var.internal_ephemeral_ports
  master_flavor            = { vcpus = data.openstack_compute_flavor_v2.master.vcpus, ram_mb = data.openstack_compute_flavor_v2.master.ram }
  worker_flavor            = { vcpus = data.openstack_compute_flavor_v2.worker.vcpus, ram_mb = data.openstack_compute_flavor_v2.worker.ram }
  sizing                   = var.sizing
  spark                    = var.spark
  ready_timeout_s          = var.ready_timeout_s
  master_address           = openstack_networking_port_v2.master.all_fixed_ips[0]
  worker_addresses         = [for port in openstack_networking_port_v2.worker : port.all_fixed_ips[0]]
  subnet_cidr              = local.subnet_cidr
  jupyter_password_hash    = var.jupyter_password_hash
  tls_certificate_pem      = var.tls == null ? "" : file(pathexpand(var.tls.certificate_file))
  tls_private_key_pem      = var.tls == null ? "" : file(pathexpand(var.tls.key_file))
  tmp_volume_id            = var.tmp_volume_gb > 0 ? openstack_blockstorage_volume_v3.master_tmp[0].id : ""
}

locals {
  image_id = var.image_id != "" ? var.image_id : data.openstack_images_image_v2.node[0].id

  names = module.cluster.names
  tags  = module.cluster.tags

  network_id  = var.network.create ? openstack_networking_network_v2.this[0].id : data.openstack_networking_network_v2.existing[0].id
  subnet_id   = var.network.create ? openstack_networking_subnet_v2.this[0].id : data.openstack_networking_subnet_v2.existing[0].id
  subnet_cidr = var.network.create ? openstack_networking_subnet_v2.this[0].cidr : data.openstack_networking_subnet_v2.existing[0].cidr
}

# --- network, when asked ----------------------------------------------------------------------------

resource "openstack_networking_network_v2" "this" {
  count          = var.network.create ? 1 : 0
  name           = local.names.network.network
  admin_state_up = true
  tags           = local.tags
}

resource "openstack_networking_subnet_v2" "this" {
  count           = var.network.create ? 1 : 0
  name            = local.names.network.subnet
  network_id      = openstack_networking_network_v2.this[0].id
  cidr            = var.network.cidr
  ip_version      = 4
  dns_nameservers = var.network.dns_nameservers
  tags            = local.tags
}

resource "openstack_networking_router_v2" "this" {
  count               = var.network.create ? 1 : 0
  name                = local.names.network.router
  admin_state_up      = true
  external_network_id = data.openstack_networking_network_v2.external.id
  tags                = local.tags
}

resource "openstack_networking_router_interface_v2" "this" {
  count     = var.network.create ? 1 : 0
  router_id = openstack_networking_router_v2.this[0].id
  subnet_id = openstack_networking_subnet_v2.this[0].id
}

# --- security groups ---------------------------------------------------------------------------------

locals {
  # From allowed_cidrs, to the master only: ssh, http, https. Never 0.0.0.0/0 (see variables.tf).
  external_services = {
    ssh   = var.ports.ssh
    http  = var.ports.http
    https = var.ports.https
  }
  external_rules = {
    for pair in setproduct(keys(local.external_services), var.allowed_cidrs) :
    "${pair[0]} ${pair[1]}" => {
      port      = local.external_services[pair[0]]
      cidr      = pair[1]
      ethertype = strcontains(pair[1], ":") ? "IPv6" : "IPv4"
    }
  }

  # Between cluster members only (remote group = the internal group itself): Spark's ports and
  # NFSv4 (2049/tcp only), computed in modules/cluster (local.internal_rules there says why).
  internal_rules = module.cluster.internal_rules
}

resource "openstack_networking_secgroup_v2" "external" {
  name        = local.names.secgroups.external
  description = "${local.names.prefix}: ssh, http and https from allowed_cidrs to the master"
  tags        = local.tags
}

resource "openstack_networking_secgroup_v2" "internal" {
  name        = local.names.secgroups.internal
  description = "${local.names.prefix}: Spark, NFSv4 and ssh between cluster members only"
  tags        = local.tags
}

resource "openstack_networking_secgroup_rule_v2" "external" {
  for_each          = local.external_rules
  description       = "${local.names.prefix} ${each.key}"
  direction         = "ingress"
  ethertype         = each.value.ethertype
  protocol          = "tcp"
  port_range_min    = each.value.port
  port_range_max    = each.value.port
  remote_ip_prefix  = each.value.cidr
  security_group_id = openstack_networking_secgroup_v2.external.id
}

resource "openstack_networking_secgroup_rule_v2" "internal" {
  for_each          = local.internal_rules
  description       = "${local.names.prefix} ${each.key}"
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = each.value.protocol
  port_range_min    = each.value.min
  port_range_max    = each.value.max
  remote_group_id   = openstack_networking_secgroup_v2.internal.id
  security_group_id = openstack_networking_secgroup_v2.internal.id
}

resource "openstack_networking_secgroup_rule_v2" "internal_icmp" {
  description       = "${local.names.prefix} icmp"
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "icmp"
  remote_group_id   = openstack_networking_secgroup_v2.internal.id
  security_group_id = openstack_networking_secgroup_v2.internal.id
}

# --- ports: addresses known before the servers exist, security groups on the ports -------------------

resource "openstack_networking_port_v2" "master" {
  name               = local.names.master
  network_id         = local.network_id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.internal.id, openstack_networking_secgroup_v2.external.id]
  tags               = local.tags

  fixed_ip {
    subnet_id = local.subnet_id
  }

  depends_on = [openstack_networking_router_interface_v2.this]
}

resource "openstack_networking_port_v2" "worker" {
  count              = var.workers
  name               = local.names.workers[count.index]
  network_id         = local.network_id
  admin_state_up     = true
  security_group_ids = [openstack_networking_secgroup_v2.internal.id]
  tags               = local.tags

  fixed_ip {
    subnet_id = local.subnet_id
  }
}

# --- key pair, volume, servers -----------------------------------------------------------------------

resource "openstack_compute_keypair_v2" "this" {
  name       = local.names.keypair
  public_key = trimspace(file(pathexpand(var.ssh_public_key_file)))
}

# A bigger tmp_volume_gb extends the attached volume in place: the provider's update calls
# Cinder's extend (microversion 3.42, "in-use") only with this set, and fails otherwise with
# "volume is attached to the instance and resizing online is disabled"
# (terraform-provider-openstack v3.x, openstack/resource_openstack_blockstorage_volume_v3.go,
# resourceBlockStorageVolumeV3Update, `if v.Status == "in-use"`). `size` is not ForceNew there, so
# a growing volume is never replaced; the master's hgi-spark-grow-tmp unit (run-node) then grows
# its ext4 filesystem. A smaller size is also sent to extend, which Cinder refuses mid-apply:
# the wrapper refuses shrinking before it plans.
resource "openstack_blockstorage_volume_v3" "master_tmp" {
  count             = var.tmp_volume_gb > 0 ? 1 : 0
  name              = local.names.volume
  description       = "${local.names.prefix}: the master's shared tmp directory (HAIL_TMP_DIR)"
  size              = var.tmp_volume_gb
  volume_type       = var.tmp_volume_type
  availability_zone = var.volume_availability_zone != null ? var.volume_availability_zone : var.availability_zone
  metadata          = module.cluster.metadata.master

  enable_online_resize = true
}

locals {
  # Disks of a node, in boot order. The root disk is the image on the flavor's local disk, or with
  # boot_from_volume a Cinder volume made from the image (deleted with the server). The master
  # also gets the tmp volume, attached before the first boot so cloud-init finds it (an attachment
  # made after the server is up could race cloud-init's mounts). Every block_device argument is
  # ForceNew (openstack/resource_openstack_compute_instance_v2.go, "block_device" schema).
  root_block_device = var.boot_from_volume == null ? {
    uuid                  = local.image_id
    source_type           = "image"
    destination_type      = "local"
    boot_index            = 0
    delete_on_termination = true
    volume_size           = null
    volume_type           = null
    } : {
    uuid                  = local.image_id
    source_type           = "image"
    destination_type      = "volume"
    boot_index            = 0
    delete_on_termination = true
    volume_size           = var.boot_from_volume.size_gb
    volume_type           = var.boot_from_volume.volume_type
  }
  tmp_block_device = var.tmp_volume_gb > 0 ? [{
    uuid                  = openstack_blockstorage_volume_v3.master_tmp[0].id
    source_type           = "volume"
    destination_type      = "volume"
    boot_index            = -1
    delete_on_termination = false
    volume_size           = null
    volume_type           = null
  }] : []
  # Without a volume of any kind a node lists no block device (Nova boots image_id locally).
  master_block_devices = var.boot_from_volume == null && var.tmp_volume_gb == 0 ? [] : concat([local.root_block_device], local.tmp_block_device)
  worker_block_devices = var.boot_from_volume == null ? [] : [local.root_block_device]

  # image_id only when a block device does not carry the image: booted from a volume, the provider
  # records image_id as "Attempt to boot from volume - no image supplied" (setImageInformation in
  # resource_openstack_compute_instance_v2.go), so a set image_id would differ on every plan.
  instance_image_id = var.boot_from_volume == null ? local.image_id : null
}

# The image the nodes were created from. image_id is not ForceNew on openstack_compute_instance_v2:
# a changed ID makes the provider call Nova's rebuild in place (resourceComputeInstanceV2Update,
# `if d.HasChange("image_id") ... servers.Rebuild`), which wipes the root disk under a running
# node without showing a replacement in the plan (and a boot volume's image is not rebuilt at all).
# Instead, every server is replaced when this changes (replace_triggered_by): a deliberate,
# visible `-/+` on each node, and the user-data runs again on the new ones.
resource "terraform_data" "image" {
  input            = local.image_id
  triggers_replace = local.image_id
}

resource "openstack_compute_instance_v2" "master" {
  name              = local.names.master
  image_id          = local.instance_image_id
  flavor_id         = data.openstack_compute_flavor_v2.master.id
  key_pair          = openstack_compute_keypair_v2.this.name
  availability_zone = var.availability_zone
  user_data         = module.cluster.master_user_data
  metadata          = module.cluster.metadata.master

  network {
    port = openstack_networking_port_v2.master.id
  }

  dynamic "block_device" {
    for_each = local.master_block_devices
    content {
      uuid                  = block_device.value.uuid
      source_type           = block_device.value.source_type
      destination_type      = block_device.value.destination_type
      boot_index            = block_device.value.boot_index
      delete_on_termination = block_device.value.delete_on_termination
      volume_size           = block_device.value.volume_size
      volume_type           = block_device.value.volume_type
    }
  }

  lifecycle {
    replace_triggered_by = [terraform_data.image]
  }
}

resource "openstack_compute_instance_v2" "worker" {
  count             = var.workers
  name              = local.names.workers[count.index]
  image_id          = local.instance_image_id
  flavor_id         = data.openstack_compute_flavor_v2.worker.id
  key_pair          = openstack_compute_keypair_v2.this.name
  availability_zone = var.availability_zone
  user_data         = module.cluster.worker_user_data[count.index]
  metadata          = module.cluster.metadata.worker

  network {
    port = openstack_networking_port_v2.worker[count.index].id
  }

  dynamic "block_device" {
    for_each = local.worker_block_devices
    content {
      uuid                  = block_device.value.uuid
      source_type           = block_device.value.source_type
      destination_type      = block_device.value.destination_type
      boot_index            = block_device.value.boot_index
      delete_on_termination = block_device.value.delete_on_termination
      volume_size           = block_device.value.volume_size
      volume_type           = block_device.value.volume_type
    }
  }

  lifecycle {
    replace_triggered_by = [terraform_data.image]
  }
}

# --- the master's public address ---------------------------------------------------------------------

resource "openstack_networking_floatingip_v2" "master" {
  pool        = data.openstack_networking_network_v2.external.name
  description = "${local.names.master}: Jupyter, Spark UI and ssh"
  tags        = local.tags
}

resource "openstack_networking_floatingip_associate_v2" "master" {
  floating_ip = openstack_networking_floatingip_v2.master.address
  port_id     = openstack_networking_port_v2.master.id

  depends_on = [openstack_networking_router_interface_v2.this]
}
