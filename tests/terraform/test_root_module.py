"""Checks of terraform/spark that run without the OpenStack provider (it cannot be downloaded here).

- every argument, nested block and attribute main.tf/outputs.tf use appears on the provider's
  documentation page of that resource (the lists below were copied from the pages named in
  terraform/spark/README.md, terraform-provider-openstack v3 docs);
- the security groups never open anything to the world, and Spark/NFS only to the cluster;
- variables.tf parses the way the wrapper reads it (python-hcl2, hgi_spark.variables), and its
  validation blocks run for real: variables.tf alone is provider-free, so terraform plans it
  with the example deployment's rendered values, and with bad values that must be refused;
- deployments/spark/defaults.yml sets every variable the YAML owns; the nodes' user and paths
  come from the image definition, the same values the image build installs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from conftest import ROOT, example_tfvars, run_terraform, terraform_env

SPARK = ROOT / "terraform" / "spark"
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "dynamic", "__is_block__"}

# resource type -> (arguments, nested blocks -> their arguments, attributes readable besides arguments)
DOCUMENTED: dict[str, tuple[set[str], dict[str, set[str]], set[str]]] = {
    "openstack_compute_instance_v2": (
        {"region", "name", "image_id", "image_name", "flavor_id", "flavor_name", "user_data", "security_groups",
         "availability_zone_hints", "availability_zone", "network", "network_mode", "metadata", "config_drive",
         "admin_pass", "key_pair", "block_device", "scheduler_hints", "personality", "stop_before_destroy",
         "force_delete", "power_state", "tags", "vendor_options", "hypervisor_hostname"},
        {"network": {"uuid", "name", "port", "fixed_ip_v4", "access_network"},
         "block_device": {"uuid", "source_type", "volume_size", "guest_format", "boot_index", "destination_type",
                          "delete_on_termination", "volume_type", "device_type", "disk_bus", "multiattach"}},
        {"id", "access_ip_v4", "access_ip_v6", "all_metadata", "all_tags", "created", "updated"},
    ),
    "openstack_networking_port_v2": (
        {"region", "name", "description", "network_id", "admin_state_up", "mac_address", "tenant_id",
         "device_owner", "security_group_ids", "no_security_groups", "device_id", "fixed_ip", "no_fixed_ip",
         "allowed_address_pairs", "extra_dhcp_option", "port_security_enabled", "value_specs", "tags", "binding",
         "dns_name", "qos_policy_id"},
        {"fixed_ip": {"subnet_id", "ip_address"}},
        {"id", "all_fixed_ips", "all_security_group_ids", "all_tags", "dns_assignment"},
    ),
    "openstack_networking_secgroup_v2": (
        {"region", "name", "description", "tenant_id", "delete_default_rules", "stateful", "tags"},
        {},
        {"id", "all_tags"},
    ),
    "openstack_networking_secgroup_rule_v2": (
        {"region", "description", "direction", "ethertype", "protocol", "port_range_min", "port_range_max",
         "remote_ip_prefix", "remote_group_id", "security_group_id", "tenant_id"},
        {},
        {"id"},
    ),
    "openstack_networking_floatingip_v2": (
        {"region", "description", "pool", "port_id", "tenant_id", "address", "fixed_ip", "subnet_id", "subnet_ids",
         "value_specs", "tags", "dns_name", "dns_domain"},
        {},
        {"id", "all_tags"},
    ),
    "openstack_networking_floatingip_associate_v2": ({"region", "floating_ip", "port_id"}, {}, {"id"}),
    "openstack_compute_keypair_v2": (
        {"region", "name", "public_key", "user_id", "value_specs"},
        {},
        {"id", "fingerprint", "private_key"},
    ),
    "openstack_blockstorage_volume_v3": (
        {"region", "size", "enable_online_resize", "availability_zone", "consistency_group_id", "description",
         "metadata", "name", "source_replica", "snapshot_id", "source_vol_id", "image_id", "backup_id",
         "volume_type", "volume_retype_policy", "scheduler_hints"},
        {},
        {"id", "attachment"},
    ),
    "openstack_networking_network_v2": (
        {"region", "name", "description", "shared", "external", "tenant_id", "admin_state_up", "segments",
         "value_specs", "availability_zone_hints", "tags", "transparent_vlan", "port_security_enabled", "mtu",
         "dns_domain", "qos_policy_id"},
        {},
        {"id", "all_tags"},
    ),
    "openstack_networking_subnet_v2": (
        {"region", "network_id", "cidr", "prefix_length", "ip_version", "ipv6_address_mode", "ipv6_ra_mode", "name",
         "description", "tenant_id", "allocation_pool", "gateway_ip", "no_gateway", "enable_dhcp",
         "dns_nameservers", "dns_publish_fixed_ip", "service_types", "subnetpool_id", "value_specs", "tags"},
        {},
        {"id", "all_tags"},
    ),
    "openstack_networking_router_v2": (
        {"region", "name", "description", "admin_state_up", "distributed", "external_network_id",
         "external_qos_policy_id", "enable_snat", "external_fixed_ip", "external_subnet_ids", "tenant_id",
         "value_specs", "tags", "vendor_options", "availability_zone_hints", "flavor_id"},
        {},
        {"id", "all_tags"},
    ),
    "openstack_networking_router_interface_v2": (
        {"region", "router_id", "subnet_id", "port_id", "force_destroy"},
        {},
        {"id"},
    ),
    # Built into terraform (>= 1.4), not the provider: website/docs/language/resources/terraform-data.mdx.
    "terraform_data": ({"input", "triggers_replace"}, {}, {"id", "output"}),
}  # fmt: skip

DOCUMENTED_DATA: dict[str, tuple[set[str], set[str]]] = {
    "openstack_images_image_v2": (
        {"region", "most_recent", "name", "name_regex", "owner", "properties", "size_min", "size_max", "sort",
         "tag", "tags", "visibility", "hidden", "member_status"},
        {"id", "checksum", "created_at", "container_format", "disk_format", "file", "metadata", "min_disk_gb",
         "min_ram_mb", "protected", "schema", "size_bytes", "updated_at"},
    ),
    "openstack_compute_flavor_v2": (
        {"region", "flavor_id", "name", "min_ram", "ram", "min_disk", "disk", "vcpus", "description", "swap",
         "rx_tx_factor", "is_public"},
        {"id", "extra_specs"},
    ),
    "openstack_networking_network_v2": (
        {"region", "network_id", "name", "description", "status", "external", "matching_subnet_cidr", "tenant_id",
         "availability_zone_hints", "transparent_vlan", "tags", "mtu", "dns_domain"},
        {"id", "admin_state_up", "shared", "all_tags"},
    ),
    "openstack_networking_subnet_v2": (
        {"region", "name", "description", "dhcp_enabled", "network_id", "tenant_id", "ip_version", "gateway_ip",
         "cidr", "subnet_id", "ipv6_address_mode", "ipv6_ra_mode", "subnetpool_id", "dns_publish_fixed_ip", "tags"},
        {"id", "allocation_pools", "enable_dhcp", "dns_nameservers", "service_types", "host_routes", "all_tags"},
    ),
}  # fmt: skip

# The variables the wrapper sets; every other variable is a YAML key.
INJECTED = {"deployment_name", "deployment_owner", "image", "image_id", "jupyter_password_hash"}


def _blocks(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for tf_file in sorted(SPARK.glob("*.tf")):
        with tf_file.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle)
        for entry in parsed.get(kind, []):
            for rtype, named in entry.items():
                for name, body in named.items():
                    found.append((rtype.strip('"'), name.strip('"'), body))
    return found


def _nested(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Nested blocks of a resource body, dynamic ones included (their `content`)."""
    blocks: dict[str, list[dict[str, Any]]] = {}
    for key, value in body.items():
        if key == "dynamic":
            for dynamic in value:
                for label, spec in dynamic.items():
                    blocks.setdefault(label.strip('"'), []).extend(spec["content"])
        elif key in META_ARGUMENTS:
            continue  # lifecycle: terraform's own block, not the provider's
        elif isinstance(value, list) and value and isinstance(value[0], dict) and value[0].get("__is_block__"):
            blocks.setdefault(key, []).extend(value)
    return blocks


