"""Every user-data terraform renders for a node passes Debian's `cloud-init schema -c`.

The documents come from terraform/spark/modules/cluster applied with real terraform (see
conftest.py); `cloud-init` is Debian's package, installed by tests/run. Also checks that each
node environment holds every variable of the contract in terraform/modules/spark-node/README.md
and every variable the node scripts require.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, TLS_CERT, TLS_KEY

NODE_README = ROOT / "terraform" / "modules" / "spark-node" / "README.md"
NODE_LIB = ROOT / "terraform" / "modules" / "spark-node" / "scripts" / "node-lib.sh"


@pytest.fixture(scope="session")
def cloud_init() -> str:
    path = shutil.which("cloud-init")
    if path is None:
        pytest.fail("cloud-init is not installed: run `bash tests/run` (it installs Debian's cloud-init)")
    return path


def schema_check(cloud_init: str, document: str, path: Path) -> None:
    path.write_text(document, encoding="utf-8")
    result = subprocess.run([cloud_init, "schema", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"cloud-init schema rejects {path.name}:\n{result.stdout}{result.stderr}"
    assert "Valid cloud-config" in result.stdout


def contract_variables() -> set[str]:
    """The variable names of the README's contract table (backticked UPPER_CASE words)."""
    text = NODE_README.read_text(encoding="utf-8")
    section = text.split("## The node environment", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row)}


