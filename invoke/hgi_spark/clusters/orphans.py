"""An orphan: a resource carrying a deployment's tags or metadata that its state does not hold.

An apply killed between the cloud's answer and terraform's next state snapshot leaves them: they
use quota and would collide with what the next plan creates. The guarded step (deploy/orphans.py)
either imports them (when the root module has a free place for them) or deletes them, never silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Orphan:
    """One resource outside the state, and where the root module would hold it (if it can)."""

    kind: str  # server, port, network, subnet, router, security group, floating IP, volume
    id: str
    name: str
    address: str | None = None  # the resource address an import block targets; None: delete only
    why_not: str = ""  # why it cannot be adopted (when address is None)

    @property
    def import_id(self) -> str:
        return self.id

    def line(self) -> str:
        shown = f"{self.kind} {self.name or '-'} ({self.id})"
        return f"{shown}: adopt as {self.address}" if self.address else f"{shown}: delete only: {self.why_not}"

    def as_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "id": self.id, "name": self.name, "address": self.address, "why_not": self.why_not}


def state_addresses(state: Mapping[str, Any] | None) -> dict[str, str]:
    """Resource address -> id of every managed instance in the state."""
    held = {}
    for resource in (state or {}).get("resources", []):
        if resource.get("mode") != "managed" or resource.get("module"):
            continue
        for instance in resource.get("instances", []):
            key = instance.get("index_key")
            index = "" if key is None else f"[{key}]" if isinstance(key, int) else f'["{key}"]'
            held[f"{resource['type']}.{resource['name']}{index}"] = str((instance.get("attributes") or {}).get("id"))
    return held