def test_every_resource_argument_is_documented() -> None:
    resources = _blocks("resource")
    assert len(resources) >= 15
    for rtype, name, body in resources:
        assert rtype in DOCUMENTED, f"{rtype}.{name}: no documentation page recorded for this resource type"
        arguments, nested, _ = DOCUMENTED[rtype]
        used = set(body) - META_ARGUMENTS
        assert used <= arguments, f"{rtype}.{name}: undocumented arguments {sorted(used - arguments)}"
        for block, contents in _nested(body).items():
            assert block in nested, f"{rtype}.{name}: undocumented block {block}"
            for content in contents:
                extra = set(content) - {"__is_block__"} - nested[block]
                assert not extra, f"{rtype}.{name}.{block}: undocumented arguments {sorted(extra)}"


def test_every_data_source_argument_is_documented() -> None:
    for rtype, name, body in _blocks("data"):
        assert rtype in DOCUMENTED_DATA, f"data {rtype}.{name}: no documentation page recorded"
        arguments, _ = DOCUMENTED_DATA[rtype]
        used = set(body) - META_ARGUMENTS
        assert used <= arguments, f"data {rtype}.{name}: undocumented arguments {sorted(used - arguments)}"


def test_every_attribute_read_is_documented() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SPARK.glob("*.tf")))
    reference = re.compile(r"(data\.)?(openstack_[a-z0-9_]+)\.([a-z0-9_]+)(?:\[[^\]]*\])?\.([a-z0-9_]+)")
    seen = 0
    for match in reference.finditer(text):
        is_data, rtype, _, attribute = match.groups()
        if is_data:
            arguments, attributes = DOCUMENTED_DATA[rtype]
        else:
            arguments, _nested, attributes = DOCUMENTED[rtype]
        assert attribute in arguments | attributes, f"{match.group(0)}: {attribute} is not on {rtype}'s page"
        seen += 1
    assert seen >= 20


