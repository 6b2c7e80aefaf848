"""The kinds of cluster, one class per root module: ``terraform/NAME/`` -> its Cluster class.

The one switch from a root module's name to what differs for it; any other root module (a test's
toy module) gets the generic ``Cluster``. Classes are imported on demand, so a task that needs
no cloud never imports openstacksdk.
"""

from __future__ import annotations

import importlib

from hgi_spark.clusters.base import Cluster, Say, _stderr
from hgi_spark.core.config import Deployment

KINDS: dict[str, str] = {
    "spark": "hgi_spark.clusters.openstack.cluster:OpenStackCluster",
    "spark-vm": "hgi_spark.clusters.vm.cluster:VmCluster",
    "spark-local": "hgi_spark.clusters.local.cluster:LocalCluster",
}


def class_for(root_module: str) -> type[Cluster]:
    """The Cluster class of ``terraform/<root_module>/`` (the generic one when not listed)."""
    target = KINDS.get(root_module)
    if target is None:
        return Cluster
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def for_deployment(deployment: Deployment, say: Say = _stderr) -> Cluster:
    """The cluster of a loaded deployment."""
    return class_for(deployment.ref.name)(deployment, say)
