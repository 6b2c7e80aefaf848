"""The terraform runner: per-deployment working directory, backend override, argv, signals (real terraform)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from hgi_spark.core import config
from hgi_spark.core.errors import ToolError
from hgi_spark.deploy import terraform as tf

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "toy-module"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "repo")
    (tmp_path / "terraformrc").write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "terraformrc"))
    monkeypatch.delenv("TERRAFORM", raising=False)
    return tmp_path / "repo"


def runner(tree: Path, owner: str = "t1", **kwargs) -> tuple[tf.Terraform, io.StringIO]:
    folder = tree / "deployments" / "toy" / owner
    echo = io.StringIO()
    return (
        tf.Terraform(
            terraform_dir=tree / "terraform",
            root_module=tree / "terraform" / "toy",
            data_dir=folder / ".terraform",
            state=folder / "terraform.tfstate",
            echo=echo,
            **kwargs,
        ),
        echo,
    )


def test_the_working_directory_mirrors_the_root_module_and_sets_the_backend(tree: Path) -> None:
    terraform, echo = runner(tree)
    workdir = terraform.workdir
    assert workdir == tree / "deployments/toy/t1/.terraform/workdir/terraform/toy"
    assert (workdir / "main.tf").resolve() == tree / "terraform/toy/main.tf"
    assert (workdir.parent / "modules").resolve() == tree / "terraform/modules"
    override = (workdir / tf.OVERRIDE_FILE).read_text()
    assert 'backend "local"' in override and str(tree / "deployments/toy/t1/terraform.tfstate") in override

    terraform.init()
    terraform.validate()
    assert "$ TF_DATA_DIR=" in echo.getvalue() and " init -no-color -input=false" in echo.getvalue()
    assert sorted(p.name for p in (tree / "terraform/toy").iterdir()) == [
        "main.tf",
        "outputs.tf",
        "variables.tf",
        "versions.tf",
    ], "init wrote nothing into the root module"

    (tree / "terraform/toy/versions.tf").unlink()
    (tree / "terraform/toy/extra.tf").write_text("")
    again, _ = runner(tree)
    names = sorted(p.name for p in again.workdir.iterdir())
    assert "versions.tf" not in names and "extra.tf" in names, "the mirror follows the module"


def test_a_committed_lock_file_is_used_read_only(tree: Path) -> None:
    committed = tree / "terraform/toy" / tf.LOCK_FILE
    committed.write_text("# This file is maintained automatically by terraform init.\n")
    terraform, echo = runner(tree)
    terraform.init()
    assert "-lockfile=readonly" in echo.getvalue()
    assert (terraform.workdir / tf.LOCK_FILE).read_text() == committed.read_text()


def test_s3_backend_settings_become_backend_config_without_secrets() -> None:
    backend = tf.s3_backend(
        {
            "type": "s3",
            "bucket": "state",
            "key": "spark/ld14.tfstate",
            "region": "RegionOne",
            "endpoint": "https://object.example:8080",
            "skip_credentials_validation": True,
            "use_path_style": True,
        }
    )
    args = backend.init_args()
    assert "-backend-config=bucket=state" in args
    assert '-backend-config=endpoints={s3 = "https://object.example:8080"}' in args
    assert "-backend-config=use_path_style=true" in args
    assert "-backend-config=skip_requesting_account_id=true" in args
    assert 'backend "s3" {\n  }' in backend.override_hcl(Path("/unused"))
    with pytest.raises(ToolError, match="secret_key' is a secret"):
        tf.Backend("s3", {"secret_key": "x"}).init_args()


def test_the_binary_comes_from_TERRAFORM(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TERRAFORM", "no-such-terraform")
    with pytest.raises(ToolError, match="not found on PATH") as caught:
        tf.binary()
    assert "install" in caught.value.message and "\n" not in caught.value.message
    # Any executable answering like terraform works, e.g. OpenTofu; here: terraform under another name.
    (tmp_path / "tofu").symlink_to(shutil.which("terraform") or "/usr/bin/terraform")
    monkeypatch.setenv("TERRAFORM", str(tmp_path / "tofu"))
    assert tf.binary() == str(tmp_path / "tofu")
    assert tf.version().count(".") == 2


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch, tree: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert tf.colour_wanted(Tty()) is True
    assert tf.colour_wanted(io.StringIO()) is False
    monkeypatch.setenv("CI", "true")
    assert tf.colour_wanted(Tty()) is False
    coloured, _ = runner(tree, colour=True)
    assert coloured._colour_args() == []
    plain, _ = runner(tree, colour=False)
    assert plain._colour_args() == ["-no-color"]


def test_the_environment_isolates_the_data_dir(tree: Path) -> None:
    terraform, _ = runner(tree, env={"OS_CLOUD": "x"})
    env = terraform.environment()
    assert env["TF_DATA_DIR"] == str(tree / "deployments/toy/t1/.terraform")
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0" and env["OS_CLOUD"] == "x"


CHILD = """
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda *a: got.append(1))
print("ready", flush=True)
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.2)  # a graceful stop takes a moment: the parent must wait for it
open(sys.argv[1], "w").write("stopped gracefully" if got else "never interrupted")
sys.exit(3)
"""


def test_sigint_is_forwarded_once_and_the_child_is_waited_for(tmp_path: Path) -> None:
    """A stand-in child (python) for terraform: what is tested is the signal path, not the tool."""
    marker = tmp_path / "marker"

    def interrupt() -> None:
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl-C on the terminal reaches this process

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(tf.Interrupted) as caught:
        tf.run_forwarding_signals([sys.executable, "-c", CHILD, str(marker)], env=os.environ)
    assert marker.read_text() == "stopped gracefully", "SIGINT reached the child, and we waited for it"
    assert "exit code 3" in caught.value.message
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "handlers restored"


def test_the_child_runs_in_its_own_session_with_a_private_umask() -> None:
    """Own session: a Ctrl-C to the terminal's group reaches only us, so terraform gets exactly one."""
    completed = tf.run_forwarding_signals(
        [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), oct(os.umask(0)))"],
        env=os.environ,
        capture=True,
    )
    assert completed.stdout.split() == ["True", "0o77"], "own session, and the files it writes are private"