def test_nothing_is_open_to_the_world() -> None:
    rules = {
        name: body for rtype, name, body in _blocks("resource") if rtype == "openstack_networking_secgroup_rule_v2"
    }
    assert set(rules) == {"external", "internal", "internal_icmp"}
    assert rules["external"]["remote_ip_prefix"] == "${each.value.cidr}"  # only allowed_cidrs
    for name in ("internal", "internal_icmp"):
        assert "remote_ip_prefix" not in rules[name]
        assert rules[name]["remote_group_id"] == "${openstack_networking_secgroup_v2.internal.id}"
    code = [line.split("#")[0] for line in (SPARK / "main.tf").read_text(encoding="utf-8").splitlines()]
    assert not [line for line in code if "0.0.0.0/0" in line or "::/0" in line]
    ports = {rtype + "." + name: body for rtype, name, body in _blocks("resource") if rtype.endswith("port_v2")}
    assert "external" not in ports["openstack_networking_port_v2.worker"]["security_group_ids"]


def test_internal_rules_are_the_cluster_modules_nfs4_and_spark_only(render_cluster) -> None:
    """main.tf makes one internal rule per entry of modules/cluster's internal_rules: NFSv4 is 2049/tcp
    alone (no udp, rpcbind 111, mountd or statd), and every rule is tcp between members."""
    rules = {n: body for rtype, n, body in _blocks("resource") if rtype == "openstack_networking_secgroup_rule_v2"}
    assert rules["internal"]["for_each"] == "${local.internal_rules}"
    main = (SPARK / "main.tf").read_text(encoding="utf-8")
    assert "internal_rules = module.cluster.internal_rules" in main
    for gone in ("rpcbind", "nfs_mountd", "nfs_statd", '"nfs udp"'):
        assert gone not in main, f"main.tf still opens {gone}"
    internal = render_cluster(1)["internal_rules"]
    assert set(internal) == {
        "spark-master tcp", "spark-master-ui tcp", "spark-worker-ui tcp", "spark-app-ui tcp",
        "spark-driver-blockmanager tcp", "spark-rpc-ephemeral tcp", "nfs tcp", "ssh tcp",
    }  # fmt: skip
    assert internal["nfs tcp"] == {"protocol": "tcp", "min": 2049, "max": 2049}
    assert {rule["protocol"] for rule in internal.values()} == {"tcp"}
    ports = example_tfvars()["ports"]
    assert not {"rpcbind", "nfs_mountd", "nfs_statd"} & set(ports)


