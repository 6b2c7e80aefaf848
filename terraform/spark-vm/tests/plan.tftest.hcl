# Plans of the VM cluster (no provisioner runs in a plan): nodes, addresses, names of network
# devices, the user-data of the cluster module, forwarded ports, the tmp volume, every validation.

variables {
  deployment_name  = "spark-vm"
  deployment_owner = "t"
  deployment_dir   = "/srv/repo/deployments/spark-vm/t"
  image = {
    name     = "hail-base", version = "1.0.0", glance_name = "hail-base-1.0.0", software = { hail = "0.2.139" }
    app_user = { name = "hgi", uid = 2000, gid = 2000, home = "/home/hgi" }
    layout = {
      hail_home        = "/opt/hail", hail_venv = "/opt/hail/venv", hail_tmp_dir = "/opt/hail/tmp",
      node_scripts_dir = "/opt/hgi-spark/node", etc_dir = "/etc/hgi-spark", state_dir = "/var/lib/hgi-spark"
    }
  }
  image_path            = "/cache/hgi-spark/images/hail-base-1.0.0-0123456789ab.qcow2"
  accelerator           = "tcg"
  jupyter_password_hash = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA"
  ports = {
    ssh                = 22, http = 80, https = 443, spark_master = 7077, spark_master_ui = 8080, spark_worker_ui = 8081,
    spark_app_ui_first = 4040, spark_app_ui_last = 4050, spark_driver = 40000, spark_blockmanager = 40001,
    jupyter            = 8889, nfs = 2049
  }
  internal_ephemeral_ports = { first = 32768, last = 60999 }
  workers                  = 2
  master_flavor            = { vcpus = 2, memory_mb = 4096 }
  worker_flavor            = { vcpus = 2, memory_mb = 4096 }
  subnet_cidr              = "10.77.0.0/24"
  master_host_number       = 10
  forwarded_ports          = { ssh = 2222, http = 8880, https = 8443 }
  ssh_public_key_file      = "tests/fixtures/id_ed25519.pub"
  ssh_user                 = "debian"
  root_disk_gb             = 0
  tmp_volume_gb            = 0
  stop_grace_s             = 15
  sizing                   = {}
  spark                    = { worker_cleanup_interval_s = 1800, worker_appdata_ttl_s = 86400 }
  ready_timeout_s          = 1200
  tls                      = null
  plain_http               = true
}

run "one_master_one_vm_per_worker_static_addresses" {
  command = plan

  assert {
    condition     = length(terraform_data.worker) == 2 && contains(keys(terraform_data.worker), "1") && contains(keys(terraform_data.worker), "2")
    error_message = "workers = 2 must plan workers \"1\" and \"2\""
  }

  assert {
    condition     = terraform_data.master.input.env.VM_ADDRESS == "10.77.0.10/24" && terraform_data.worker["1"].input.env.VM_ADDRESS == "10.77.0.11/24" && terraform_data.worker["2"].input.env.VM_ADDRESS == "10.77.0.12/24"
    error_message = "the master is host 10 of the subnet, worker N host 10 + N"
  }

  assert {
    condition     = output.master_private_ip == "10.77.0.10" && output.worker_private_ips == ["10.77.0.11", "10.77.0.12"]
    error_message = "the addresses are outputs, as on OpenStack"
  }

  assert {
    condition     = terraform_data.worker["2"].input.env.VM_DIR == "/srv/repo/deployments/spark-vm/t/runtime/worker-2" && output.console_logs["spark-vm-t-worker-002"] == "/srv/repo/deployments/spark-vm/t/runtime/worker-2/console.log"
    error_message = "each VM lives in runtime/<key>, its console log in it, keyed by server name"
  }

  assert {
    condition     = terraform_data.master.input.env.VM_IMAGE == var.image_path && terraform_data.master.input.env.VM_ACCEL == "tcg"
    error_message = "every VM boots the wrapper's image path with its accelerator"
  }
}

run "flavors_become_vm_sizes_and_spark_sizes" {
  command = plan

  variables {
    master_flavor = { vcpus = 2, memory_mb = 6144 }
    worker_flavor = { vcpus = 4, memory_mb = 8192 }
  }

  assert {
    condition     = terraform_data.master.input.env.VM_MEMORY_MB == "6144" && terraform_data.master.input.env.VM_VCPUS == "2" && terraform_data.worker["1"].input.env.VM_MEMORY_MB == "8192" && terraform_data.worker["1"].input.env.VM_VCPUS == "4"
    error_message = "each VM gets its flavor's memory and vCPUs"
  }

  assert {
    # 8192 - (1024 + 409 + 1024) = 5735 MiB for the Spark worker, 4 cores.
    condition     = output.spark_sizes.worker_memory_mb == 5735 && output.spark_sizes.worker_cores == 4
    error_message = "Spark is sized from the worker flavor by the cluster module, as on OpenStack"
  }
}