def test_the_schema_gate_rejects_a_broken_document(cloud_init, tmp_path: Path) -> None:
    """The gate is real: a wrong type in write_files (what a rendering bug would produce) fails."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 420\nruncmd: run\n")
    result = subprocess.run([cloud_init, "schema", "-c", str(broken)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "permissions" in result.stdout + result.stderr


def test_master_and_worker_user_data_pass_the_schema(render_cluster, cloud_init, tmp_path: Path) -> None:
    cluster = render_cluster(3)
    documents = {"master": cluster["master_user_data"]}
    documents.update({f"worker-{i + 1}": doc for i, doc in enumerate(cluster["worker_user_data"])})
    for name, document in documents.items():
        assert document.startswith("#cloud-config\n")
        schema_check(cloud_init, document, tmp_path / f"{name}.yaml")
    master = yaml.safe_load(documents["master"])
    assert [f["path"] for f in master["write_files"]] == [
        "/etc/hgi-spark/node.env",
        "/etc/hgi-spark/jupyter-password.hash",
    ]
    assert master["runcmd"] == [
        "/opt/hgi-spark/node/run-node --role master --env-file /etc/hgi-spark/node.env"
        " && echo 'hgi-spark-node-ready role=master name=spark-example-master'"
        " || { echo 'hgi-spark-node-ready-failed role=master name=spark-example-master'; exit 1; }"
    ]
    assert master["package_update"] is False and "packages" not in master


def test_master_with_tls_and_tmp_volume_passes_the_schema(render_cluster, cloud_init, tmp_path: Path) -> None:
    cluster = render_cluster(
        1,
        tls_certificate_pem=TLS_CERT,
        tls_private_key_pem=TLS_KEY,
        tmp_volume_id="6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b",
    )
    document = cluster["master_user_data"]
    schema_check(cloud_init, document, tmp_path / "master-tls.yaml")
    master = yaml.safe_load(document)
    modes = {f["path"]: f["permissions"] for f in master["write_files"]}
    assert modes["/etc/hgi-spark/tls/key.pem"] == "0600"
    assert master["mounts"][0][:2] == ["/dev/disk/by-id/virtio-6f1c2d3e-4b5a-6978-8", "/opt/hail/tmp"]
    assert master["fs_setup"][0]["overwrite"] is False
    assert "PRIVATE KEY" not in cluster["worker_user_data"][0]


def required_by_scripts(role: str) -> set[str]:
    """COMMON_VARS plus MASTER_VARS or WORKER_VARS of node-lib.sh: what run-node refuses to start without."""
    text = NODE_LIB.read_text(encoding="utf-8")
    names: set[str] = set()
    for group in ("COMMON_VARS", f"{role.upper()}_VARS"):
        match = re.search(rf"readonly {group}=\(([^)]*)\)", text)
        assert match, f"{group} not found in {NODE_LIB}"
        names.update(match.group(1).split())
    return names


def test_env_holds_the_contract_and_what_the_scripts_require(render_cluster) -> None:
    cluster = render_cluster(2)
    master, workers = cluster["master_env"], cluster["worker_envs"]
    for role, envs in (("master", [master]), ("worker", workers)):
        for env in envs:
            missing = sorted(name for name in required_by_scripts(role) if not env.get(name))
            assert not missing, f"{env['NODE_NAME']}: run-node --role {role} would refuse to start without {missing}"
            assert env["NODE_MODE"] == "system" and env["SPARK_MASTER_HOST"] == "10.42.0.10"
    # The README's contract, over both roles; SPARK_HOME may be left to the scripts, which find it
    # in the venv when it is unset.
    assert 'if [[ -z "${SPARK_HOME:-}" ]]' in NODE_LIB.read_text(encoding="utf-8")
    contract = contract_variables()
    assert len(contract) >= 25, f"could not read the contract table of {NODE_README}: {sorted(contract)}"
    rendered = set(master) | set().union(*map(set, workers)) | {"SPARK_HOME"}
    assert contract <= rendered, f"not rendered: {sorted(contract - rendered)}"
    assert master["NFS_EXPORT_CIDR"] == "10.42.0.0/24"
    assert [env["NODE_BIND_ADDRESS"] for env in workers] == ["10.42.1.1", "10.42.1.2"]


def test_one_hundred_workers_render_in_one_run(render_cluster, cloud_init, tmp_path: Path) -> None:
    started = time.monotonic()
    cluster = render_cluster(100)
    elapsed = time.monotonic() - started
    documents = cluster["worker_user_data"]
    assert len(documents) == 100 and len(set(documents)) == 100
    assert cluster["names"]["workers"][0] == "spark-example-worker-001"
    assert cluster["names"]["workers"][-1] == "spark-example-worker-100"
    addresses = [env["NODE_BIND_ADDRESS"] for env in cluster["worker_envs"]]
    assert len(set(addresses)) == 100
    for index in (0, 99):
        schema_check(cloud_init, documents[index], tmp_path / f"worker-{index + 1:03d}.yaml")
    assert elapsed < 120, f"init + apply of 100 workers took {elapsed:.1f} s"


def test_the_wrapper_gives_the_master_its_password_hash(render_cluster, cloud_init, tmp_path: Path) -> None:
    """The OpenStack cluster's extra tfvars: a password made once in secrets/, its hash in the user-data."""
    from hgi_spark.clusters.openstack.cluster import OpenStackCluster
    from hgi_spark.core import config, secrets
    from hgi_spark.core.layout import Repository

    repo_root = tmp_path / "repo"
    for relative in (
        "deployments/defaults.yml",
        "deployments/spark/defaults.yml",
        "deployments/spark/example/deployment.yml",
        "terraform/spark/variables.tf",
        "images/hail-base/defaults.yml",
        "images/hail-base/1.0.0/image.yml",
        "images/hail-base/1.0.0/constraints.txt",
    ):
        (repo_root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, repo_root / relative)
    deployment = config.load_deployment("spark/example", Repository(repo_root))
    cluster = OpenStackCluster(deployment, lambda _text: None)
    cluster.prepare("up")
    extra = cluster.extra_tfvars(None)
    values = deployment.tfvars(extra)
    secret = secrets.JupyterSecret.of(deployment.paths)
    password = secret.password_file.read_text().strip()
    assert secrets.check_password(values["jupyter_password_hash"], password)
    assert (secret.password_file.stat().st_mode & 0o777) == 0o600
    cluster.prepare("update")
    assert cluster.extra_tfvars(None) == extra  # made once, stable

    cluster = render_cluster(1, jupyter_password_hash=values["jupyter_password_hash"])
    document = cluster["master_user_data"]
    schema_check(cloud_init, document, tmp_path / "master-password.yaml")
    written = {f["path"]: f["content"] for f in yaml.safe_load(document)["write_files"]}
    assert written["/etc/hgi-spark/jupyter-password.hash"] == values["jupyter_password_hash"] + "\n"
    assert password not in document
