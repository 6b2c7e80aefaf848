"""Where an OpenStack orphan would go in terraform/spark/, and the import blocks for it.

The names come from the real naming module (the cluster module rendered by real terraform), the
addresses are checked against terraform/spark/main.tf parsed as HCL, and the import blocks with
the real ``terraform fmt``. A plan that imports them needs the OpenStack provider, which cannot be
downloaded here: the end-to-end test (tests/e2e/test_orphans_task.py) stops at the import file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import hcl2
import pytest
from conftest import ROOT

from hgi_spark.cloud.project import Tagged
from hgi_spark.clusters.openstack import orphans
from hgi_spark.clusters.orphans import Orphan
from hgi_spark.deploy.orphans import render_imports

SETTINGS = {"workers": 3, "network": {"create": True}, "tmp_volume_gb": 10}


def declared() -> dict[str, dict]:
    """type.name -> the resource block of terraform/spark/main.tf."""
    parsed = hcl2.loads((ROOT / "terraform" / "spark" / "main.tf").read_text())
    return {
        f"{kind.strip(chr(34))}.{name.strip(chr(34))}": body
        for block in parsed.get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    }


def check_address(address: str, resources: dict[str, dict]) -> None:
    """The address names a resource of main.tf, indexed exactly when the resource has a count."""
    found = re.fullmatch(r"([a-z0-9_]+\.[a-z0-9_]+)(\[(\d+)\])?", address)
    assert found, address
    body = resources.get(found.group(1))
    assert body is not None, f"{address}: no such resource in terraform/spark/main.tf"
    assert ("count" in body) == (found.group(2) is not None), f"{address}: count and index disagree"


def test_every_name_the_module_gives_has_its_place_in_main_tf(render_cluster) -> None:
    names = render_cluster(3)["names"]
    tagged = [
        Tagged("server", "s0", names["master"]),
        *(Tagged("server", f"s{i}", name) for i, name in enumerate(names["workers"], 1)),
        Tagged("port", "p0", names["master"]),
        *(Tagged("port", f"p{i}", name) for i, name in enumerate(names["workers"], 1)),
        Tagged("network", "n", names["network"]["network"]),
        Tagged("subnet", "sn", names["network"]["subnet"]),
        Tagged("security group", "ge", names["secgroups"]["external"]),
        Tagged("security group", "gi", names["secgroups"]["internal"]),
        Tagged("floating IP", "f", "203.0.113.7"),
        Tagged("volume", "v", names["volume"]),
    ]
    placed = orphans.place(tagged, None, SETTINGS)
    assert [o.why_not for o in placed if not o.address] == []
    resources = declared()
    for orphan in placed:
        check_address(orphan.address or "", resources)
    assert {o.id: o.address for o in placed}["s3"] == "openstack_compute_instance_v2.worker[2]"
    assert len({o.address for o in placed}) == len(placed), "one place each"


def test_what_cannot_be_adopted_says_why() -> None:
    state = {
        "resources": [
            {
                "mode": "managed",
                "type": "openstack_compute_instance_v2",
                "name": "master",
                "instances": [{"attributes": {"id": "in-state"}}],
            }
        ]
    }
    tagged = [
        Tagged("server", "in-state", "spark-x-master"),  # the state's own: not an orphan
        Tagged("server", "dup", "spark-x-master"),
        Tagged("server", "w4", "spark-x-worker-004"),
        Tagged("network", "n", "spark-x-network"),
        Tagged("volume", "v", "spark-x-master-tmp"),
        Tagged("router", "r", "spark-x-router"),
        Tagged("security group", "g", "spark-x-internal"),
        Tagged("port", "odd", "something-else"),
        Tagged("floating IP", "f1", "203.0.113.7"),
        Tagged("floating IP", "f2", "203.0.113.8"),
    ]
    settings = {"workers": 3, "network": {"create": False}, "tmp_volume_gb": 0}
    why = {o.id: o.why_not for o in orphans.place(tagged, state, settings, {"g": 5})}
    assert why == {
        "dup": "openstack_compute_instance_v2.master is in the state already (in-state): this one is a duplicate",
        "w4": "worker 4 is beyond workers: 3",
        "n": "the deployment uses an existing network (network.create: false)",
        "v": "the deployment has no tmp volume (tmp_volume_gb: 0)",
        "r": "its interface on the subnet cannot be adopted with it",
        "g": "its 5 rules cannot be adopted with it",
        "odd": "no port of the module is named like 'something-else'",
        "f1": "",
        "f2": "openstack_networking_floatingip_v2.master is taken by f1 found first: this one is a duplicate",
    }


def test_import_blocks_are_terraform_fmt_clean(tmp_path: Path, terraform_binary: str) -> None:
    found = [
        Orphan("server", "0c6b-id", "spark-x-worker-002", "openstack_compute_instance_v2.worker[1]"),
        Orphan("security group", "9f1e-id", "spark-x-internal", "openstack_networking_secgroup_v2.internal"),
    ]
    path = tmp_path / "zz_hgi_orphans_import.tf"
    path.write_text(render_imports("spark/x", found))
    result = subprocess.run([terraform_binary, "fmt", "-check", "-diff", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    blocks = hcl2.loads(path.read_text())["import"]
    assert [(b["to"], b["id"].strip('"')) for b in blocks] == [
        ("${openstack_compute_instance_v2.worker[1]}", "0c6b-id"),
        ("${openstack_networking_secgroup_v2.internal}", "9f1e-id"),
    ]


@pytest.mark.parametrize("index_key", [0, "a"])
def test_state_addresses_follow_terraforms_spelling(index_key) -> None:
    state = {
        "resources": [
            {
                "mode": "managed",
                "type": "t",
                "name": "n",
                "instances": [{"index_key": index_key, "attributes": {"id": "i"}}],
            }
        ]
    }
    spelled = "t.n[0]" if index_key == 0 else 't.n["a"]'
    assert orphans.state_addresses(state) == {spelled: "i"}
