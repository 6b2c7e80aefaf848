# A Spark standalone cluster on OpenStack: one master with a floating IP and `workers` workers,
# on an existing network or one created here, booted from the baked image. Everything pure
# (names, sizes, node environments, user-data) is in modules/cluster; this file only asks
# OpenStack and creates resources. Workers are `count`: nothing is written per worker.

# --- what the cloud already has -------------------------------------------------------------------

data "openstack_images_image_v2" "node" {
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

  deployment_name       = var.deployment_name
  deployment_owner      = var.deployment_owner
  image                 = var.image
  workers               = var.workers
  app_user              = var.app_user
  ports                 = var.ports
  master_flavor         = { vcpus = data.openstack_compute_flavor_v2.master.vcpus, ram_mb = data.openstack_compute_flavor_v2.master.ram }
  worker_flavor         = { vcpus = data.openstack_compute_flavor_v2.worker.vcpus, ram_mb = data.openstack_compute_flavor_v2.worker.ram }
  sizing                = var.sizing
  spark                 = var.spark
  node_paths            = var.node_paths
  ready_timeout_s       = var.ready_timeout_s
  master_address        = openstack_networking_port_v2.master.all_fixed_ips[0]
  worker_addresses      = [for port in openstack_networking_port_v2.worker : port.all_fixed_ips[0]]
  subnet_cidr           = local.subnet_cidr
  jupyter_password_hash = var.jupyter_password_hash
  tls_certificate_pem   = var.tls == null ? "" : file(pathexpand(var.tls.certificate_file))
  tls_private_key_pem   = var.tls == null ? "" : file(pathexpand(var.tls.key_file))
  tmp_volume_id         = var.tmp_volume_gb > 0 ? openstack_blockstorage_volume_v3.master_tmp[0].id : ""
}

locals {
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

  # Between cluster members only (remote group = the internal group itself). Spark may move a
  # busy port up by its retries: the driver and block manager range covers them.
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
    "nfs udp"                 = { protocol = "udp", min = var.ports.nfs, max = var.ports.nfs }
    "rpcbind tcp"             = { protocol = "tcp", min = var.ports.rpcbind, max = var.ports.rpcbind }
    "rpcbind udp"             = { protocol = "udp", min = var.ports.rpcbind, max = var.ports.rpcbind }
    "nfs-mountd tcp"          = { protocol = "tcp", min = var.ports.nfs_mountd, max = var.ports.nfs_mountd }
    "nfs-mountd udp"          = { protocol = "udp", min = var.ports.nfs_mountd, max = var.ports.nfs_mountd }
    "nfs-statd tcp"           = { protocol = "tcp", min = var.ports.nfs_statd, max = var.ports.nfs_statd }
    "nfs-statd udp"           = { protocol = "udp", min = var.ports.nfs_statd, max = var.ports.nfs_statd }
    "ssh tcp"                 = { protocol = "tcp", min = var.ports.ssh, max = var.ports.ssh }
  }
}

resource "openstack_networking_secgroup_v2" "external" {
  name        = local.names.secgroups.external
  description = "${local.names.prefix}: ssh, http and https from allowed_cidrs to the master"
  tags        = local.tags
}

resource "openstack_networking_secgroup_v2" "internal" {
  name        = local.names.secgroups.internal
  description = "${local.names.prefix}: Spark, NFS and ssh between cluster members only"
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

resource "openstack_blockstorage_volume_v3" "master_tmp" {
  count             = var.tmp_volume_gb > 0 ? 1 : 0
  name              = local.names.volume
  description       = "${local.names.prefix}: the master's shared tmp directory (HAIL_TMP_DIR)"
  size              = var.tmp_volume_gb
  volume_type       = var.tmp_volume_type
  availability_zone = var.availability_zone
  metadata          = module.cluster.metadata.master
}

locals {
  # With a tmp volume the master lists its disks: the image on a local root disk, and the volume
  # attached before the first boot, so cloud-init finds it (an attachment made after the server
  # is up could race cloud-init's mounts).
  master_block_devices = var.tmp_volume_gb > 0 ? [
    {
      uuid                  = data.openstack_images_image_v2.node.id
      source_type           = "image"
      destination_type      = "local"
      boot_index            = 0
      delete_on_termination = true
    },
    {
      uuid                  = openstack_blockstorage_volume_v3.master_tmp[0].id
      source_type           = "volume"
      destination_type      = "volume"
      boot_index            = -1
      delete_on_termination = false
    },
  ] : []
}

resource "openstack_compute_instance_v2" "master" {
  name              = local.names.master
  image_id          = data.openstack_images_image_v2.node.id
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
    }
  }
}

resource "openstack_compute_instance_v2" "worker" {
  count             = var.workers
  name              = local.names.workers[count.index]
  image_id          = data.openstack_images_image_v2.node.id
  flavor_id         = data.openstack_compute_flavor_v2.worker.id
  key_pair          = openstack_compute_keypair_v2.this.name
  availability_zone = var.availability_zone
  user_data         = module.cluster.worker_user_data[count.index]
  metadata          = module.cluster.metadata.worker

  network {
    port = openstack_networking_port_v2.worker[count.index].id
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
