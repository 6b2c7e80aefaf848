"""terraform's "Error acquiring the state lock" as one line (the texts are terraform 1.11.4's, as printed
when another run held an S3 lock file; the slow test in test_workflow.py makes it happen for real)."""

from __future__ import annotations

from pathlib import Path

from hgi_spark.deploy import statelock

PLAIN = """
Error: Error acquiring the state lock

Error message: operation error S3: PutObject, https response error
StatusCode: 412, RequestID: quqdwcy5, HostID: 9Gjjt1m=,
api error PreconditionFailed: At least one of the pre-conditions you
specified did not hold
Lock Info:
  ID:        dd0f713b-ec8f-011b-0cbc-d0c865f7b7e5
  Path:      tfstate/k.tfstate
  Operation: OperationTypeApply
  Who:       alice@admin-1
  Version:   1.11.4
  Created:   2026-12-02 05:25:39.935838515 +0000 UTC
  Info:


Terraform acquires a state lock to protect the state from being written
by multiple users at the same time. Please resolve the issue above and try
again. For most commands, you can disable locking with the "-lock=false"
flag, but this is not recommended.
"""


def boxed(text: str) -> str:
    """The same diagnostic as terraform prints it on a terminal: coloured, in a box."""
    bar = "\x1b[31m│\x1b[0m \x1b[0m"
    return (
        "\x1b[31m╷\x1b[0m\x1b[0m\n"
        + "\n".join(bar + line for line in text.splitlines())
        + "\n\x1b[31m╵\x1b[0m\x1b[0m\n"
    )


def unlock(lock: str) -> str:
    return f"terraform -chdir=WORKDIR force-unlock {lock}"


def test_the_holder_and_the_fix_in_one_line(tmp_path: Path) -> None:
    for text in (PLAIN, boxed(PLAIN)):
        errors = tmp_path / "plan.errors.log"
        errors.write_text(text)
        refused = statelock.refusal(errors, unlock)
        assert refused is not None
        assert refused.message == (
            "the state of tfstate/k.tfstate is locked by another terraform run: alice@admin-1 (apply, terraform 1.11.4)"
            " since 2026-12-02 05:25:39 +0000 UTC, lock ID dd0f713b-ec8f-011b-0cbc-d0c865f7b7e5 (wait for that run to"
            " finish, then run again; only if it is dead (its machine gone), release the lock by hand:"
            " terraform -chdir=WORKDIR force-unlock dd0f713b-ec8f-011b-0cbc-d0c865f7b7e5)"
        )
        assert refused.exit_code == 6 and "\n" not in refused.message


def test_other_failures_are_not_lock_refusals(tmp_path: Path) -> None:
    errors = tmp_path / "plan.errors.log"
    errors.write_text("Error: Unsupported argument\n")
    assert statelock.refusal(errors, unlock) is None
    assert statelock.refusal(tmp_path / "missing.log", unlock) is None


def test_a_lock_that_could_not_be_read_says_why(tmp_path: Path) -> None:
    errors = tmp_path / "plan.errors.log"
    errors.write_text("Error: Error acquiring the state lock\n\nError message: connection refused\n")
    refused = statelock.refusal(errors, unlock)
    assert refused is not None and refused.problem == "terraform could not take the state lock: connection refused"