run "user_data_is_the_cluster_modules" {
  command = plan

  assert {
    condition     = terraform_data.master.triggers_replace.user_data == sha256(module.cluster.master_user_data) && terraform_data.worker["2"].triggers_replace.user_data == sha256(module.cluster.worker_user_data[1])
    error_message = "each VM is re-created when its user-data (from ../spark/modules/cluster) changes"
  }

  assert {
    condition     = strcontains(module.cluster.worker_user_data[1], "SPARK_MASTER_HOST=10.77.0.10") && strcontains(module.cluster.worker_user_data[1], "NODE_BIND_ADDRESS=10.77.0.12")
    error_message = "the user-data names the static addresses"
  }

  assert {
    condition     = output.ready_lines["spark-vm-t-master"] == "hgi-spark-node-ready role=master name=spark-vm-t-master"
    error_message = "ready lines come from the cluster module, keyed by server name"
  }

  assert {
    condition     = !strcontains(jsonencode(terraform_data.master.input), "argon2")
    error_message = "the Jupyter password hash is in no input (only the create provisioner gets the user-data)"
  }
}

run "network_device_names_fit_and_macs_differ" {
  command = plan

  variables {
    workers = 16
  }

  assert {
    condition     = alltrue([for w in values(terraform_data.worker) : length(w.input.env.VM_TAP) <= 15]) && length(terraform_data.master.input.env.VM_TAP) <= 15
    error_message = "tap names must fit IFNAMSIZ (15 characters)"
  }

  assert {
    condition     = length(distinct(concat([terraform_data.master.input.env.VM_MAC, terraform_data.master.input.env.VM_PUBLIC_MAC], [for w in values(terraform_data.worker) : w.input.env.VM_MAC]))) == 18
    error_message = "every NIC has its own MAC"
  }

  assert {
    condition     = length(distinct(concat([terraform_data.master.input.env.VM_TAP], [for w in values(terraform_data.worker) : w.input.env.VM_TAP]))) == 17
    error_message = "every VM has its own tap"
  }

  assert {
    condition     = terraform_data.network.input.env.VM_BRIDGE_ADDRESS == "10.77.0.1/24" && startswith(terraform_data.network.input.env.VM_NETNS, "hgi-spark-vm-t-")
    error_message = "the bridge is host 1 of the subnet in the deployment's own namespace"
  }

  assert {
    condition     = contains(split(" ", terraform_data.network.input.env.VM_MEMBER_RULES), "tcp:2049-2049") && contains(split(" ", terraform_data.network.input.env.VM_MEMBER_RULES), "tcp:22-22")
    error_message = "the VMs' filter opens what the internal security group opens: NFSv4 and ssh among them"
  }

  assert {
    condition     = length([for rule in split(" ", terraform_data.network.input.env.VM_MEMBER_RULES) : rule if contains(["tcp:111-111", "tcp:20048-20048", "tcp:32765-32765"], rule)]) == 0
    error_message = "nothing for rpcbind, mountd or statd: NFSv4 only"
  }
}

run "two_deployments_get_different_namespaces_and_taps" {
  command = plan

  variables {
    deployment_owner = "u"
  }

  assert {
    condition     = terraform_data.network.input.env.VM_NETNS != "hgi-spark-vm-t-${substr(sha1("spark-vm/t"), 0, 8)}" && terraform_data.master.input.env.VM_TAP != "hs${substr(sha1("spark-vm/t"), 0, 8)}m"
    error_message = "another owner's deployment has another namespace and other taps"
  }
}

run "only_the_master_is_reachable_from_the_host" {
  command = plan

  assert {
    condition     = terraform_data.master.input.env.VM_HOSTFWD == "tcp:127.0.0.1:2222-:22,tcp:127.0.0.1:8880-:80,tcp:127.0.0.1:8443-:443"
    error_message = "the master forwards 127.0.0.1's forwarded_ports to its ssh, http and https"
  }

  assert {
    condition     = !contains(keys(terraform_data.worker["1"].input.env), "VM_HOSTFWD") && !contains(keys(terraform_data.worker["1"].input.env), "VM_PUBLIC_MAC")
    error_message = "workers have no user-mode NIC"
  }

  assert {
    condition     = output.ssh == { alias = "spark-vm-t-master", host = "127.0.0.1", user = "debian", port = 2222, identity_file = "tests/fixtures/id_ed25519", server = "spark-vm-t-master" }
    error_message = "the ssh output has the shape of terraform/spark's, on the forwarded port"
  }

  assert {
    condition     = output.jupyter_url == "http://127.0.0.1:8880/jupyter/" && output.spark_ui_url == "http://127.0.0.1:8880/spark/"
    error_message = "the URLs use the forwarded http port"
  }
}

