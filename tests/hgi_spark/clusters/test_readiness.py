"""Readiness of OpenStack nodes from their console logs.

The logic takes the console reader as a function: a booted node cannot exist here (no Nova
compute), so the logs are written by the tests in the shape cloud-init prints them; the one slow
test reads a real (absent) server's console through the loopback Nova API.
"""

from __future__ import annotations

import pytest

from hgi_spark.clusters import readiness
from hgi_spark.core.errors import CloudError, NotFoundError

LINES = {
    "spark-t1-master": "hgi-spark-node-ready role=master name=spark-t1-master",
    "spark-t1-worker-1": "hgi-spark-node-ready role=worker name=spark-t1-worker-1",
}
BOOT = "[   12.3] cloud-init[700]: Cloud-init v. 23.1 running 'modules:final'\n"


class Clock:
    """A clock the waits advance, so timeouts are tested without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_failed_line_is_the_marker_with_failed() -> None:
    assert (
        readiness.failed_line(LINES["spark-t1-master"])
        == "hgi-spark-node-ready-failed role=master name=spark-t1-master"
    )


def test_states_ready_waiting_failed_unknown() -> None:
    logs = {
        "spark-t1-master": BOOT + LINES["spark-t1-master"] + "\n",
        "spark-t1-worker-1": BOOT,
        "spark-t1-worker-2": BOOT + "hgi-spark-node-ready-failed role=worker name=spark-t1-worker-2\n",
    }
    lines = {**LINES, "spark-t1-worker-2": "hgi-spark-node-ready role=worker name=spark-t1-worker-2"}

    def read(name: str) -> str:
        if name == "spark-t1-worker-3":
            raise NotFoundError(f"server {name} not found in this project")
        return logs[name]

    lines["spark-t1-worker-3"] = "hgi-spark-node-ready role=worker name=spark-t1-worker-3"
    states = {s.name: s.state for s in readiness.node_states(lines, read)}
    assert states == {
        "spark-t1-master": "ready",
        "spark-t1-worker-1": "waiting",
        "spark-t1-worker-2": "failed",
        "spark-t1-worker-3": "unknown",
    }


def test_wait_polls_only_the_nodes_not_ready_until_all_are() -> None:
    clock, reads = Clock(), []
    logs = {"spark-t1-master": BOOT + LINES["spark-t1-master"], "spark-t1-worker-1": BOOT}

    def read(name: str) -> str:
        reads.append(name)
        if clock.now >= 20:
            logs["spark-t1-worker-1"] = BOOT + LINES["spark-t1-worker-1"]
        return logs[name]

    said: list[str] = []
    states = readiness.wait_until_ready(
        LINES, read, timeout_s=60, interval_s=10, say=said.append, sleep=clock.sleep, clock=clock
    )
    assert [s.state for s in states] == ["ready", "ready"]
    assert reads == ["spark-t1-master", "spark-t1-worker-1", "spark-t1-worker-1", "spark-t1-worker-1"]
    assert said[-1] == "all 2 nodes are configured"


def test_wait_stops_at_a_failed_node() -> None:
    log = BOOT + readiness.failed_line(LINES["spark-t1-worker-1"])
    with pytest.raises(CloudError, match="node spark-t1-worker-1 failed to configure itself"):
        readiness.wait_until_ready(LINES, lambda name: log, timeout_s=60, sleep=lambda s: None)


def test_wait_times_out_naming_the_nodes() -> None:
    clock = Clock()
    with pytest.raises(CloudError) as caught:
        readiness.wait_until_ready(
            LINES, lambda name: BOOT, timeout_s=30, interval_s=10, sleep=clock.sleep, clock=clock
        )
    assert caught.value.message.startswith("2 of 2 nodes not configured after 30 s: spark-t1-master, spark-t1-worker-1")
    assert clock.now == 30


def test_outputs_in_terraform_shape_are_read() -> None:
    outputs = {"ready_lines": {"value": LINES, "type": ["map", "string"], "sensitive": False}}
    assert readiness.ready_lines(outputs) == LINES
    assert readiness.ready_lines({}) == {}


@pytest.mark.slow
def openstack_cluster(env):
    """The example deployment's OpenStack cluster, with the credentials ``env`` (a fixture user's)."""
    from hgi_spark.clusters.openstack.cluster import OpenStackCluster
    from hgi_spark.core import config

    cluster = OpenStackCluster(config.load_deployment("spark/example"), lambda _text: None)
    cluster.__dict__["credentials"] = dict(env)  # what cached_property would have loaded
    return cluster


def test_a_server_nova_does_not_know_is_unknown(openstack_compute_cloud) -> None:
    """The OpenStack cluster's console reader on the real loopback Nova API: no server exists."""
    reader = openstack_cluster(openstack_compute_cloud.env("alice")).console_reader()
    states = readiness.node_states(LINES, reader)
    assert {s.state for s in states} == {"unknown"}
    assert "not found in this project" in states[0].detail


def test_an_update_waits_only_for_the_nodes_it_created(tmp_path) -> None:
    """A console keeps only its recent output (Nova: 100 KiB): a node seen ready as the same server
    is not waited for again; a replaced one (a new server id) is."""
    record = readiness.ReadyRecord(tmp_path / "nodes-ready.json")
    lines = {"m": "hgi-spark-node-ready role=master name=m", "w1": "hgi-spark-node-ready role=worker name=w1"}
    consoles = {"m": lines["m"], "w1": lines["w1"]}
    readiness.wait_for_new_nodes(
        lines, {"m": "id-m", "w1": "id-w1"}, record, consoles.__getitem__, timeout_s=1, say=print
    )
    consoles = {"m": "(the ready line has scrolled away)", "w1": "(so has this one)", "w2": ""}
    lines["w2"] = "hgi-spark-node-ready role=worker name=w2"
    assert record.pending(lines, {"m": "id-m", "w1": "id-w1", "w2": "id-w2"}) == {"w2": lines["w2"]}
    assert set(record.pending(lines, {"m": "id-m", "w1": "id-new", "w2": "id-w2"})) == {"w1", "w2"}