def test_s3_backends_lock_their_state_by_default() -> None:
    """terraform's S3 lock file (use_lockfile) guards a state shared by two machines; it can be turned off."""
    backend = tf.s3_backend(config.S3Backend(type="s3", bucket="b", key="k").model_dump())
    assert "-backend-config=use_lockfile=true" in backend.init_args()
    off = tf.s3_backend(config.S3Backend(type="s3", bucket="b", key="k", use_lockfile=False).model_dump())
    assert "-backend-config=use_lockfile=false" in off.init_args()


def test_a_terraform_older_than_the_lock_file_is_one_line(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The version seam is replaced (no terraform 1.9 here): what is tested is the wrapper's refusal before init."""
    terraform, echo = runner(tree)
    terraform.backend = tf.Backend("s3", {"bucket": "b", "key": "k", "use_lockfile": True})
    monkeypatch.setattr(tf, "version", lambda: "1.9.8")
    with pytest.raises(ToolError, match=r"terraform 1\.9\.8 cannot lock an S3 state") as caught:
        terraform.init()
    assert caught.value.key == "terraform.backend.use_lockfile" and "\n" not in caught.value.message
    assert echo.getvalue() == "", "nothing ran"
    monkeypatch.setattr(tf, "version", lambda: "1.10.0")
    terraform.require_lockfile_support()


def test_a_steps_errors_are_shown_on_stderr_and_kept_in_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stand-in child (python) for terraform: what is tested is where its two streams go."""
    log, errors = tmp_path / "plan.log", tmp_path / "plan.errors.log"
    code = "import sys; print('planned'); print('Error: broken', file=sys.stderr); sys.exit(1)"
    completed = tf.run_forwarding_signals([sys.executable, "-c", code], env=os.environ, log=log, errors=errors)
    assert completed.returncode == 1
    shown = capsys.readouterr()
    assert (shown.out, shown.err) == ("planned\n", "Error: broken\n")
    assert (log.read_text(), errors.read_text()) == ("planned\n", "Error: broken\n")