def _resource(rtype: str, name: str) -> dict[str, Any]:
    return next(body for t, n, body in _blocks("resource") if (t, n) == (rtype, name))


def test_the_tmp_volume_grows_online() -> None:
    """Cinder extends an attached volume only with enable_online_resize (the provider's update fails
    on an "in-use" volume otherwise): a bigger tmp_volume_gb must not need a detach."""
    volume = _resource("openstack_blockstorage_volume_v3", "master_tmp")
    assert volume["enable_online_resize"] is True
    assert volume["size"] == "${var.tmp_volume_gb}"
    assert "volume_availability_zone" in volume["availability_zone"]


def test_nodes_are_replaced_not_rebuilt_when_the_image_changes() -> None:
    """image_id is not ForceNew on openstack_compute_instance_v2 (a change calls Nova's rebuild):
    the image is an input (var.image_id), held by terraform_data.image, whose change replaces every
    server through replace_triggered_by; nothing ignores a change of image_id."""
    with (SPARK / "variables.tf").open(encoding="utf-8") as handle:
        declared = {name.strip('"') for entry in hcl2.load(handle)["variable"] for name in entry}
    assert "image_id" in declared
    image = _resource("terraform_data", "image")
    assert image["triggers_replace"] == "${local.image_id}"
    for name in ("master", "worker"):
        server = _resource("openstack_compute_instance_v2", name)
        lifecycle = server["lifecycle"][0]
        assert lifecycle["replace_triggered_by"] == ["${terraform_data.image}"], name
        assert "ignore_changes" not in lifecycle, name
        assert server["image_id"] == "${local.instance_image_id}"
    data = next(body for t, n, body in _blocks("data") if t == "openstack_images_image_v2")
    assert data["count"] == '${var.image_id == "" ? 1 : 0}'
    main = (SPARK / "main.tf").read_text(encoding="utf-8")
    assert 'image_id = var.image_id != "" ? var.image_id : data.openstack_images_image_v2.node[0].id' in main
    with (SPARK / "outputs.tf").open(encoding="utf-8") as handle:
        outputs = {name.strip('"') for entry in hcl2.load(handle)["output"] for name in entry}
    assert "node_images" in outputs


def test_replace_triggered_by_a_terraform_data_replaces_on_change_only(tmp_path: Path) -> None:
    """The mechanism main.tf relies on, run by terraform 1.x offline with main.tf's own terraform_data
    block and a stand-in server: adding the image holder to a running cluster replaces nothing, the
    same ID replaces nothing, a new ID replaces the server."""
    main = (SPARK / "main.tf").read_text(encoding="utf-8")
    start = main.index('resource "terraform_data" "image" {')
    block = main[start : main.index("\n}\n", start) + 3].replace("local.image_id", "var.image_id")
    server = 'resource "terraform_data" "server" {\n  input = "server"\n%s}\n'
    lifecycle = "  lifecycle {\n    replace_triggered_by = [terraform_data.image]\n  }\n"
    work = tmp_path / "image"
    work.mkdir()
    env = terraform_env(work)

    def plan(image_id: str) -> str:
        out = run_terraform(["plan", "-input=false", "-no-color", f"-var=image_id={image_id}"], work, env).stdout
        return " ".join(out.split())

    (work / "main.tf").write_text('variable "image_id" { type = string }\n' + server % "")
    run_terraform(["init", "-input=false", "-no-color"], work, env)
    run_terraform(["apply", "-input=false", "-no-color", "-auto-approve", "-var=image_id=A"], work, env)
    (work / "main.tf").write_text('variable "image_id" { type = string }\n' + block + server % lifecycle)
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in plan("A")  # the holder only: no server replaced
    run_terraform(["apply", "-input=false", "-no-color", "-auto-approve", "-var=image_id=A"], work, env)
    assert "No changes." in plan("A")
    changed = plan("B")
    assert "terraform_data.server will be replaced due to changes in replace_triggered_by" in changed
    assert "Plan: 2 to add, 0 to change, 2 to destroy." in changed


