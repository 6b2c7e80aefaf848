"""The pre-flight report: one row per check (ok / FAIL / not checked), as a table or as JSON.

One failing check never hides the others; the failures become the one line that stops a plan.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from hgi_spark.core.errors import CloudError, CredentialsError

OK = "ok"
FAIL = "FAIL"
NOT_CHECKED = "not checked"

# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One row of the report."""

    name: str
    result: str
    detail: str = ""
    needed: str = ""
    available: str = ""
    fix: str = ""


@dataclass
class Report:
    """Every check of one run, and the flavor sizes the Spark sizing will use."""

    deployment: str
    checks: list[Check] = field(default_factory=list)
    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.result == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "flavors": self.flavors,
            "checks": [asdict(c) for c in self.checks],
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def table(self) -> str:
        """One aligned row per check; the fix on its own line under a failing or unchecked row."""
        head = ("CHECK", "RESULT", "NEEDED", "AVAILABLE", "DETAIL")
        rows = [(c.name, c.result, c.needed, c.available, c.detail) for c in self.checks]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = []
        for row, check in zip([head, *rows], [None, *self.checks], strict=True):
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join([*cells, row[4]]).rstrip())
            if check is not None and check.fix and check.result != OK:
                lines.append(" " * (widths[0] + 2) + f"fix: {check.fix}")
        verdict = "passed" if self.ok else f"{len(self.failures)} FAILED"
        lines.append(f"pre-flight of {self.deployment}: {verdict} ({self.seconds:.2f} s)")
        return "\n".join(lines)

    def summary(self) -> str:
        """The failures in one line, for the error that stops a plan."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def require_ok(self, fix: str = "mend the rows marked FAIL above") -> None:
        require_ok(self, fix)


def require_ok(report: Report, fix: str = "mend the rows marked FAIL above") -> None:
    """Stop with one line naming the failed checks: CredentialsError when no connection, else CloudError."""
    if report.ok:
        return
    first = report.checks[0]
    if first.name == "credentials" and first.result == FAIL:
        raise CredentialsError(first.detail, fix=first.fix or None)
    raise CloudError(f"pre-flight of {report.deployment} failed: {report.summary()}", fix=fix)
