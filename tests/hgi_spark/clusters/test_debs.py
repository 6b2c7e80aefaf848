"""Debian packages resolved here for nodes without a mirror (clusters/debs.py).

The slow tests run the real apt-get against this machine's Debian sources (the nodes' are the same
kind of file), with a node's dpkg status made from this machine's by leaving packages out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hgi_spark.clusters import debs
from hgi_spark.core.errors import ConfigError

SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
WANTED = "jq"
BROUGHT = {"jq", "libjq1", "libonig5"}  # jq and the libraries it depends on (Debian 12)


def facts_of_this_machine(left_out: set[str]) -> str:
    """The facts script's answer on this machine (no image status kept here), as a node without
    ``left_out`` (and whatever installed here depends on them) would give it."""
    if left_out:
        found = subprocess.run(
            ["apt-cache", "rdepends", "--installed", "--recurse", *sorted(left_out)],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = (line.strip().lstrip("|") for line in found.stdout.splitlines())
        left_out = left_out | {line for line in lines if line and not line.startswith("Reverse Depends")}
    script = debs.facts_script("/nonexistent")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    head, _, status = done.stdout.partition("@@ status\n")
    kept = [
        entry
        for entry in status.split("\n\n")
        if entry.strip() and entry.partition("\n")[0].removeprefix("Package: ").strip() not in left_out
    ]
    return head + "@@ status\n" + "\n\n".join(kept) + "\n"


def test_a_node_s_answer_is_read_back() -> None:
    text = (
        "@@ architecture amd64\n@@ file debian.sources\nTypes: deb\nURIs: http://deb.debian.org/debian\n"
        "@@ status\nPackage: bash\nStatus: install ok installed\n\nPackage: gone\nStatus: deinstall ok config-files\n"
    )
    apt = debs.NodeApt.parse(text)
    assert apt.architecture == "amd64"
    assert apt.sources == {"debian.sources": "Types: deb\nURIs: http://deb.debian.org/debian\n"}
    assert apt.installed() == {"bash"}


def test_what_a_node_has_needs_no_apt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HGI_SPARK_CACHE", str(tmp_path))
    apt = debs.NodeApt("amd64", {"debian.sources": "Types: deb\n"}, "Package: bash\nStatus: install ok installed\n")
    monkeypatch.setattr(debs, "_apt_get", lambda *a: pytest.fail("apt-get ran for a package the node has"))
    found = debs.resolve(apt, ["bash"], where="d.yml:3:1", say=print)
    assert found.files() == [] and found.requested == ()


@pytest.mark.slow
@pytest.mark.skipif(not SOURCES.is_file(), reason="needs this machine's Debian deb822 sources")
def test_a_missing_package_comes_with_the_dependencies_the_node_lacks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HGI_SPARK_CACHE", str(tmp_path))
    apt = debs.NodeApt.parse(facts_of_this_machine(BROUGHT))
    said: list[str] = []
    found = debs.resolve(apt, [WANTED, "bash"], where="d.yml:3:1", say=said.append)
    names = {
        subprocess.run(["dpkg-deb", "-f", str(f), "Package"], capture_output=True, text=True).stdout.strip()
        for f in found.files()
    }
    assert names == BROUGHT, names
    assert found.requested == (WANTED,) and any("resolving jq" in line for line in said)

    # Once resolved, the same request is read from the cache: apt does not run again.
    monkeypatch.setattr(debs, "_apt_get", lambda *a: pytest.fail("apt-get ran again"))
    assert debs.resolve(apt, [WANTED, "bash"], where="d.yml:3:1", say=print).files() == found.files()


@pytest.mark.slow
@pytest.mark.skipif(not SOURCES.is_file(), reason="needs this machine's Debian deb822 sources")
def test_a_name_debian_does_not_have_is_one_line_naming_the_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HGI_SPARK_CACHE", str(tmp_path))
    apt = debs.NodeApt.parse(facts_of_this_machine(set()))
    with pytest.raises(ConfigError) as raised:
        debs.resolve(apt, ["no-such-package-hgi"], where="d.yml:3:1", say=print)
    message = str(raised.value)
    assert message.startswith("d.yml:3:1: extra_system_packages: no-such-package-hgi cannot be installed")
    assert "Unable to locate package no-such-package-hgi" in message and "\n" not in message
    assert not list((tmp_path / "debs").glob("*/*.deb"))