def _block_devices(tmp_path: Path, boot_from_volume: dict[str, Any] | None, tmp_volume_gb: int) -> dict[str, Any]:
    """Evaluate main.tf's own `locals` block of the disks with terraform, the volume ID stubbed."""
    main = (SPARK / "main.tf").read_text(encoding="utf-8")
    start = main.index("locals {\n  # Disks of a node")
    block = main[start : main.index("\n}\n", start) + 3]
    block = block.replace("openstack_blockstorage_volume_v3.master_tmp[0].id", '"tmp-volume-id"')
    variables = (SPARK / "variables.tf").read_text(encoding="utf-8")
    start = variables.index('variable "boot_from_volume" {')
    declaration = variables[start : variables.index("\n}\n", start) + 3]
    work = tmp_path / "disks"
    work.mkdir()
    (work / "main.tf").write_text(
        declaration + 'variable "tmp_volume_gb" {}\nlocals { image_id = "image-id" }\n' + block
        + "".join(f'output "{name}" {{ value = local.{name} }}\n'
                  for name in ("master_block_devices", "worker_block_devices", "instance_image_id"))
    )  # fmt: skip
    (work / "terraform.tfvars.json").write_text(
        json.dumps({"boot_from_volume": boot_from_volume, "tmp_volume_gb": tmp_volume_gb})
    )
    env = terraform_env(work)
    run_terraform(["init", "-input=false", "-no-color"], work, env)
    run_terraform(["apply", "-input=false", "-no-color", "-auto-approve"], work, env)
    outputs = json.loads(run_terraform(["output", "-json"], work, env).stdout)
    return {name: output.get("value") for name, output in outputs.items()}


TMP_DISK = {
    "uuid": "tmp-volume-id", "source_type": "volume", "destination_type": "volume", "boot_index": -1,
    "delete_on_termination": False, "volume_size": None, "volume_type": None,
}  # fmt: skip


def _disk(source: str, uuid: str, destination: str, boot: int, delete: bool, size=None, vtype=None) -> dict:
    return {
        "uuid": uuid, "source_type": source, "destination_type": destination, "boot_index": boot,
        "delete_on_termination": delete, "volume_size": size, "volume_type": vtype,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("boot_from_volume", "tmp_volume_gb", "master", "worker", "image_id"),
    [
        # As before: no block device, the image booted locally by image_id.
        (None, 0, [], [], "image-id"),
        (None, 100, [_disk("image", "image-id", "local", 0, True), TMP_DISK],
         [], "image-id"),
        # From a volume made from the image; the server's image_id is left unset.
        ({"size_gb": 40}, 0, [_disk("image", "image-id", "volume", 0, True, 40)],
         [_disk("image", "image-id", "volume", 0, True, 40)], None),
        ({"size_gb": 40, "volume_type": "ssd"}, 100,
         [_disk("image", "image-id", "volume", 0, True, 40, "ssd"), TMP_DISK],
         [_disk("image", "image-id", "volume", 0, True, 40, "ssd")], None),
    ],
)  # fmt: skip
def test_block_devices_for_every_disk_layout(tmp_path, boot_from_volume, tmp_volume_gb, master, worker, image_id):
    disks = _block_devices(tmp_path, boot_from_volume, tmp_volume_gb)
    assert disks["master_block_devices"] == master
    assert disks["worker_block_devices"] == worker
    assert disks.get("instance_image_id") == image_id


