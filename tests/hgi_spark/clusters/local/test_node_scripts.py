"""The node scripts (terraform/modules/spark-node/scripts/) without starting Spark: rendering,
nginx -t of what they render, the environment contract, port and pid-file handling.

Real tools: bash, Debian's nginx (installed by tests/run) and openssl. The Hail venv is replaced by
a folder with the same layout (a python symlink, an executable spark-class, an empty jar): the
scripts only look for those paths before anything would start, and nothing here starts them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
SCRIPTS = REPO / "terraform" / "modules" / "spark-node" / "scripts"
RUN_NODE = SCRIPTS / "run-node"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A folder laid out like the Hail venv (nothing in it runs)."""
    root = tmp_path / "venv"
    site = root / "lib" / "python3.11" / "site-packages"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    spark_bin = site / "pyspark" / "bin"
    spark_bin.mkdir(parents=True)
    (spark_bin / "spark-class").write_text("#!/bin/sh\nexit 99\n")
    (spark_bin / "spark-class").chmod(0o755)
    (site / "hail" / "backend").mkdir(parents=True)
    (site / "hail" / "backend" / "hail-all-spark.jar").write_bytes(b"")
    return root


def node_env(tmp_path: Path, venv: Path, role: str, **overrides: str) -> dict[str, str]:
    hash_file = tmp_path / "hash"
    hash_file.write_text("sha256:00:00\n")
    env = {
        "PATH": os.environ["PATH"],
        "NODE_MODE": "local",
        "NODE_NAME": f"t-{role}",
        "STATE_DIR": str(tmp_path / role),
        "APP_USER": "hgi",
        "HAIL_HOME": str(venv),
        "HAIL_VENV": str(venv),
        "SPARK_HOME": "",  # as the spark-node module passes it: found in HAIL_VENV
        "HAIL_JAR": "",
        "HAIL_TMP_DIR": str(tmp_path / "tmp"),
        "NODE_BIND_ADDRESS": "127.0.0.1",
        "SPARK_MASTER_HOST": "127.0.0.1",
        "SPARK_MASTER_PORT": "17077",
        "SPARK_MASTER_WEBUI_PORT": "18080",
        "SPARK_EXECUTOR_CORES": "2",
        "SPARK_EXECUTOR_MEMORY_MB": "3000",
        "SPARK_DRIVER_MEMORY_MB": "1500",
        "SPARK_MEMORY_OVERHEAD_MB": "384",
        "SPARK_DRIVER_PORT": "40000",
        "SPARK_BLOCKMANAGER_PORT": "40001",
        "SPARK_UI_PORT": "4040",
        "SPARK_UI_PORT_RETRIES": "10",
        "SPARK_WORKER_CLEANUP_INTERVAL_S": "1800",
        "SPARK_WORKER_APPDATA_TTL_S": "3600",
        "READY_TIMEOUT_S": "120",
        "JUPYTER_PORT": "18889",
        "HTTP_PORT": "18888",
        "HTTP_LISTEN_ADDRESS": "127.0.0.1",
        "JUPYTER_PASSWORD_HASH_FILE": str(hash_file),
        "NOTEBOOK_DIR": str(tmp_path / "notebooks"),
        "SPARK_WORKER_CORES": "2",
        "SPARK_WORKER_MEMORY_MB": "3677",
        "SPARK_WORKER_WEBUI_PORT": "18081",
    }
    env.update(overrides)
    return env


