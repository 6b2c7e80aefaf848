"""Scaling a running cluster never touches its existing nodes (issue 15, points 1 and 2).

openstack_compute_instance_v2's user_data is ForceNew (terraform-provider-openstack v3.x,
openstack/resource_openstack_compute_instance_v2.go: "user_data" ... ForceNew: true), and a new
name or metadata changes a server in place. So with N + 1 workers, the master's and the first N
workers' user-data, names and metadata must be byte for byte those of N workers. The worst case
is 99 -> 100, where a worker number width that followed the count renamed every worker.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("workers", [2, 99])
def test_one_more_worker_changes_no_existing_node(render_cluster, workers: int) -> None:
    before = render_cluster(workers)
    after = render_cluster(workers + 1)

    assert after["master_user_data"] == before["master_user_data"]
    assert after["master_env"] == before["master_env"]
    assert after["worker_user_data"][:workers] == before["worker_user_data"]
    assert after["worker_envs"][:workers] == before["worker_envs"]

    assert after["names"]["master"] == before["names"]["master"]
    assert after["names"]["workers"][:workers] == before["names"]["workers"]
    assert after["names"]["workers"][0] == before["names"]["workers"][0] == "spark-example-worker-001"
    assert after["metadata"] == before["metadata"] and after["tags"] == before["tags"]
    assert {k: v for k, v in after["ready_lines"].items() if k in before["ready_lines"]} == before["ready_lines"]

    # Only the new worker is new.
    assert len(after["worker_user_data"]) == workers + 1
    assert after["names"]["workers"][-1] == f"spark-example-worker-{workers + 1:03d}"


def test_the_last_worker_number_has_three_digits_too(render_cluster) -> None:
    names = render_cluster(1)["names"]["workers"]
    assert names == ["spark-example-worker-001"]