run "tmp_volume_is_a_disk_with_the_volume_serial" {
  command = plan

  variables {
    tmp_volume_gb = 4
  }

  assert {
    condition     = length(terraform_data.tmp_volume) == 1 && terraform_data.tmp_volume[0].input.env.VM_DATA_DISK == "/srv/repo/deployments/spark-vm/t/runtime/volumes/master-tmp.qcow2"
    error_message = "a tmp volume is a qcow2 in runtime/volumes/, outside the master's folder"
  }

  assert {
    condition     = length(terraform_data.master.input.env.VM_DATA_DISK_SERIAL) == 20 && startswith(output.tmp_volume.id, terraform_data.master.input.env.VM_DATA_DISK_SERIAL)
    error_message = "the disk's serial is the first 20 characters of the made-up volume ID"
  }

  assert {
    condition     = yamldecode(module.cluster.master_user_data).mounts[0][0] == "/dev/disk/by-id/virtio-${terraform_data.master.input.env.VM_DATA_DISK_SERIAL}"
    error_message = "the cluster module's device path is the disk's by-id path"
  }
}

run "no_workers_no_volume" {
  command = plan

  variables {
    workers = 0
  }

  assert {
    condition     = length(terraform_data.worker) == 0 && length(terraform_data.tmp_volume) == 0 && terraform_data.master.input.env.VM_DATA_DISK == ""
    error_message = "workers = 0 plans the master only; tmp_volume_gb = 0 no disk"
  }
}

run "the_stop_grace_never_replaces_a_vm" {
  command = plan

  assert {
    condition     = !contains(keys(terraform_data.master.triggers_replace.vm), "VM_STOP_GRACE_S") && terraform_data.master.input.env.VM_STOP_GRACE_S == "15"
    error_message = "stop_grace_s reaches vm-node's destroy through the input, and is no trigger"
  }
}

run "rejects_a_subnet_without_room" {
  command = plan
  variables {
    subnet_cidr        = "10.77.0.0/27"
    master_host_number = 25
    workers            = 8
  }
  expect_failures = [terraform_data.network]
}

run "rejects_an_unknown_accelerator" {
  command = plan
  variables {
    accelerator = "hvf"
  }
  expect_failures = [var.accelerator]
}

run "rejects_an_image_that_is_not_an_absolute_qcow2" {
  command = plan
  variables {
    image_path = "images/hail-base.raw"
  }
  expect_failures = [var.image_path]
}

run "rejects_too_many_workers_for_one_machine" {
  command = plan
  variables {
    workers = 17
  }
  expect_failures = [var.workers]
}

run "rejects_a_small_master" {
  command = plan
  variables {
    master_flavor = { vcpus = 2, memory_mb = 1024 }
  }
  expect_failures = [var.master_flavor]
}

run "rejects_a_worker_without_vcpus" {
  command = plan
  variables {
    worker_flavor = { vcpus = 0, memory_mb = 4096 }
  }
  expect_failures = [var.worker_flavor]
}

run "rejects_an_ipv6_subnet" {
  command = plan
  variables {
    subnet_cidr = "fd00::/64"
  }
  expect_failures = [var.subnet_cidr]
}

run "rejects_the_bridges_host_number" {
  command = plan
  variables {
    master_host_number = 1
  }
  expect_failures = [var.master_host_number]
}

run "rejects_privileged_forwarded_ports" {
  command = plan
  variables {
    forwarded_ports = { ssh = 22, http = 8880, https = 8443 }
  }
  expect_failures = [var.forwarded_ports]
}

run "rejects_equal_forwarded_ports" {
  command = plan
  variables {
    forwarded_ports = { ssh = 2222, http = 8880, https = 8880 }
  }
  expect_failures = [var.forwarded_ports]
}

run "rejects_a_missing_public_key" {
  command = plan
  variables {
    ssh_public_key_file = "tests/fixtures/missing.pub"
  }
  expect_failures = [var.ssh_public_key_file]
}

run "rejects_a_relative_deployment_dir" {
  command = plan
  variables {
    deployment_dir = "deployments/spark-vm/t"
  }
  expect_failures = [var.deployment_dir]
}