def test_boot_from_volume_and_zones_reach_the_servers() -> None:
    """boot_from_volume makes the root disk a volume from the image (then image_id is left unset:
    the provider records "Attempt to boot from volume - no image supplied" as image_id);
    volume_availability_zone defaults to availability_zone."""
    main = " ".join((SPARK / "main.tf").read_text(encoding="utf-8").split())
    root_volume = 'destination_type = "volume" boot_index = 0 delete_on_termination = true'
    assert f"{root_volume} volume_size = var.boot_from_volume.size_gb" in main
    assert "instance_image_id = var.boot_from_volume == null ? local.image_id : null" in main
    assert "worker_block_devices = var.boot_from_volume == null ? [] : [local.root_block_device]" in main
    for name in ("master", "worker"):
        server = _resource("openstack_compute_instance_v2", name)
        assert server["availability_zone"] == "${var.availability_zone}"
        assert "dynamic" in server


def test_variables_parse_as_the_wrapper_reads_them() -> None:
    from hgi_spark.core import variables
    from hgi_spark.core.config import WRAPPER_KEYS

    declared = variables.read_variables(SPARK)
    for variable in declared.values():
        assert variable.description, f"variable {variable.name} has no description"
        variables.python_type(variable.type_expr, where=str(SPARK / "variables.tf"))
    with (ROOT / "deployments" / "defaults.yml").open(encoding="utf-8") as handle:
        base = yaml.safe_load(handle)
    with (ROOT / "deployments" / "spark" / "defaults.yml").open(encoding="utf-8") as handle:
        spark = yaml.safe_load(handle)
    yaml_keys = (set(base) | set(spark)) - set(WRAPPER_KEYS)  # the wrapper's keys are never variables
    assert yaml_keys == set(declared) - INJECTED, (
        f"YAML without variable: {sorted(yaml_keys - set(declared))}; "
        f"variable without YAML default: {sorted(set(declared) - INJECTED - yaml_keys)}"
    )
    assert not [v.name for v in declared.values() if v.name in yaml_keys and not v.required], (
        "a value has one home: YAML keys take their defaults from deployments/*.yml, not variables.tf"
    )


def test_the_nodes_user_and_paths_come_from_the_image_definition() -> None:
    """One home: the image object terraform receives carries what install-node was given."""
    from hgi_spark.core import config
    from hgi_spark.images import provisioning

    image = config.load_image("hail-base/1.0.0")
    sent = example_tfvars()["image"]
    env = provisioning.install_env(image, commit="test")
    assert sent["app_user"] == {"name": env["APP_USER"], "uid": 2000, "gid": 2000, "home": env["APP_HOME"]}
    assert (sent["layout"]["hail_home"], sent["layout"]["etc_dir"]) == (env["HAIL_HOME"], env["HGI_ETC_DIR"])
    assert sent["layout"]["node_scripts_dir"] == env["NODE_SCRIPTS_DIR"]
    for kind in ("spark", "spark-vm", "spark-local"):
        for layer in (ROOT / "deployments").glob(f"{kind}/**/*.yml"):
            data = yaml.safe_load(layer.read_text()) or {}
            assert not {"app_user", "node_paths"} & set(data), f"{layer} repeats a fact of the image"


def test_a_deployment_key_that_is_a_fact_of_the_image_is_refused_with_where_it_lives(tmp_path: Path) -> None:
    from hgi_spark.core import config
    from hgi_spark.core.errors import ConfigError
    from hgi_spark.core.layout import Repository

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "deployments", repo / "deployments")
    shutil.copytree(ROOT / "images", repo / "images")
    shutil.copytree(ROOT / "terraform", repo / "terraform", ignore=shutil.ignore_patterns(".terraform"))
    mine = repo / "deployments" / "spark" / "me" / "deployment.yml"
    mine.parent.mkdir()
    mine.write_text((ROOT / "deployments/spark/example/deployment.yml").read_text() + "app_user: hgi\n")
    with pytest.raises(ConfigError) as raised:
        config.load_deployment("spark/me", Repository(repo))
    assert "'app_user' is no longer a deployment key: it is a fact of the image" in str(raised.value)
    assert "deployment.yml:" in str(raised.value)


# --- variables.tf's validation blocks, run by terraform ------------------------------------------


