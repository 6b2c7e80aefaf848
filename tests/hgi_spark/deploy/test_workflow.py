"""The guarded workflow with the real terraform on a provider-free root module (tests/fixtures/toy-module).

Each test copies the toy repository into a temporary folder; the toy module's local-exec
provisioners write and remove marker files, so every step's real effect is checked. Refusals are
checked through the library (typed error, files left as they were) and through the task layer
(``py3/bin/invoke ... deployment.TASK``: one line on stderr, the error's exit code).
"""

from __future__ import annotations

import getpass
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hgi_spark.cloud import credentials
from hgi_spark.clusters.base import Cluster
from hgi_spark.core import locking
from hgi_spark.core.errors import ConfigError, RefusedError, ToolError
from hgi_spark.core.layout import Repository
from hgi_spark.deploy import workflow
from hgi_spark.deploy.terraform import Interrupted

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "fixtures" / "toy-module"
INVOKE = ROOT / "py3" / "bin" / "invoke"
T1 = "toy/t1"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    """A private copy of the toy repository; terraform with an empty CLI config of its own."""
    tree = tmp_path / "repo"
    shutil.copytree(FIXTURE, tree)
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
    monkeypatch.setenv("HGI_REPOSITORY", str(tree))
    monkeypatch.delenv("HGI_DEPLOYMENT", raising=False)
    monkeypatch.delenv("TERRAFORM", raising=False)
    return Repository(tree)


def folder(repo: Repository, name: str = T1) -> Path:
    return repo.deployments_dir / name


def markers(repo: Repository, name: str = T1) -> dict[str, str]:
    path = folder(repo, name) / "markers"
    return {p.name: p.read_text().strip() for p in sorted(path.glob("*"))} if path.is_dir() else {}


def state(repo: Repository, name: str = T1) -> dict:
    return json.loads((folder(repo, name) / "terraform.tfstate").read_text())


def resources(repo: Repository, name: str = T1) -> list[str]:
    return [
        f"{r['type']}.{r['name']}[{i.get('index_key', '')}]"
        for r in state(repo, name)["resources"]
        if r["mode"] == "managed"
        for i in r["instances"]
    ]


def edit(repo: Repository, text: str, name: str = T1) -> None:
    (folder(repo, name) / "deployment.yml").write_text(text)


def snapshot(root: Path) -> dict[str, float]:
    """Every file and its mtime, except the lock file (each run writes its holder record there)."""
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.name != ".lock"}


