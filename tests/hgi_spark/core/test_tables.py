"""Outputs as a table for people and JSON for scripts; sensitive values masked unless asked for."""

from __future__ import annotations

import json

from hgi_spark.core import tables as outputs

TERRAFORM_OUTPUT = {
    "master_address": {"sensitive": False, "type": "string", "value": "192.0.2.10"},
    "jupyter_password": {"sensitive": True, "type": "string", "value": "hunter2"},
    "workers": {"sensitive": False, "type": ["list", "string"], "value": ["w1", "w2"]},
    "ssh_config": {"sensitive": False, "type": "string", "value": "Host master\n  User hgi"},
}


def test_values_mask_sensitive_outputs_unless_asked() -> None:
    assert outputs.values(TERRAFORM_OUTPUT)["jupyter_password"] == outputs.MASK
    assert outputs.values(TERRAFORM_OUTPUT, show_secrets=True)["jupyter_password"] == "hunter2"


def test_json_is_a_plain_name_to_value_map() -> None:
    document = json.loads(outputs.as_json(TERRAFORM_OUTPUT))
    assert document == {
        "jupyter_password": "(sensitive)",
        "master_address": "192.0.2.10",
        "ssh_config": "Host master\n  User hgi",
        "workers": ["w1", "w2"],
    }


def test_table_is_aligned_and_never_shows_a_secret() -> None:
    text = outputs.as_table(TERRAFORM_OUTPUT)
    assert "hunter2" not in text
    lines = text.splitlines()
    assert lines[0].split() == ["output", "value"]
    assert "master_address    192.0.2.10" in text
    assert 'workers           ["w1", "w2"]' in text
    assert lines[lines.index("ssh_config        Host master") + 1] == "                    User hgi"
    assert outputs.as_table({}) == "(no outputs)"
