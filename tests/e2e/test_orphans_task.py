"""`bash invoke.sh deployment spark/OWNER orphans` end to end against real Keystone, Nova API and
Neutron server on loopback (the openstack_compute_cloud fixture).

The orphans are made as a killed apply leaves them: resources created through the API with the
deployment's tags, absent from its state. They are listed, the unadoptable one deleted through a
reviewed deletion plan (for real, in Neutron), a stale plan refused, and the rest adopted as import
blocks in the deployment's working directory. The plan that would import them needs the OpenStack
provider, which cannot be downloaded here: the import file is checked with the real ``terraform
fmt`` and its addresses against terraform/spark/main.tf instead.
"""

from __future__ import annotations

import subprocess

import hcl2
import pytest
from test_preflight_task import ROOT, invoke, write_deployment
from test_preflight_task import repo as repo  # the fixture: a copy of the repository with terraform/spark

from hgi_spark.clusters.openstack import preflight

pytestmark = pytest.mark.slow
OWNER = "e2e"  # the deployment of test_preflight_task's repository: spark/e2e
PREFIX = f"spark-{OWNER}"


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_orphans_are_listed_deleted_through_a_reviewed_plan_or_adopted(repo, openstack_compute_cloud) -> None:
    env = openstack_compute_cloud.env("alice")
    alice = openstack_compute_cloud.connect("alice")
    tags = preflight.deployment_tags(f"spark/{OWNER}")
    write_deployment(repo, workers=3)
    network = alice.network.create_network(name=f"{PREFIX}-network")  # network.create is false: delete only
    group = alice.network.create_security_group(name=f"{PREFIX}-internal")
    port = alice.network.create_port(
        name=f"{PREFIX}-worker-002", network_id=alice.network.find_network("hgi-net", ignore_missing=False).id
    )
    made = [network, group, port]
    try:
        for resource in made:
            alice.network.set_tags(resource, tags)

        listed = invoke(repo, env, "orphans")
        assert listed.returncode == 0, listed.stderr
        assert f"spark/{OWNER}: 3 orphans" in listed.stdout
        assert (
            f"security group {PREFIX}-internal ({group.id}): adopt as openstack_networking_secgroup_v2.internal"
            in listed.stdout
        )
        assert f"port {PREFIX}-worker-002 ({port.id}): adopt as openstack_networking_port_v2.worker[1]" in listed.stdout
        assert (
            f"network {PREFIX}-network ({network.id}): delete only: the deployment uses an existing network"
            in listed.stdout
        )

        refused = invoke(repo, env, "orphans", "--adopt")
        assert refused.returncode == 6 and "1 orphan cannot be adopted: network" in error_line(refused)
        assert "orphans --plan-delete --keep-adoptable" in error_line(refused)
        refused = invoke(repo, env, "orphans", "--delete")
        assert refused.returncode == 6 and "no orphan deletion plan" in error_line(refused)

        planned = invoke(repo, env, "orphans", "--plan-delete", "--keep-adoptable")
        assert planned.returncode == 0, planned.stderr
        assert (
            f"deletion plan: 1 to delete, written to deployments/spark/{OWNER}/orphans-delete.plan.json"
            in planned.stdout
        )
        assert alice.network.find_network(network.id, ignore_missing=True) is not None, "planning deletes nothing"
        deleted = invoke(repo, env, "orphans", "--delete")
        assert deleted.returncode == 0, deleted.stderr
        assert f"deleted 1: network {PREFIX}-network ({network.id})" in deleted.stdout
        assert alice.network.find_network(network.id, ignore_missing=True) is None, "really deleted in Neutron"
        assert not (repo / "deployments" / "spark" / OWNER / "orphans-delete.plan.json").exists(), "never reused"

        planned = invoke(repo, env, "orphans", "--plan-delete")  # both left: reviewed, then one is adopted by hand
        assert planned.returncode == 0 and "2 to delete" in planned.stdout, planned.stderr
        alice.network.set_tags(port, [])  # no longer the deployment's
        stale = invoke(repo, env, "orphans", "--delete")
        assert stale.returncode == 6, stale.stderr
        assert f"port {PREFIX}-worker-002 ({port.id}) is no longer an orphan; nothing deleted" in error_line(stale)
        assert alice.network.find_security_group(group.id, ignore_missing=True) is not None
        alice.network.set_tags(port, tags)

        adopted = invoke(repo, env, "orphans", "--adopt")
        assert adopted.returncode == 0, adopted.stderr
        imports = repo / "deployments" / "spark" / OWNER / ".terraform/workdir/terraform/spark/zz_hgi_orphans_import.tf"
        assert f"wrote 2 import blocks to {imports.relative_to(repo)}" in adopted.stdout
        assert "removed the deletion plan" in adopted.stdout, "the stale deletion plan goes: adopting wins"
        assert "plan --to update" in adopted.stdout
        assert not (repo / "terraform" / "spark" / imports.name).exists(), "never into the root module itself"
        fmt = subprocess.run(["terraform", "fmt", "-check", "-diff", str(imports)], capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stdout + fmt.stderr
        blocks = {b["to"]: b["id"].strip('"') for b in hcl2.loads(imports.read_text())["import"]}
        assert blocks == {
            "${openstack_networking_secgroup_v2.internal}": group.id,
            "${openstack_networking_port_v2.worker[1]}": port.id,
        }
        main = (ROOT / "terraform" / "spark" / "main.tf").read_text()
        assert 'resource "openstack_networking_secgroup_v2" "internal"' in main
        assert 'resource "openstack_networking_port_v2" "worker" {\n  count' in main
        listed = invoke(repo, env, "orphans")
        assert "import blocks waiting for the next plan: openstack_networking_port_v2.worker[1], " in listed.stdout
        assert "deletion plan" not in listed.stdout
    finally:
        for resource, delete in ((port, alice.network.delete_port), (group, alice.network.delete_security_group)):
            delete(resource.id, ignore_missing=True)
        alice.network.delete_network(network.id, ignore_missing=True)
        (repo / "deployments" / "spark" / OWNER / ".terraform/workdir/terraform/spark/zz_hgi_orphans_import.tf").unlink(
            missing_ok=True
        )