def run_node(env: dict[str, str], *args: str, script: Path = RUN_NODE) -> subprocess.CompletedProcess:
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_master_renders_spark_defaults_with_the_master_hail_and_kryo(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "master")
    done = run_node(env, "--role", "master", "--render-only")
    assert done.returncode == 0, done.stderr
    conf = (tmp_path / "master" / "conf" / "spark" / "spark-defaults.conf").read_text()
    jar = str(venv / "lib" / "python3.11" / "site-packages" / "hail" / "backend" / "hail-all-spark.jar")
    settings = dict(line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#"))
    assert settings["spark.master"] == "spark://127.0.0.1:17077"
    assert settings["spark.driver.extraClassPath"] == jar
    assert settings["spark.executor.extraClassPath"] == jar
    assert settings["spark.serializer"] == "org.apache.spark.serializer.KryoSerializer"
    assert settings["spark.kryo.registrator"] == "is.hail.kryo.HailKryoRegistrator"
    assert settings["spark.kryoserializer.buffer.max"] == "1g"
    assert settings["spark.driver.maxResultSize"] == "0"
    assert "is.hail.io.compress.BGzipCodec" in settings["spark.hadoop.io.compression.codecs"]
    assert settings["spark.executor.memory"] == "3000m" and settings["spark.driver.memory"] == "1500m"
    assert settings["spark.worker.cleanup.enabled"] == "true"
    assert settings["spark.worker.cleanup.appDataTtl"] == "3600"
    assert settings["spark.ui.reverseProxyUrl"] == "/spark"


def test_the_profile_gives_a_login_shell_spark_hail_and_a_pyspark_alias(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "master")
    assert run_node(env, "--role", "master", "--render-only").returncode == 0
    profile = tmp_path / "master" / "profile.sh"
    script = f". {profile}\nalias pyspark\nenv\n"
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-i"],
        input=script,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    spark_home = venv / "lib" / "python3.11" / "site-packages" / "pyspark"
    assert f"alias pyspark='{spark_home}/bin/pyspark'" in done.stdout
    assert f"SPARK_HOME={spark_home}\n" in done.stdout
    assert f"HAIL_HOME={venv}\n" in done.stdout
    assert f"PYSPARK_PYTHON={venv}/bin/python\n" in done.stdout
    assert f"SPARK_CONF_DIR={tmp_path}/master/conf/spark\n" in done.stdout
    assert f"HAIL_TMP_DIR={tmp_path}/tmp\n" in done.stdout
    assert f"PATH={venv}/bin:/usr/bin:/bin\n" in done.stdout
    # a plain POSIX sh reads the same file (as /etc/profile.d/ is read by dash's login shells)
    posix = subprocess.run(
        ["sh", "-c", f'. {profile} && printf "%s" "$SPARK_CONF_DIR"'], capture_output=True, text=True, check=False
    )
    assert posix.stdout == f"{tmp_path}/master/conf/spark"


def test_jupyter_config_reads_the_hash_file_and_listens_on_localhost(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "master")
    assert run_node(env, "--role", "master", "--render-only").returncode == 0
    config = (tmp_path / "master" / "conf" / "jupyter" / "jupyter_server_config.py").read_text()
    assert 'c.ServerApp.ip = "127.0.0.1"' in config
    assert 'c.ServerApp.base_url = "/jupyter/"' in config
    assert f'Path("{tmp_path}/hash").read_text().strip()' in config
    assert 'c.IdentityProvider.token = ""' in config
    compile(config, "jupyter_server_config.py", "exec")  # valid Python


def nginx_test(config: Path) -> subprocess.CompletedProcess:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.run([nginx, "-t", "-c", str(config)], capture_output=True, text=True, check=False)


def test_the_local_nginx_config_passes_nginx_t(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "master")
    assert run_node(env, "--role", "master", "--render-only").returncode == 0
    config = tmp_path / "master" / "conf" / "nginx" / "nginx.conf"
    done = nginx_test(config)
    assert done.returncode == 0, done.stderr
    server = (tmp_path / "master" / "conf" / "nginx" / "hgi-spark-server.conf").read_text()
    assert "listen 127.0.0.1:18888;" in server
    assert "proxy_pass http://127.0.0.1:18889;" in server
    assert "proxy_set_header Upgrade $http_upgrade;" in server
    assert "proxy_pass http://127.0.0.1:18080/;" in server


def test_the_system_nginx_server_with_tls_passes_nginx_t_in_a_harness(tmp_path: Path, venv: Path) -> None:
    cert, key = tmp_path / "hgi.crt", tmp_path / "hgi.key"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=hgi", "-days", "1"]
    subprocess.run([*openssl, "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True)
    env = node_env(
        tmp_path,
        venv,
        "master",
        NODE_MODE="system",
        NODE_SYSROOT=str(tmp_path / "root"),
        HTTP_LISTEN_ADDRESS="*",
        HTTP_PORT="80",
        HTTPS_PORT="443",
        TLS_CERT_FILE=str(cert),
        TLS_KEY_FILE=str(key),
        NFS_EXPORT_CIDR="10.0.0.0/24",
    )
    done = run_node(env, "--role", "master", "--render-only")
    assert done.returncode == 0, done.stderr
    site = tmp_path / "root" / "etc" / "nginx" / "conf.d" / "hgi-spark.conf"
    temp = tmp_path / "nginx-temp"
    harness = tmp_path / "harness.conf"
    harness.write_text(
        f"pid {temp}/nginx.pid;\nerror_log {temp}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {temp}/cb;\n  proxy_temp_path {temp}/p;\n"
        f"  fastcgi_temp_path {temp}/f;\n  uwsgi_temp_path {temp}/u;\n  scgi_temp_path {temp}/s;\n"
        f"  include {site};\n}}\n"
    )
    temp.mkdir()
    checked = nginx_test(harness)
    assert checked.returncode == 0, checked.stderr
    text = site.read_text()
    assert "listen 443 ssl;" in text and "return 301 https://$host:443$request_uri;" in text
    units = tmp_path / "root" / "etc" / "systemd" / "system"
    assert "User=hgi" in (units / "hgi-jupyter.service").read_text()
    assert "org.apache.spark.deploy.master.Master --host 127.0.0.1" in (units / "hgi-spark-master.service").read_text()
    exports = (tmp_path / "root" / "etc" / "exports.d" / "hgi-spark.exports").read_text()
    assert exports == f"{tmp_path}/tmp 10.0.0.0/24(rw,sync,root_squash,no_subtree_check)\n"


def test_a_system_worker_mounts_the_master_export_from_fstab(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker", NODE_MODE="system", NODE_SYSROOT=str(tmp_path / "root"))
    for _ in range(2):  # idempotent: the fstab line is written once
        assert run_node(env, "--role", "worker", "--render-only").returncode == 0
    fstab = (tmp_path / "root" / "etc" / "fstab").read_text().splitlines()
    assert fstab == [
        f"127.0.0.1:{tmp_path}/tmp {tmp_path}/tmp nfs "
        "nfsvers=4.2,proto=tcp,hard,_netdev,nofail,retry=15,x-systemd.mount-timeout=16min 0 0"
    ]
    unit = (tmp_path / "root" / "etc" / "systemd" / "system" / "hgi-spark-worker.service").read_text()
    assert "--cores 2 --memory 3677m --webui-port 18081" in unit and "spark://127.0.0.1:17077" in unit


def test_a_missing_variable_is_named(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker")
    del env["SPARK_WORKER_CORES"], env["SPARK_MASTER_HOST"]
    done = run_node(env, "--role", "worker", "--render-only")
    assert done.returncode == 1
    assert "missing node environment: SPARK_MASTER_HOST SPARK_WORKER_CORES" in done.stderr


def test_a_non_number_and_a_bad_role_are_refused(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker", SPARK_WORKER_CORES="two")
    assert "SPARK_WORKER_CORES='two' is not a whole number" in run_node(env, "--role", "worker").stderr
    assert "--role must be master or worker" in run_node(env, "--role", "slave").stderr


def test_the_env_file_form_is_read(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker")
    env_file = tmp_path / "node.env"
    env_file.write_text("".join(f"{k}='{v}'\n" for k, v in env.items() if k != "PATH"))
    done = run_node({"PATH": os.environ["PATH"]}, "--role", "worker", "--env-file", str(env_file), "--render-only")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "worker" / "conf" / "spark" / "spark-defaults.conf").is_file()


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_port_in_use_stops_the_start_before_anything_runs(tmp_path: Path, venv: Path, listener: int) -> None:
    env = node_env(tmp_path, venv, "worker", SPARK_WORKER_WEBUI_PORT=str(listener))
    done = run_node(env, "--role", "worker")
    assert done.returncode == 1
    assert f"port {listener} on 127.0.0.1 (SPARK_WORKER_WEBUI_PORT) is already in use by another process" in done.stderr
    assert not (tmp_path / "worker" / "run" / "spark-worker.pid").exists()


def test_a_stale_pid_file_is_reported_and_removed(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker")
    run_dir = tmp_path / "worker" / "run"
    run_dir.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run_dir / "spark-worker.pid").write_text(f"{gone.pid}\n")
    status = run_node(env, "--role", "worker", "--status")
    assert status.returncode == 3 and f"spark-worker dead {gone.pid}" in status.stdout
    stopped = run_node(env, "--role", "worker", "--stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "removing stale pid file" in stopped.stderr
    assert not (run_dir / "spark-worker.pid").exists()


def test_a_pid_file_naming_someone_elses_process_is_never_killed(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker")
    run_dir = tmp_path / "worker" / "run"
    run_dir.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (run_dir / "spark-worker.pid").write_text(f"{stranger.pid}\n")
        assert run_node(env, "--role", "worker", "--stop").returncode == 0
        assert stranger.poll() is None  # still running: its command line does not name our STATE_DIR
    finally:
        stranger.kill()
        stranger.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_process_that_dies_while_starting_fails_fast_and_stops_the_others(tmp_path: Path, venv: Path) -> None:
    """spark-class of the stand-in venv exits 99 at once: run-node must say so at once (not wait for
    READY_TIMEOUT_S), show the log, and stop the nginx it had started (a real one, on a free port)."""
    ports = {name: str(free_port()) for name in ("SPARK_MASTER_PORT", "SPARK_MASTER_WEBUI_PORT", "JUPYTER_PORT")}
    http = free_port()
    env = node_env(tmp_path, venv, "master", READY_TIMEOUT_S="60", HTTP_PORT=str(http), **ports)
    done = run_node(env, "--role", "master")
    assert done.returncode == 1
    assert "a process exited while starting" in done.stderr
    assert "--- last lines of" in done.stderr
    assert not list((tmp_path / "master" / "run").glob("*.pid"))
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", http)) != 0  # nginx was stopped too


def test_the_scripts_pass_shellcheck() -> None:
    scripts = [SCRIPTS / "run-node", SCRIPTS / "node-lib.sh", SCRIPTS / "profile.d" / "hgi-spark.sh"]
    done = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


def test_a_worker_without_a_master_fails_with_a_clear_line(tmp_path: Path, venv: Path) -> None:
    env = node_env(tmp_path, venv, "worker", READY_TIMEOUT_S="2", SPARK_MASTER_WEBUI_PORT=str(free_port()))
    done = run_node(env, "--role", "worker")
    assert done.returncode == 1
    assert "did not answer within 2 s" in done.stderr
    assert not (tmp_path / "worker" / "run" / "spark-worker.pid").exists()


def test_nginx_is_found_in_sbin_for_a_user_whose_path_lacks_it(tmp_path: Path, venv: Path) -> None:
    """Debian's nginx is /usr/sbin/nginx; a normal user's PATH has no sbin. The start gets past the
    tool check and stops at the (taken) port check instead, so nothing starts."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        taken = server.getsockname()[1]
        env = node_env(tmp_path, venv, "master", SPARK_MASTER_PORT=str(taken))
        env["PATH"] = f"{Path(shutil.which('java') or '/usr/bin/java').parent}:/usr/bin:/bin"
        done = run_node(env, "--role", "master")
    assert "nginx not found" not in done.stderr
    assert f"port {taken} on 127.0.0.1 (SPARK_MASTER_PORT) is already in use" in done.stderr


# --- extra packages kept on the shared tmp dir (run-node --share-extras / --install-extras) ----------


@pytest.fixture
def real_venv(tmp_path: Path) -> Path:
    """A real, empty venv of this Python (pip in it), for run-node's installs."""
    root = tmp_path / "hail-venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    return root


def image_scripts(tmp_path: Path) -> Path:
    """run-node as an image has it: in one folder with the image's installer (packer/scripts/)."""
    folder = tmp_path / "node-scripts"
    folder.mkdir(exist_ok=True)
    for script in [*SCRIPTS.iterdir(), REPO / "packer" / "scripts" / "install-hail-env"]:
        if not (folder / script.name).exists():
            (folder / script.name).symlink_to(script)
    return folder / "run-node"


def extras_node(tmp_path: Path, venv: Path, role: str, pins: str) -> tuple[dict[str, str], Path]:
    """A node's env file beside the image's constraints (both in its etc dir), as on an image."""
    env = node_env(tmp_path, venv, role)
    etc = tmp_path / f"etc-{role}"
    etc.mkdir()
    (etc / "constraints.txt").write_text(pins)
    env_file = etc / "node.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items() if k != "PATH"))
    return {"PATH": os.environ["PATH"]}, env_file


def make_deb(folder: Path, name: str, version: str) -> Path:
    """A real, empty .deb built by dpkg-deb (what the install task pushes beside the wheels)."""
    root = folder / f".{name}"
    (root / "DEBIAN").mkdir(parents=True)
    control = f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\n"
    (root / "DEBIAN" / "control").write_text(control)
    target = folder / f"{name}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(target)], capture_output=True, check=True)
    shutil.rmtree(root)
    return target


def test_the_master_keeps_the_set_and_a_new_node_installs_it_before_starting(tmp_path: Path, real_venv: Path) -> None:
    """The master keeps the record and the wheels on the shared tmp dir; a node whose record differs
    installs exactly that set offline from there, once; the second run changes nothing."""
    from fixtures.wheels import make_wheel

    env, master_env_file = extras_node(tmp_path, real_venv, "master", "tinyextra==1.0\n")
    wheels = tmp_path / "pushed"
    make_wheel(wheels, "tinyextra", "1.0")
    make_deb(wheels, "hgi-spark-tiny", "1.0")
    record = tmp_path / "pushed.json"
    # bash: a Debian package the node has, so this test's node needs no apt (the VM test installs one)
    record.write_text('{"python": ["tinyextra==1.0"], "requested": ["tinyextra"], "system": ["bash"]}\n')
    shared = run_node(
        env, "--role", "master", "--env-file", str(master_env_file), "--share-extras", str(record), str(wheels)
    )
    assert shared.returncode == 0, shared.stderr
    share = tmp_path / "tmp" / ".hgi-spark" / "extra-packages"
    assert (share / "record.json").read_bytes() == record.read_bytes()
    assert [p.name for p in (share / "wheels").iterdir()] == ["tinyextra-1.0-py3-none-any.whl"]
    assert [p.name for p in (share / "debs").iterdir()] == ["hgi-spark-tiny_1.0_all.deb"]
    assert oct((share / "record.json").stat().st_mode & 0o777) == "0o644"

    _, worker_env_file = extras_node(tmp_path, real_venv, "worker", "tinyextra==1.0\n")
    done = run_node(
        env, "--role", "worker", "--env-file", str(worker_env_file), "--install-extras", script=image_scripts(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    assert "extra packages installed from the shared tmp dir: tinyextra==1.0 bash" in done.stderr
    imported = subprocess.run(
        [str(real_venv / "bin" / "python"), "-c", "import tinyextra; print(tinyextra.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.stdout.strip() == "1.0", imported.stderr
    assert (tmp_path / "worker" / "extra-packages.json").read_bytes() == record.read_bytes()
    again = run_node(
        env, "--role", "worker", "--env-file", str(worker_env_file), "--install-extras", script=image_scripts(tmp_path)
    )
    assert again.returncode == 0 and "extra packages" not in again.stderr, again.stderr


def test_a_set_the_image_pins_refuse_leaves_the_node_on_the_image_environment(tmp_path: Path, real_venv: Path) -> None:
    """One line naming the pin; the node still starts (exit 0), its venv and record untouched."""
    from fixtures.wheels import make_wheel

    env, env_file = extras_node(tmp_path, real_venv, "worker", "tinyextra==1.0\n")
    share = tmp_path / "tmp" / ".hgi-spark" / "extra-packages"
    make_wheel(share / "wheels", "tinyextra", "2.0")
    (share / "record.json").write_text('{"python": ["tinyextra==2.0"], "requested": ["tinyextra"], "system": []}\n')
    done = run_node(
        env, "--role", "worker", "--env-file", str(env_file), "--install-extras", script=image_scripts(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "extra packages" in line]
    assert len(lines) == 1 and "NOT installed" in lines[0] and "pins tinyextra==1.0" in lines[0], done.stderr
    assert "image's environment" in lines[0]
    assert not (tmp_path / "worker" / "extra-packages.json").exists()
    listed = subprocess.run(
        [str(real_venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tinyextra" not in listed