run "rejects_a_bad_port" {
  command = plan
  variables {
    ports = {
      ssh                = 22, http = 80, https = 443, spark_master = 70770, spark_master_ui = 8080, spark_worker_ui = 8081,
      spark_app_ui_first = 4040, spark_app_ui_last = 4050, spark_driver = 40000, spark_blockmanager = 40001,
      jupyter            = 8889, nfs = 2049
    }
  }
  expect_failures = [var.ports]
}

run "rejects_a_fractional_tmp_volume" {
  command = plan
  variables {
    tmp_volume_gb = 1.5
  }
  expect_failures = [var.tmp_volume_gb]
}

run "rejects_a_negative_root_disk" {
  command = plan
  variables {
    root_disk_gb = -1
  }
  expect_failures = [var.root_disk_gb]
}

run "rejects_a_long_stop_grace" {
  command = plan
  variables {
    stop_grace_s = 601
  }
  expect_failures = [var.stop_grace_s]
}

run "rejects_a_short_ready_timeout" {
  command = plan
  variables {
    ready_timeout_s = 10
  }
  expect_failures = [var.ready_timeout_s]
}

run "rejects_a_bad_image_version" {
  command = plan
  variables {
    image = {
      name     = "hail-base", version = "1.0", glance_name = "hail-base-1.0", software = {}
      app_user = { name = "hgi", uid = 2000, gid = 2000, home = "/home/hgi" }
      layout = {
        hail_home        = "/opt/hail", hail_venv = "/opt/hail/venv", hail_tmp_dir = "/opt/hail/tmp",
        node_scripts_dir = "/opt/hgi-spark/node", etc_dir = "/etc/hgi-spark", state_dir = "/var/lib/hgi-spark"
      }
    }
  }
  expect_failures = [var.image]
}

run "rejects_a_bad_deployment_name" {
  command = plan
  variables {
    deployment_name = "spark vm"
  }
  expect_failures = [var.deployment_name]
}

run "rejects_a_bad_owner" {
  command = plan
  variables {
    deployment_owner = "Bad Owner"
  }
  expect_failures = [var.deployment_owner]
}

run "rejects_a_bad_app_user" {
  command = plan
  variables {
    image = {
      name     = "hail-base", version = "1.0.0", glance_name = "hail-base-1.0.0", software = { hail = "0.2.139" }
      app_user = { name = "Hgi", uid = 2000, gid = 2000, home = "/home/hgi" }
      layout = {
        hail_home        = "/opt/hail", hail_venv = "/opt/hail/venv", hail_tmp_dir = "/opt/hail/tmp",
        node_scripts_dir = "/opt/hgi-spark/node", etc_dir = "/etc/hgi-spark", state_dir = "/var/lib/hgi-spark"
      }
    }
  }
  expect_failures = [var.image]
}

run "rejects_an_inverted_ephemeral_range" {
  command = plan
  variables {
    internal_ephemeral_ports = { first = 60999, last = 32768 }
  }
  expect_failures = [var.internal_ephemeral_ports]
}

run "rejects_a_short_spark_cleanup" {
  command = plan
  variables {
    spark = { worker_cleanup_interval_s = 10, worker_appdata_ttl_s = 86400 }
  }
  expect_failures = [var.spark]
}

run "rejects_a_relative_image_layout" {
  command = plan
  variables {
    image = {
      name     = "hail-base", version = "1.0.0", glance_name = "hail-base-1.0.0", software = { hail = "0.2.139" }
      app_user = { name = "hgi", uid = 2000, gid = 2000, home = "/home/hgi" }
      layout = {
        hail_home        = "opt/hail", hail_venv = "/opt/hail/venv", hail_tmp_dir = "/opt/hail/tmp",
        node_scripts_dir = "/opt/hgi-spark/node", etc_dir = "/etc/hgi-spark", state_dir = "/var/lib/hgi-spark"
      }
    }
  }
  expect_failures = [var.image]
}

run "rejects_a_bad_ssh_user" {
  command = plan
  variables {
    ssh_user = "Debian"
  }
  expect_failures = [var.ssh_user]
}

run "https_through_the_forwarded_port_with_a_certificate" {
  command = plan
  variables {
    # Placeholder PEM blocks (no key at all): a plan only reads them into the master's user-data.
    tls        = { certificate_file = "tests/fixtures/placeholder-cert.pem", key_file = "tests/fixtures/placeholder-key.pem" }
    plain_http = false
  }

  assert {
    condition     = output.jupyter_url == "https://127.0.0.1:8443/jupyter/" && output.spark_ui_url == "https://127.0.0.1:8443/spark/"
    error_message = "with a certificate the URLs are https on the forwarded https port"
  }
}

run "plain_http_only_on_purpose" {
  command = plan
  variables {
    tls        = null
    plain_http = false
  }
  expect_failures = [output.jupyter_url]
}
