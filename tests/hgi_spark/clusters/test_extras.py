"""The extras' pure parts: pins of the image, pip's conflict in one line, a node's answer as its line,
and the local prefix's digest (unchanged without extras). Resolution, the install script and the
prefix run for real in tests/e2e/test_nodes_over_ssh.py and test_local_cluster_extras.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hgi_spark.clusters import extras, health
from hgi_spark.clusters.local import prefix
from hgi_spark.core.config import load_image
from hgi_spark.core.errors import ConfigError

PIP_CONFLICT = """ERROR: Cannot install pandas<2 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested pandas<2
    The user requested (constraint) pandas==2.3.3

To fix this you could try to:
1. loosen the range of package versions you've specified
"""


def test_image_pins_hold_the_constraints_and_the_three_versions() -> None:
    image = load_image("hail-base/1.0.0")
    pins = extras.image_pins(image)
    assert pins["hail"] == image.software.hail and pins["numpy"]
    assert "toolz" not in pins  # the e2e tests' package: the image lacks it


def test_a_requirement_the_image_pins_otherwise_is_refused_without_pip() -> None:
    image = load_image("hail-base/1.0.0")
    pinned = extras.image_pins(image)["numpy"]
    with pytest.raises(ConfigError) as error:
        extras.refuse_pinned(image, extras.Wanted(("toolz", "numpy==1.26.4")), lambda i: f"d.yml:{i}")
    assert error.value.message.startswith("d.yml:1: extra_python_packages: 'numpy==1.26.4' conflicts")
    assert f"numpy=={pinned}" in error.value.message
    extras.refuse_pinned(image, extras.Wanted((f"numpy>={pinned}", "toolz")), lambda i: "")  # allowed


def test_pip_conflict_is_one_line_naming_the_pin() -> None:
    line = extras.conflict_line(PIP_CONFLICT)
    assert line == "The user requested pandas<2; the image pins pandas==2.3.3"
    assert (
        extras.conflict_line("ERROR: No matching distribution found for x\n") == "No matching distribution found for x"
    )


@pytest.mark.parametrize(
    ("ok", "stdout", "problem", "expected"),
    [
        (True, "noise\n@@ result changed installed toolz==1.2.0\n", "", (True, "ok: installed toolz==1.2.0")),
        (True, "@@ result changed removed toolz\n", "", (True, "ok: removed toolz")),
        (True, "@@ result unchanged\n", "", (True, "ok: unchanged (it had them all)")),
        (True, "@@ result failed apt-get install jq: E: Unable to locate package jq\n", "", (False, "FAILED: apt-get")),
        (True, "bash: line 3: oops\n", "", (False, "FAILED: bash: line 3: oops")),
        (False, "", "Connection refused", (False, "FAILED: Connection refused")),
    ],
)
def test_a_node_answer_is_one_line(ok: bool, stdout: str, problem: str, expected: tuple[bool, str]) -> None:
    result = extras.node_result("n1", ok, stdout, problem)
    assert result.ok == expected[0] and result.line.startswith(expected[1])


def test_the_image_prefix_keeps_its_digest_and_extras_get_their_own() -> None:
    spec = prefix.PrefixSpec.of(load_image("hail-base/1.0.0"))
    with_extras = replace(spec, extras=("toolz==1.2.0",))
    assert replace(spec, find_links=None).digest == spec.digest
    assert with_extras.digest != spec.digest
    assert replace(with_extras, find_links=extras.cache_dir()).digest == with_extras.digest


def test_a_record_is_shown_in_one_line() -> None:
    assert health.extras_shown('{"python": ["toolz==1.2.0"], "system": ["jq"]}') == "toolz==1.2.0, jq"
    assert health.extras_shown("") == ""
    assert health.extras_shown("{broken") == "unreadable record"


def test_without_apt_get_here_no_deb_is_pushed_and_the_nodes_use_their_own_sources(tmp_path, monkeypatch) -> None:
    """No node is asked and nothing is resolved: the install script's apt step then reads the node's
    own sources (run-node --install-debs with an empty folder)."""
    monkeypatch.setattr(extras.shutil, "which", lambda name: None)
    monkeypatch.setattr(extras.nodes, "ask", lambda *a, **k: pytest.fail("the master was asked"))
    resolution = extras.Resolution("k", (), ("jq",), (), tmp_path)
    said: list[str] = []
    image = load_image("hail-base/1.0.0")
    found = extras._debs_for(None, image, {}, tmp_path / "known_hosts", resolution, 22, said.append)  # type: ignore[arg-type]
    assert found == [] and said == ["apt-get is not on this machine: the nodes install jq from their own apt sources"]
