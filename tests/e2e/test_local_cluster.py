"""The local cluster for real: `up` through the front door, the README's three ways, a browser,
scaling 1 -> 2 -> 1, a crash, a second deployment, and `down` leaving no process or port.

Everything is real: terraform's terraform_data + local-exec running the node scripts, Spark's
standalone master and workers from the pyspark wheel, Hail, JupyterLab, Debian's nginx and
Chromium. The Hail prefix is the user's cached one (installed by the first `up` when missing).
The deployment lives in a temporary copy of the repository's definitions with its own ports, so a
running spark-local/demo is never touched. Tests run in file order on one cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_local_cluster_client import REPO, Jupyter, LocalCluster, login_and_screenshot, port_listening, readme_job

pytestmark = pytest.mark.slow

PORTS = {
    "http": 28888,
    "spark_master": 27077,
    "spark_master_ui": 28080,
    "spark_worker_ui": 28081,
    "jupyter": 28889,
    "spark_app_ui_first": 24040,
    "spark_app_ui_last": 24050,
    "spark_driver": 24100,
    "spark_blockmanager": 24101,
}
ANSWER = "(100, 50)"
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("repo"), "e2e", PORTS, workers=1)
    started = time.monotonic()
    try:
        done = local.invoke("up")
        local.up_seconds = time.monotonic() - started  # type: ignore[attr-defined]
        local.up_output = done.stdout + done.stderr  # type: ignore[attr-defined]
        yield local
    finally:
        try:
            if local.nodes():
                local.down()
        finally:
            local.force_stop()


@pytest.fixture(scope="module")
def password(cluster: LocalCluster) -> str:
    return cluster.invoke("password").stdout.strip()


def test_up_prints_the_jupyter_url_and_every_process_runs(cluster: LocalCluster) -> None:
    url = f"http://127.0.0.1:{PORTS['http']}/jupyter/"
    assert url in cluster.up_output  # type: ignore[attr-defined]
    assert set(cluster.pids()) == {"master/spark-master", "master/jupyter", "master/nginx", "worker-1/spark-worker"}
    status = cluster.invoke("status").stdout
    assert status.count(" running (pid ") == 4
    assert "secrets/jupyter-password" in status
    # the password is never printed by up or status
    secret = (cluster.folder / "secrets" / "jupyter-password").read_text().strip()
    assert secret not in cluster.up_output and secret not in status  # type: ignore[attr-defined]
    assert oct((cluster.folder / "secrets" / "jupyter-password").stat().st_mode & 0o777) == "0o600"
    print(f"up took {cluster.up_seconds:.1f} s")  # type: ignore[attr-defined]


def test_every_process_listens_on_loopback_only(cluster: LocalCluster) -> None:
    pids = set(cluster.pids().values())
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line.split() for line in listening.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    assert len(ours) >= 6  # master rpc + ui, worker rpc + ui, jupyter, nginx
    # Java's sockets show IPv4 loopback as [::ffff:127.0.0.1]
    assert all(fields[3].startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for fields in ours), ours


def test_every_spark_page_is_behind_the_jupyter_login(cluster: LocalCluster, password: str) -> None:
    """One password: the Spark master's UI and the worker UI it proxies answer only after Jupyter's login."""
    import requests

    site = f"http://127.0.0.1:{PORTS['http']}"
    worker = cluster.master_json()["workers"][0]["id"]
    pages = ["/spark/", f"/spark/proxy/{worker}/", f"/spark/proxy/{worker}/json/"]
    for page in pages:
        answer = requests.get(site + page, allow_redirects=False, timeout=10)
        assert answer.status_code == 302, page
        assert "/jupyter/login?next=/spark/" in answer.headers["Location"], page
    jupyter = Jupyter(site + "/jupyter/")
    assert jupyter.login(password) == 302
    for page in pages:
        assert jupyter.http.get(site + page, timeout=10).status_code == 200, page
    master = jupyter.http.get(site + "/spark/", timeout=10).text
    assert "Spark Master at spark://127.0.0.1:27077" in master
    assert 'href="/spark/static/' in master  # links work behind the /spark/ prefix


def test_jupyter_refuses_no_password_and_a_wrong_one(cluster: LocalCluster, password: str) -> None:
    base = f"http://127.0.0.1:{PORTS['http']}/jupyter/"
    anonymous = Jupyter(base)
    assert anonymous.api("GET", "kernels").status_code == 403
    assert Jupyter(base).login(None) != 302
    wrong = Jupyter(base)
    assert wrong.login(password + "x") != 302
    assert wrong.api("GET", "kernels").status_code == 403


def test_jupyter_kernel_runs_the_readme_job_on_a_worker(cluster: LocalCluster, password: str) -> None:
    jupyter = Jupyter(f"http://127.0.0.1:{PORTS['http']}/jupyter/")
    assert jupyter.login(password) == 302
    kernel = jupyter.start_kernel()
    try:
        printed = jupyter.execute(kernel, readme_job() + "\nprint('APP', sc.applicationId)\n", timeout=300)
        assert ANSWER in printed
        app_id = printed.split("APP ", 1)[1].split()[0]
        # Spark's REST API (through the master's reverse proxy and nginx): who ran the tasks?
        import requests

        url = f"http://127.0.0.1:{PORTS['http']}/spark/proxy/{app_id}/api/v1/applications/{app_id}/executors"
        assert requests.get(url, allow_redirects=False, timeout=10).status_code == 302  # behind the login too
        executors = jupyter.http.get(url, timeout=10).json()
        workers = [e for e in executors if e["id"] != "driver"]
        assert workers, executors
        assert sum(e["completedTasks"] for e in workers) > 0
        assert all(e["hostPort"].startswith("127.0.0.1:") for e in workers)
        assert app_id in str(cluster.master_json()["activeapps"])
    finally:
        jupyter.stop_kernel(kernel)


def test_pyspark_in_a_login_shell_runs_the_readme_snippet(cluster: LocalCluster, tmp_path: Path) -> None:
    """As a user would: a login shell whose profile sources the cluster's, then `pyspark < job`."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bash_profile").write_text(f". {cluster.outputs()['profile']}\n")
    job = tmp_path / "job.py"
    job.write_text(readme_job())
    env = {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "TERM": "dumb"}
    done = subprocess.run(
        ["bash", "--login", "-i"],
        input=f'type pyspark\necho "TMP $HAIL_HOME/tmp $HAIL_TMP_DIR"\npyspark < {job}\nexit $?\n',
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pyspark is aliased" in done.stdout
    tmp_line = next(line for line in done.stdout.splitlines() if line.startswith("TMP "))
    _, home_tmp, tmp_dir = tmp_line.split()
    assert home_tmp == tmp_dir, "the README's $HAIL_HOME/tmp and $HAIL_TMP_DIR are one folder"
    assert ANSWER in done.stdout, done.stderr[-3000:]


def test_submit_runs_a_script_with_arguments(cluster: LocalCluster, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import sys\n" + readme_job() + "print('ARGS', sys.argv[1:])\n")
    done = cluster.invoke("submit", str(script), "--", "one", "two words")
    assert ANSWER in done.stdout
    assert "ARGS ['one', 'two', 'words']" in done.stdout or "ARGS ['one', 'two words']" in done.stdout
    # A quiet console: Spark's INFO lines go to the driver log whose path is said at the end.
    assert " INFO " not in done.stdout + done.stderr, done.stdout[-2000:] + done.stderr[-2000:]
    log = Path(done.stderr.split("driver log: ", 1)[1].split()[0])
    assert " INFO " in log.read_text()
    failing = tmp_path / "fail.py"
    failing.write_text("raise SystemExit(3)\n")
    assert cluster.invoke("submit", str(failing), check=False).returncode == 3


def test_a_notebook_holding_a_spark_context_leaves_room_for_a_submit(
    cluster: LocalCluster, password: str, tmp_path: Path
) -> None:
    """Shared use: a kernel keeps its SparkContext (as the README's notebooks do) and a submitted job
    still gets executors; both finish (dynamic allocation frees an idle application's executors)."""
    jupyter = Jupyter(f"http://127.0.0.1:{PORTS['http']}/jupyter/")
    assert jupyter.login(password) == 302
    kernel = jupyter.start_kernel()
    try:
        first = jupyter.execute(kernel, readme_job(), timeout=300)
        assert ANSWER in first
        script = tmp_path / "while-a-notebook-holds-a-context.py"
        script.write_text(readme_job())
        done = cluster.invoke("submit", str(script), timeout=420)
        assert ANSWER in done.stdout
        again = jupyter.execute(kernel, "print(hl.import_vcf(vcf).count())", timeout=300)
        assert ANSWER in again
    finally:
        jupyter.stop_kernel(kernel)


def test_chromium_logs_in_and_shows_jupyterlab(cluster: LocalCluster, password: str) -> None:
    png = ARTIFACTS / "jupyterlab-local-cluster.png"
    png.unlink(missing_ok=True)
    final = login_and_screenshot(f"http://127.0.0.1:{PORTS['http']}/jupyter/", password, png)
    assert "/jupyter/lab" in final
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_worker_cleanup_is_configured(cluster: LocalCluster) -> None:
    conf = Path(cluster.nodes()["1"]["STATE_DIR"]) / "conf" / "spark" / "spark-defaults.conf"
    text = conf.read_text()
    assert "spark.worker.cleanup.enabled          true" in text
    # No application copied Hail's 141 MB jar into the worker's work dir: executors load it in place.
    assert not list((Path(cluster.nodes()["1"]["STATE_DIR"]) / "work").glob("*/*/hail-all-spark.jar"))


def test_scaling_adds_and_removes_one_worker_and_leaves_the_other(cluster: LocalCluster) -> None:
    before = cluster.pids()
    cluster.define(workers=2)
    assert "1 to add, 0 to change, 0 to destroy" in cluster.invoke("plan", "--to", "update").stdout
    cluster.invoke("update")
    after = cluster.pids()
    assert after["worker-1/spark-worker"] == before["worker-1/spark-worker"]
    assert after["master/spark-master"] == before["master/spark-master"]
    assert "worker-2/spark-worker" in after
    assert cluster.master_json()["aliveworkers"] == 2

    cluster.define(workers=1)
    assert "0 to add, 0 to change, 1 to destroy" in cluster.invoke("plan", "--to", "update").stdout
    cluster.invoke("update")
    final = cluster.pids()
    assert "worker-2/spark-worker" not in final
    assert not port_listening(PORTS["spark_worker_ui"] + 1)
    assert final["worker-1/spark-worker"] == before["worker-1/spark-worker"]
    assert cluster.master_json()["aliveworkers"] == 1


def test_a_crashed_worker_is_seen_and_restarted_by_up(cluster: LocalCluster) -> None:
    pid = cluster.pids()["worker-1/spark-worker"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "worker-1/spark-worker" in cluster.pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "dead (pid" in cluster.invoke("status").stdout
    again = cluster.invoke("up")
    assert "installing" not in again.stderr  # the prefix is installed once, and reused
    assert "up plan: 1 to add, 0 to change, 1 to destroy" in again.stdout + again.stderr  # only the dead node
    pids = cluster.pids()
    assert pids["worker-1/spark-worker"] != pid
    assert cluster.master_json()["aliveworkers"] == 1


def test_a_second_deployment_needs_its_own_ports(cluster: LocalCluster) -> None:
    clash = LocalCluster(cluster.root, "clash", PORTS, workers=1)
    refused = clash.invoke("plan", "--to", "up", check=False)
    assert refused.returncode == 6, refused.stderr
    assert "port 27077 (ports.spark_master) is in use by another program" in refused.stderr

    other = {**PORTS, "spark_master": 37077, "spark_master_ui": 38080, "spark_worker_ui": 38081, "jupyter": 38889}
    second = LocalCluster(cluster.root, "second", other, workers=0)
    # http 28888 belongs to the first cluster: nginx moves to the first free port above it, and says so.
    try:
        done = second.invoke("up")
        assert "port 28888 (ports.http) is in use: nginx will listen on" in done.stderr
        assert second.http_port() != PORTS["http"]
        assert port_listening(second.http_port()) and port_listening(PORTS["http"])
        assert set(second.pids()) == {"master/spark-master", "master/jupyter", "master/nginx"}
    finally:
        if second.nodes():
            second.down()
        second.force_stop()
    assert not second.pids()


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for PID 1 to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return any(line.startswith("State:") and line.split()[1] == "Z" for line in status.splitlines())


def test_down_stops_everything_and_frees_every_port(cluster: LocalCluster) -> None:
    pids = cluster.pids()
    cluster.down()
    assert not cluster.pids()
    for pid in pids.values():
        assert gone(pid), f"process {pid} still runs after down"
    for port in cluster.all_ports():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # raises if anything still holds it