def cli(repo: Repository, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """The task layer, as CI calls it."""
    result = subprocess.run(
        [str(INVOKE), "--search-root", str(ROOT / "invoke"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HGI_REPOSITORY": str(repo.root)},
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The task layer's error: exactly one line starting with 'error:' (terraform's own output aside)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- the full cycle -----------------------------------------------------------------------------------


def test_full_cycle_through_the_library(repo: Repository) -> None:
    summary, outputs = workflow.up(T1, repo)
    assert summary.line() == "up plan: 1 to add, 0 to change, 0 to destroy"
    assert markers(repo) == {"toy-t1-0": "hello"}
    assert resources(repo) == ["terraform_data.node[0]"]
    assert outputs["secret"]["sensitive"] is True
    assert not list(folder(repo).glob("*.tfplan*")), "up removes its plan once applied"
    assert (folder(repo) / "terraform.tfstate").stat().st_mode & 0o777 == 0o600

    (folder(repo) / "terraform.tfstate").chmod(0o644)  # e.g. copied in by hand
    edit(repo, "nodes: 2\ngreeting: bonjour\n")
    summary = workflow.plan(T1, "update", repo)
    assert summary.line() == "update plan: 1 to add, 1 to change, 0 to destroy"
    assert (folder(repo) / "update.tfplan").is_file()
    record = json.loads((folder(repo) / "update.tfplan.json").read_text())
    assert record["inputs"]["state"]["serial"] == state(repo)["serial"]
    assert "deployments/toy/t1/deployment.yml" in record["inputs"]["files"]
    assert markers(repo) == {"toy-t1-0": "hello"}, "planning changes nothing"

    outputs = workflow.update(T1, repo)
    assert outputs["greeting"]["value"] == "bonjour"
    assert set(markers(repo)) == {"toy-t1-0", "toy-t1-1"}
    assert markers(repo)["toy-t1-1"] == "bonjour"
    assert not (folder(repo) / "update.tfplan").exists(), "a plan is removed once applied"
    for name in ("terraform.tfstate", "terraform.tfstate.backup"):
        assert (folder(repo) / name).stat().st_mode & 0o777 == 0o600, name
    assert not (folder(repo) / "update.tfplan.json").exists()

    summary = workflow.plan(T1, "destroy", repo)
    assert summary.line() == (
        "destroy plan: 0 to add, 0 to change, 2 to destroy: terraform_data.node[0], terraform_data.node[1]"
    )
    assert len(resources(repo)) == 2
    workflow.down(T1, repo)
    assert markers(repo) == {}
    assert resources(repo) == []
    assert (folder(repo) / "terraform.tfstate").is_file(), "no task deletes state"
    assert not list(folder(repo).glob("*.tfplan*"))


def test_full_cycle_through_the_tasks(repo: Repository) -> None:
    up = cli(repo, "deployment.up", "--name", T1, check=True)
    assert "(sensitive)" in up.stdout and "s3cr3t" not in up.stdout
    # Every terraform command is shown before it runs; not a terminal, so no colour.
    assert "terraform -chdir=" in up.stderr and "apply -no-color" in up.stderr
    assert "\x1b[" not in up.stdout + up.stderr

    edit(repo, "nodes: 3\n")
    plan = cli(repo, "deployment.plan", "--name", T1, "--to", "update", check=True)
    assert "update plan: 2 to add, 0 to change, 0 to destroy" in plan.stdout
    assert "terraform_data.node[2] will be created" in plan.stdout, "the plan itself is shown"
    cli(repo, "deployment.update", "--name", T1, check=True)
    assert len(markers(repo)) == 3

    status = cli(repo, "deployment.status", "--name", T1, "--json", check=True)
    document = json.loads(status.stdout)
    assert document["status"]["resources"].startswith("3 ")
    assert document["outputs"]["secret"] == "(sensitive)"
    shown = cli(repo, "deployment.outputs", "--name", T1, "--json", "--show-secrets", check=True)
    assert json.loads(shown.stdout)["secret"] == "s3cr3t-toy-t1"

    # The seed's escape hatch: plan and apply a destroy in one call.
    both = cli(repo, "deployment.plan", "--name", T1, "--to", "destroy", "deployment.down", "--name", T1)
    assert both.returncode == 0, both.stderr
    assert "3 to destroy: terraform_data.node[0]" in both.stdout
    assert markers(repo) == {} and resources(repo) == []


def test_two_deployments_of_one_module_share_nothing(repo: Repository) -> None:
    before = snapshot(repo.terraform_dir)
    workflow.up("toy/t1", repo)
    workflow.up("toy/t2", repo)
    assert snapshot(repo.terraform_dir) == before, "nothing is written into the root module"
    assert markers(repo, "toy/t2") == {"toy-t2-0": "hi", "toy-t2-1": "hi"}
    assert state(repo)["lineage"] != state(repo, "toy/t2")["lineage"]
    for name in ("toy/t1", "toy/t2"):
        assert (folder(repo, name) / ".terraform" / "terraform.tfstate").is_file(), "own data dir"
    workflow.plan("toy/t2", "destroy", repo)
    workflow.down("toy/t2", repo)
    assert markers(repo, "toy/t2") == {} and markers(repo) == {"toy-t1-0": "hello"}


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "purpose"), [("update", "update"), ("down", "destroy")])
def test_update_and_down_refuse_without_a_plan(repo: Repository, task: str, purpose: str) -> None:
    workflow.up(T1, repo)
    with pytest.raises(RefusedError, match=rf"no {purpose} plan") as caught:
        getattr(workflow, task)(T1, repo)
    assert f"bash invoke.sh deployment toy/t1 plan --to {purpose}" in caught.value.message
    result = cli(repo, f"deployment.{task}", "--name", T1)
    assert result.returncode == RefusedError.exit_code
    assert f"plan --to {purpose}" in error_line(result)
    assert markers(repo) == {"toy-t1-0": "hello"}


def test_stale_after_a_yaml_edit(repo: Repository) -> None:
    workflow.up(T1, repo)
    workflow.plan(T1, "update", repo)
    edit(repo, "nodes: 1\ngreeting: changed after planning\n")
    kept = snapshot(folder(repo))
    with pytest.raises(RefusedError, match=r"stale update plan .*deployments/toy/t1/deployment.yml changed"):
        workflow.update(T1, repo)
    result = cli(repo, "deployment.update", "--name", T1)
    assert result.returncode == RefusedError.exit_code
    assert "deployment.yml changed" in error_line(result)
    assert "the rendered variables changed" in error_line(result)
    assert snapshot(folder(repo)) == kept, "a refused step leaves everything as it was"
    assert markers(repo) == {"toy-t1-0": "hello"}


def test_stale_after_a_tf_edit_in_a_called_module(repo: Repository) -> None:
    workflow.up(T1, repo)
    workflow.plan(T1, "destroy", repo)
    module = repo.terraform_dir / "modules" / "toy-label" / "main.tf"
    module.write_text(module.read_text() + "\n# edited\n")
    with pytest.raises(RefusedError, match=r"terraform/modules/toy-label/main.tf changed"):
        workflow.down(T1, repo)
    assert (folder(repo) / "destroy.tfplan").is_file()
    assert markers(repo) == {"toy-t1-0": "hello"}


def test_stale_after_a_new_tf_file_in_the_root_module(repo: Repository) -> None:
    workflow.up(T1, repo)
    workflow.plan(T1, "update", repo)
    (repo.terraform_dir / "toy" / "extra.tf").write_text('locals {\n  extra = "x"\n}\n')
    result = cli(repo, "deployment.update", "--name", T1)
    assert result.returncode == RefusedError.exit_code
    assert "terraform/toy/extra.tf was added" in error_line(result)


def test_stale_when_the_state_changed_since_planning(repo: Repository) -> None:
    workflow.up(T1, repo)
    edit(repo, "nodes: 2\n")
    workflow.plan(T1, "update", repo)
    workflow.plan(T1, "destroy", repo)
    serial = state(repo)["serial"]
    workflow.update(T1, repo)  # another apply changes the state the destroy plan was made against
    with pytest.raises(RefusedError, match=rf"state changed since planned \(serial {serial} -> "):
        workflow.down(T1, repo)
    assert len(markers(repo)) == 2 and (folder(repo) / "destroy.tfplan").is_file()


def test_stale_after_a_terraform_upgrade(repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another binary (here the real terraform behind a script that reports another version)."""
    workflow.up(T1, repo)
    workflow.plan(T1, "destroy", repo)
    upgraded = tmp_path / "terraform-upgraded"
    upgraded.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo \'{"terraform_version": "9.9.9"}\'; exit 0; fi\n'
        f'exec {shutil.which("terraform")} "$@"\n'
    )
    upgraded.chmod(0o755)
    monkeypatch.setenv("TERRAFORM", str(upgraded))
    with pytest.raises(RefusedError, match=r"terraform version 1\.\d+\.\d+ -> 9\.9\.9"):
        workflow.down(T1, repo)
    assert markers(repo) == {"toy-t1-0": "hello"}


def test_a_plan_is_never_reused(repo: Repository) -> None:
    workflow.up(T1, repo)
    workflow.plan(T1, "destroy", repo)
    plan, record = (folder(repo) / "destroy.tfplan").read_bytes(), (folder(repo) / "destroy.tfplan.json").read_text()
    workflow.down(T1, repo)
    (folder(repo) / "destroy.tfplan").write_bytes(plan)  # put the applied plan back
    (folder(repo) / "destroy.tfplan.json").write_text(record)
    with pytest.raises(RefusedError, match="state changed since planned"):
        workflow.down(T1, repo)


def test_a_second_run_is_refused_at_once_naming_the_holder(repo: Repository) -> None:
    workflow.up(T1, repo)
    workflow.plan(T1, "update", repo)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hgi_spark.core import locking\n"
            "with locking.hold(Path(sys.argv[1]), 'update', what='x'):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(folder(repo) / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "invoke")},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(RefusedError, match=rf"busy: pid {holder.pid} running 'update' since "):
            workflow.update(T1, repo)
        assert time.monotonic() - started < 2, "refused at once, not after waiting"
        result = cli(repo, "deployment.update", "--name", T1)
        assert result.returncode == RefusedError.exit_code
        assert f"pid {holder.pid}" in error_line(result)
        # Another deployment of the same module proceeds meanwhile.
        workflow.up("toy/t2", repo)
        assert len(markers(repo, "toy/t2")) == 2
    finally:
        holder.kill()
        holder.wait()
    assert (folder(repo) / "update.tfplan").is_file(), "the refused run left the plan alone"
    workflow.update(T1, repo)  # the holder is gone: its lock went with it


def test_clean_keeps_state_and_stays_in_the_deployment_folder(repo: Repository) -> None:
    workflow.up(T1, repo)
    workflow.plan(T1, "update", repo)
    workflow.plan(T1, "destroy", repo)
    state_before = (folder(repo) / "terraform.tfstate").read_text()
    outside = snapshot(repo.root / "terraform") | snapshot(folder(repo, "toy/t2"))
    removed = {p.name for p in workflow.clean(T1, repo)}
    assert removed == {
        "update.tfplan",
        "update.tfplan.json",
        "destroy.tfplan",
        "destroy.tfplan.json",
        "terraform.tfvars.json",
    }
    assert (folder(repo) / "terraform.tfstate").read_text() == state_before
    assert markers(repo) == {"toy-t1-0": "hello"}
    assert snapshot(repo.root / "terraform") | snapshot(folder(repo, "toy/t2")) == outside
    assert cli(repo, "deployment.clean", "--name", T1, check=True).stdout == ""


def test_a_bad_yaml_leaves_no_new_file_behind(repo: Repository) -> None:
    edit(repo, "nodes: 1\ngreting: typo\n", "toy/t2")
    before = snapshot(repo.root)
    files = sorted(repo.root.rglob("*"))
    for step in (workflow.up, workflow.validate, workflow.init):
        with pytest.raises(ConfigError, match="did you mean 'greeting'"):
            step("toy/t2", repo)
    with pytest.raises(ConfigError):
        workflow.plan("toy/t2", "update", repo)
    result = cli(repo, "deployment.up", "--name", "toy/t2")
    assert result.returncode == ConfigError.exit_code
    assert "greting" in error_line(result)
    assert snapshot(repo.root) == before
    assert sorted(repo.root.rglob("*")) == files, "not even a lock file"


def test_a_change_of_backend_is_refused_until_the_state_is_moved(repo: Repository) -> None:
    workflow.up(T1, repo)
    s3 = "terraform:\n  backend:\n    type: s3\n    bucket: b\n    key: k\n    endpoint: http://127.0.0.1:9\n"
    edit(repo, "nodes: 1\n" + s3)
    with pytest.raises(RefusedError, match="backend changed from local to s3") as caught:
        workflow.plan(T1, "update", repo)
    assert "init -migrate-state -backend-config=bucket=b" in caught.value.message
    assert resources(repo) == ["terraform_data.node[0]"], "the local state is untouched"


def test_validate_renders_and_runs_terraform_validate(repo: Repository) -> None:
    rendered = workflow.validate(T1, repo)
    values = json.loads(rendered.read_text())
    assert values["deployment_dir"] == str(folder(repo).resolve())
    assert rendered.stat().st_mode & 0o777 == 0o600
    edit(repo, "nodes: 11\n")  # within the YAML types, rejected by the module's validation block
    with pytest.raises(ToolError, match="terraform plan failed"):
        workflow.plan(T1, "update", repo)
    assert not (folder(repo) / "update.tfplan").exists(), "a failed plan leaves no plan file"


def test_missing_binary_is_one_line_saying_how_to_install(repo: Repository) -> None:
    result = subprocess.run(
        [str(INVOKE), "--search-root", str(ROOT / "invoke"), "deployment.up", "--name", T1],
        capture_output=True,
        text=True,
        env={**os.environ, "HGI_REPOSITORY": str(repo.root), "TERRAFORM": "no-such-terraform"},
        check=False,
    )
    assert result.returncode == ToolError.exit_code
    line = error_line(result)
    assert "'no-such-terraform' not found" in line and "install" in line and "TERRAFORM=tofu" in line
    assert result.stderr.count("\n") == 1


def test_ctrl_c_during_apply_is_passed_to_terraform(repo: Repository) -> None:
    """SIGINT to the task: terraform stops the provisioner, saves state, and the task exits 130."""
    edit(repo, "nodes: 1\ncreate_delay: 30\n")
    started = time.monotonic()
    task = subprocess.Popen(
        [str(INVOKE), "--search-root", str(ROOT / "invoke"), "deployment.up", "--name", T1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HGI_REPOSITORY": str(repo.root)},
    )
    try:
        while not markers(repo) and time.monotonic() - started < 20:
            time.sleep(0.05)
        assert markers(repo), "the provisioner started"
        task.send_signal(signal.SIGINT)
        _, stderr = task.communicate(timeout=25)
    finally:
        if task.poll() is None:
            task.kill()
            task.wait()
    assert task.returncode == Interrupted.exit_code, stderr
    assert time.monotonic() - started < 25, "terraform stopped instead of sleeping on"
    assert "SIGINT passed to terraform" in stderr
    saved = state(repo)  # consistent: parses, has its lineage, no terraform lock left behind
    assert saved["lineage"]
    assert not (folder(repo) / ".terraform.tfstate.lock.info").exists()
    assert not list(folder(repo).glob("*.tfplan*")), "an interrupted apply's plan is not reused"
    edit(repo, "nodes: 1\n")
    workflow.up(T1, repo)  # and the deployment carries on from there
    assert resources(repo) == ["terraform_data.node[0]"]


def _read_until(fd: int, output: bytearray, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side is gone
                return
            if not chunk:
                return
            output.extend(chunk)


def test_on_a_terminal_colour_is_kept_and_ctrl_c_stops_terraform_gracefully(repo: Repository) -> None:
    """A real pseudo-terminal: ^C typed on it reaches the task's process group, as for a user."""
    edit(repo, "nodes: 1\ncreate_delay: 30\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR")}
    env["HGI_REPOSITORY"] = str(repo.root)
    argv = [str(INVOKE), "--search-root", str(ROOT / "invoke"), "deployment.up", "--name", T1]
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.execve(argv[0], argv, env)
    output = bytearray()
    try:
        _read_until(fd, output, lambda: bool(markers(repo)), 20)
        assert markers(repo), output.decode(errors="replace")
        os.write(fd, b"\x03")  # Ctrl-C
        _read_until(fd, output, lambda: False, 25)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == Interrupted.exit_code, text
    assert time.monotonic() - started < 25
    assert "\x1b[" in text, "terraform's colours are kept on a terminal"
    assert " plan -input=false" in text and " apply -input=false" in text, "no -no-color on a terminal"
    assert "Interrupt received" in text and "Two interrupts received" not in text, "exactly one SIGINT"
    assert state(repo)["lineage"] and not list(folder(repo).glob("*.tfplan*"))


def test_a_closed_terminal_is_one_ctrl_c(repo: Repository) -> None:
    """The terminal goes away mid-apply (an ssh session lost, a laptop closed): the hang-up reaches the
    task, which passes one interrupt to terraform; terraform stops gracefully, saves its state, and
    the lock and the plan are gone, instead of a half-applied plan running on unseen."""
    edit(repo, "nodes: 1\ncreate_delay: 30\n")
    env = {**os.environ, "HGI_REPOSITORY": str(repo.root)}
    argv = [str(INVOKE), "--search-root", str(ROOT / "invoke"), "deployment.up", "--name", T1]
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    output = bytearray()
    try:
        _read_until(fd, output, lambda: bool(markers(repo)), 20)
        assert markers(repo), output.decode(errors="replace")
    finally:
        os.close(fd)  # hang up: the kernel sends SIGHUP to the terminal's session
    deadline = time.monotonic() + 25
    status = None
    while status is None and time.monotonic() < deadline:
        done, code = os.waitpid(pid, os.WNOHANG)
        status = code if done else None
        time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the task did not stop after its terminal closed")
    assert time.monotonic() - started < 25, "terraform stopped instead of sleeping on"
    assert os.waitstatus_to_exitcode(status) == Interrupted.exit_code
    assert state(repo)["lineage"]
    assert not list(folder(repo).glob("*.tfplan*"))
    assert locking.holder(folder(repo) / ".lock") is None, "the lock is free"
    edit(repo, "nodes: 1\n")
    workflow.up(T1, repo)  # the deployment carries on from there
    assert resources(repo) == ["terraform_data.node[0]"]


def test_a_state_that_cannot_be_read_is_one_line(repo: Repository) -> None:
    """A truncated state: status shows everything else and says what to do; a plan stops before terraform."""
    workflow.up(T1, repo)
    path = folder(repo) / "terraform.tfstate"
    path.write_text(path.read_text()[:200])
    env = {**os.environ, "HGI_REPOSITORY": str(repo.root)}
    for args in (["deployment.status", "--name", T1], ["deployment.plan", "--name", T1, "--to", "update"]):
        done = subprocess.run(
            [str(INVOKE), "--search-root", str(ROOT / "invoke"), *args], capture_output=True, text=True, env=env
        )
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()], "one line"
        assert "Traceback" not in done.stderr
        assert "deployments/toy/t1/terraform.tfstate: the state is not readable JSON" in done.stderr
        assert "terraform.tfstate.backup" in done.stderr and "terraform state push" in done.stderr
    shown = subprocess.run(
        [str(INVOKE), "--search-root", str(ROOT / "invoke"), "deployment.status", "--name", T1],
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    assert "lock" in shown and "UNREADABLE" in shown  # the rest of status is still there
    assert not list(folder(repo).glob("*.tfplan*"))


def test_cloud_credentials_only_for_modules_that_need_them(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy module's provisioner records the OS_AUTH_URL terraform got."""
    for key in [k for k in os.environ if k.startswith("OS_") or k == "OPENRC"]:
        monkeypatch.delenv(key)
    credentials.forget()
    seen = folder(repo) / "os-auth-url-seen"
    workflow.up(T1, repo)  # the generic kind: no openrc.sh exists, and none is asked for
    assert seen.read_text().strip() == "none"

    (repo.root / "openrc.sh").write_text(
        "export OS_AUTH_URL=http://127.0.0.1:5000/v3 OS_USERNAME=u OS_PROJECT_NAME=p OS_PASSWORD=pw\n"
    )
    monkeypatch.setattr(Cluster, "needs_cloud", True)  # the toy module as a kind that needs a cloud
    edit(repo, "nodes: 2\n")
    try:
        workflow.plan(T1, "update", repo)
        workflow.update(T1, repo)
    finally:
        credentials.forget()
    assert seen.read_text().strip() == "http://127.0.0.1:5000/v3"
    assert "OS_PASSWORD" not in (folder(repo) / "terraform.tfvars.json").read_text()


# --- remote state ----------------------------------------------------------------------------------------

MOTO = "moto[s3,server]==5.2.5"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3-compatible object store on 127.0.0.1: moto's server, in a venv of its own.

    moto is an S3 API emulator; it stands in for OpenStack's object store (Swift's S3 API), which
    cannot run here. terraform's real s3 backend talks HTTP to it. The venv is cached in
    $HGI_TEST_CACHE (default ~/.cache/hgi-spark-tests), so only the first run installs it (about 30 s).
    """
    cache = Path(os.environ.get("HGI_TEST_CACHE") or Path.home() / ".cache" / "hgi-spark-tests")
    venv = cache / "moto-venv"
    stamp = venv / ".installed"
    if not stamp.is_file() or stamp.read_text() != MOTO:
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", MOTO],
            check=True,
        )
        stamp.write_text(MOTO)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(venv / "bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=output, stderr=output
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/tfstate", method="PUT"), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"moto did not start: {log.read_text()}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_remote_s3_state_with_secrets_only_from_the_environment(
    repo: Repository, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-never-on-disk")
    backend = "terraform:\n  backend:\n    type: s3\n    bucket: tfstate\n    key: toy/t1.tfstate\n"
    edit(repo, f"nodes: 1\n{backend}    endpoint: {s3_endpoint}\n")
    workflow.up(T1, repo)
    assert not (folder(repo) / "terraform.tfstate").exists(), "no local state with a remote backend"
    with urllib.request.urlopen(f"{s3_endpoint}/tfstate") as response:  # the bucket's listing
        assert b"<Key>toy/t1.tfstate</Key>" in response.read()
    assert dict(workflow.status(T1, repo).rows)["resources"].startswith("1 "), "read back with state pull"
    assert workflow.outputs(T1, repo)["greeting"]["value"] == "hello"

    edit(repo, f"nodes: 2\n{backend}    endpoint: {s3_endpoint}\n")
    workflow.plan(T1, "update", repo)
    workflow.update(T1, repo)
    assert len(markers(repo)) == 2
    workflow.plan(T1, "destroy", repo)
    workflow.down(T1, repo)
    assert markers(repo) == {}
    rows = dict(workflow.status(T1, repo).rows)
    assert rows["state"] == "s3://tfstate/toy/t1.tfstate" and rows["resources"].startswith("0 ")
    for path in folder(repo).rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"test-secret-never-on-disk" not in path.read_bytes(), path


@pytest.mark.slow
def test_a_second_machine_is_refused_by_terraforms_s3_lock_file(
    repo: Repository, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two checkouts (two machines: two deployment folders, two local flocks) share one S3 state.

    While the first one's ``up`` holds terraform's lock file mid-apply (its provisioner sleeping),
    the second one's ``plan`` and ``update`` are refused by terraform's own lock (moto honours the
    conditional PUT, If-None-Match: *, that the lock file is written with): one line naming the
    holder as the ``.tflock`` object names it, and ``force-unlock`` as the fix, never run. On the
    first machine a second run is refused earlier, by the wrapper's flock.
    """
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-never-on-disk")
    other_tree = tmp_path / "other-machine"
    shutil.copytree(FIXTURE, other_tree)
    other = Repository(other_tree)
    backend = "terraform:\n  backend:\n    type: s3\n    bucket: tfstate\n    key: toy/locked.tfstate\n"
    backend += f"    endpoint: {s3_endpoint}\n"
    edit(other, f"nodes: 1\n{backend}")
    lock_object = b"<Key>toy/locked.tfstate.tflock</Key>"
    holder = f"{getpass.getuser()}@{socket.gethostname()}"  # terraform's "Who" of the first machine

    def bucket() -> bytes:
        with urllib.request.urlopen(f"{s3_endpoint}/tfstate") as response:  # the bucket's listing
            return response.read()

    workflow.plan(T1, "update", other)  # made while nobody holds the state: fresh when applied below
    edit(repo, f"nodes: 1\ncreate_delay: 60\n{backend}")
    first = subprocess.Popen(
        [str(INVOKE), "--search-root", str(ROOT / "invoke"), "deployment.up", "--name", T1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HGI_REPOSITORY": str(repo.root)},
    )
    try:
        started = time.monotonic()
        while not markers(repo) and time.monotonic() - started < 60:
            time.sleep(0.1)
        assert markers(repo), "the first machine's apply is under way"
        assert lock_object in bucket(), "terraform's lock file is in the bucket"

        ids = set()
        for args in (("deployment.update",), ("deployment.plan", "--to", "update")):
            refused = cli(other, *args, "--name", T1)
            line = error_line(refused)
            assert refused.returncode == RefusedError.exit_code, refused.stderr
            assert f"is locked by another terraform run: {holder} (apply, terraform " in line, line
            found = re.search(r"lock ID ([0-9a-f-]{36}) .*force-unlock ([0-9a-f-]{36})\)$", line)
            assert found and found.group(1) == found.group(2), line
            ids.add(found.group(1))
        assert len(ids) == 1, "both name the one lock the first machine holds"
        assert not list(folder(other).glob("*.tfplan*")), "no plan made, and the refused update's plan is not reused"
        cli(other, "deployment.status", "--name", T1, check=True)  # reading the state takes no lock

        here = cli(repo, "deployment.plan", "--to", "update", "--name", T1)
        assert here.returncode == RefusedError.exit_code
        assert f"deployment {T1} is busy: pid {first.pid} running 'up'" in error_line(here), "the local flock first"
        assert lock_object in bucket(), "nobody released the first machine's lock"
        first.send_signal(signal.SIGINT)  # the first machine's run ends: terraform releases its lock
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == Interrupted.exit_code
    assert lock_object not in bucket(), "terraform released its lock when it stopped"
    workflow.plan(T1, "update", other)  # the state is free again