@pytest.fixture
def plan_variables(tmp_path: Path):
    """terraform plan of variables.tf alone (provider-free) with the example's values and overrides."""
    work = tmp_path / "variables-only"
    work.mkdir()
    shutil.copy(SPARK / "variables.tf", work / "variables.tf")
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBt4LJDp4Ts7h3jZ3r7yFZ0vJ1Ot6t0ZqRQx0vO5Qk6n test\n")
    env = terraform_env(work)
    run_terraform(["init", "-input=false", "-no-color"], work, env)

    def plan(**overrides: Any) -> subprocess.CompletedProcess[str]:
        values = example_tfvars()
        values["ssh_public_key_file"] = str(key)
        values.update(overrides)
        (work / "terraform.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
        return subprocess.run(
            ["terraform", "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false"],
            cwd=work, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    return plan


def test_the_example_passes_every_validation(plan_variables) -> None:
    result = plan_variables()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "override",
    [
        {"workers": 999},
        {"boot_from_volume": {"size_gb": 40}},
        {"boot_from_volume": {"size_gb": 40, "volume_type": "ssd"}, "volume_availability_zone": "nova-volumes"},
        {"image_id": "0b1a2c3d-4e5f-6789-abcd-ef0123456789"},
    ],
)
def test_new_options_are_accepted(plan_variables, override: dict[str, Any]) -> None:
    result = plan_variables(**override)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"allowed_cidrs": ["0.0.0.0/0"]}, "must not hold 0.0.0.0/0"),
        ({"allowed_cidrs": []}, "at least one CIDR"),
        ({"allowed_cidrs": ["192.0.2.0/33"]}, "at least one CIDR"),
        ({"workers": 2.5}, "workers must be a whole number"),
        ({"network": {"create": False, "name": None}}, "network.name must name an existing network"),
        ({"network": {"create": True, "cidr": "not-a-cidr"}}, "network.cidr must be an IPv4 CIDR"),
        ({"ssh_public_key_file": "/nonexistent/key.pub"}, "must be an existing file"),
        ({"tls": {"certificate_file": "/nonexistent.pem", "key_file": "/nonexistent.key"}}, "must be existing files"),
        ({"tmp_volume_gb": -1}, "tmp_volume_gb must be a whole number"),
        ({"workers": 1000}, "workers must be a whole number from 0 to 999"),
        ({"boot_from_volume": {"size_gb": 0}}, "boot_from_volume must be null"),
        ({"boot_from_volume": {"size_gb": 2.5, "volume_type": "ssd"}}, "boot_from_volume must be null"),
        ({"image_id": "hail-base-1.0.0"}, "image_id must be empty"),
    ],
)
def test_bad_values_are_refused(plan_variables, override: dict[str, Any], message: str) -> None:
    result = plan_variables(**override)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split()), result.stdout + result.stderr


def test_a_bad_image_user_or_a_relative_layout_is_refused(plan_variables) -> None:
    """terraform checks the image's facts too, for whoever runs it without the wrapper."""
    image = example_tfvars()["image"]
    for bad in (
        image | {"layout": image["layout"] | {"state_dir": "var/lib/hgi-spark"}},
        image | {"app_user": image["app_user"] | {"name": "Root User"}},
    ):
        result = plan_variables(image=bad)
        assert result.returncode != 0
        assert "image.app_user.name must be a Linux user name" in " ".join(result.stderr.split())


def test_ports_must_differ(plan_variables) -> None:
    ports = example_tfvars()["ports"] | {"spark_blockmanager": 40000}
    result = plan_variables(ports=ports)
    assert result.returncode != 0
    assert "Ports must all differ" in " ".join(result.stderr.split())


def test_private_key_instead_of_public_is_refused(plan_variables, tmp_path: Path) -> None:
    private = tmp_path / "id_ed25519"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    result = plan_variables(ssh_public_key_file=str(private))
    assert result.returncode != 0
    assert "not a private key" in " ".join(result.stderr.split())


def test_terraform_fmt_is_clean() -> None:
    modules = ("naming", "spark-sizing", "cloud-init", "spark-node")
    folders = [SPARK] + [ROOT / "terraform" / "modules" / m for m in modules]
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", *map(str, folders)],
        capture_output=True, text=True, timeout=60, env=terraform_env(Path(__file__).parent),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
