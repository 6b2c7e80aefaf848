"""Clients for the local cluster's end-to-end tests and benchmark (no tests of its own live here).

- LocalCluster: a spark-local deployment in a temporary copy of the repository's definitions,
  driven through the real front door (``bash invoke.sh deployment spark-local/<owner> ...``).
- Jupyter: login through nginx, kernels through the server's REST API and websocket.
- screenshot(): Debian's headless Chromium, driven over its DevTools websocket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
import websocket
import yaml

REPO = Path(__file__).resolve().parents[2]
RUN_NODE = REPO / "terraform" / "modules" / "spark-node" / "scripts" / "run-node"


def snippet(marker: str) -> str:
    """The code block after ``<!-- hgi:MARKER -->`` in README.md: the tests run what users read."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    tag = f"<!-- hgi:{marker} -->"
    assert tag in text, f"no snippet hgi:{marker} in README.md"
    return text.split(tag, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def readme_job() -> str:
    """The README's initialisation and job, as one script that prints the count."""
    return snippet("hail-init") + "\n" + snippet("hail-job")


# --- the deployment -----------------------------------------------------------------------------------


class LocalCluster:
    """One spark-local deployment in its own repository tree (the prefix cache is the user's)."""

    def __init__(self, root: Path, owner: str, ports: Mapping[str, int], workers: int = 1) -> None:
        self.root = root
        self.owner = owner
        self.ports = dict(ports)
        self.name = f"spark-local/{owner}"
        self.folder = root / "deployments" / "spark-local" / owner
        if not (root / "terraform").exists():
            shutil.copytree(REPO / "terraform", root / "terraform", ignore=shutil.ignore_patterns(".terraform*"))
            shutil.copytree(REPO / "images", root / "images")
            shutil.copytree(REPO / "packer" / "scripts", root / "packer" / "scripts")  # the prefix's installer
            (root / "deployments" / "spark-local").mkdir(parents=True)
            shutil.copy(REPO / "deployments" / "defaults.yml", root / "deployments" / "defaults.yml")
            shutil.copy(
                REPO / "deployments" / "spark-local" / "defaults.yml",
                root / "deployments" / "spark-local" / "defaults.yml",
            )
        self.define(workers)

    def define(self, workers: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        document = {"workers": workers, "ports": self.ports}
        (self.folder / "deployment.yml").write_text(yaml.safe_dump(document), encoding="utf-8")

    def env(self) -> dict[str, str]:
        env = dict(os.environ, HGI_REPOSITORY=str(self.root))
        env.setdefault("TF_CLI_CONFIG_FILE", str(self.root / "empty.tfrc"))
        (self.root / "empty.tfrc").touch()
        return env

    def invoke(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        command = ["bash", str(REPO / "invoke.sh"), "deployment", self.name, *args]
        # cwd: Hail writes its log file into the driver's working directory
        done = subprocess.run(
            command, env=self.env(), cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}")
        return done

    def state(self) -> dict[str, Any]:
        path = self.folder / "terraform.tfstate"
        return json.loads(path.read_text()) if path.is_file() else {}

    def outputs(self) -> dict[str, Any]:
        return {k: v["value"] for k, v in self.state().get("outputs", {}).items()}

    def nodes(self) -> dict[str, dict[str, str]]:
        """node key -> its run-node environment, from the state."""
        nodes = {}
        for resource in self.state().get("resources", []):
            for instance in resource.get("instances", []):
                env = instance["attributes"]["input"]["value"]["env"]
                key = "master" if resource["name"] == "master" else str(instance["index_key"])
                nodes[key] = env
        return nodes

    def pids(self) -> dict[str, int]:
        """Every pid file under runtime/ whose process is alive: 'node/process' -> pid."""
        found = {}
        for pid_file in (self.folder / "runtime").glob("*/run/*.pid"):
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, 0)
            except (OSError, ValueError):
                continue
            found[f"{pid_file.parent.parent.name}/{pid_file.stem}"] = pid
        return found

    def master_json(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports['spark_master_ui']}/json/"
        return requests.get(url, timeout=5).json()

    def http_port(self) -> int:
        return int(self.nodes()["master"]["HTTP_PORT"])

    def all_ports(self, workers: int = 4) -> list[int]:
        p = self.ports
        ports = [p["spark_master"], p["spark_master_ui"], p["jupyter"], p["http"]]
        return ports + [p["spark_worker_ui"] + i for i in range(workers)]

    def force_stop(self) -> None:
        """Safety net after a failed test: stop every node with run-node --stop, those in the state
        and those a killed apply left outside it (their environment is in runtime/NODE/node.env)."""
        for key, env in self.nodes().items():
            role = "master" if key == "master" else "worker"
            subprocess.run(
                [str(RUN_NODE), "--role", role, "--stop"], env={**os.environ, **env}, capture_output=True, check=False
            )
        for env_file in (self.folder / "runtime").glob("*/node.env"):
            role = "master" if env_file.parent.name == "master" else "worker"
            subprocess.run(
                [str(RUN_NODE), "--role", role, "--env-file", str(env_file), "--stop"], capture_output=True, check=False
            )

    def down(self) -> None:
        self.invoke("plan", "--to", "destroy")
        self.invoke("down")


def port_listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --- Jupyter --------------------------------------------------------------------------------------------


class Jupyter:
    """A user of JupyterLab behind nginx: password login, kernels over REST and websocket."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/") + "/"
        self.http = requests.Session()

    def login(self, password: str | None) -> int:
        """POST the login form; 302 means logged in, anything else refused."""
        self.http.get(self.base + "login", timeout=10)
        xsrf = self.http.cookies.get("_xsrf", "")
        data = {"_xsrf": xsrf}
        if password is not None:
            data["password"] = password
        answer = self.http.post(self.base + "login", data=data, allow_redirects=False, timeout=10)
        return answer.status_code

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"X-XSRFToken": self.http.cookies.get("_xsrf", "")}
        return self.http.request(method, self.base + "api/" + path, headers=headers, timeout=30, **kwargs)

    def start_kernel(self) -> str:
        answer = self.api("POST", "kernels", json={"name": "python3"})
        answer.raise_for_status()
        return answer.json()["id"]

    def stop_kernel(self, kernel_id: str) -> None:
        self.api("DELETE", f"kernels/{kernel_id}")

    def execute(self, kernel_id: str, code: str, timeout: float = 300) -> str:
        """Run code in the kernel over its websocket; return what it printed, raise on an error."""
        ws_url = self.base.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        connection = websocket.create_connection(ws_url, header=[f"Cookie: {cookie}"], timeout=timeout)
        session, msg_id = uuid.uuid4().hex, uuid.uuid4().hex
        request = {
            "header": {
                "msg_id": msg_id,
                "username": "e2e",
                "session": session,
                "msg_type": "execute_request",
                "version": "5.3",
                "date": datetime.now(timezone.utc).isoformat(),
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        output: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            connection.send(json.dumps(request))
            idle = replied = False
            while not (idle and replied):
                if time.monotonic() > deadline:
                    raise AssertionError(f"kernel did not finish in {timeout} s; output so far: {''.join(output)}")
                message = json.loads(connection.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = message["msg_type"], message["content"]
                if kind == "stream" and content.get("name") == "stdout":
                    output.append(content["text"])
                elif kind == "execute_result":
                    output.append(content["data"].get("text/plain", "") + "\n")
                elif kind == "error":
                    raise AssertionError(f"{content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"]))
                elif kind == "status" and content.get("execution_state") == "idle":
                    idle = True
                elif kind == "execute_reply":
                    replied = True
        finally:
            connection.close()
        return "".join(output)


# --- Chromium -------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--window-size=1280,800",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


@contextmanager
def chromium(*flags: str) -> Iterator[websocket.WebSocket]:
    """Debian's headless Chromium with a fresh profile; yields a DevTools connection to its page."""
    binary = shutil.which("chromium")
    if binary is None:
        raise AssertionError("chromium not found: tests/run installs it (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="hgi-chromium-"))
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.is_file() and active.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = active.read_text().split()[0]
        pages = []
        while not pages:
            pages = [
                t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json() if t["type"] == "page"
            ]
            time.sleep(0.1)
        connection = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], suppress_origin=True, timeout=60)
        try:
            yield connection
        finally:
            connection.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


class DevTools:
    """The few DevTools protocol calls a login and a screenshot need."""

    def __init__(self, connection: websocket.WebSocket) -> None:
        self.connection = connection
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.connection.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.connection.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {expression} (at {self.evaluate('location.href')})")
            time.sleep(0.25)


def spki_pin(certificate: Path) -> str:
    """The base64 SHA-256 of a certificate's public key: what Chromium is told to trust, and nothing else."""
    public = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(certificate)], capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=public, capture_output=True, check=True
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def login_and_screenshot(jupyter_url: str, password: str, png: Path, *, certificate: Path | None = None) -> str:
    """Open Jupyter, log in through its form, wait for JupyterLab, save a PNG; returns the final URL.

    ``certificate``: a self-signed one the browser trusts by its key alone, as a user who compared
    its fingerprint would (any other certificate is still refused)."""
    flags = [f"--ignore-certificate-errors-spki-list={spki_pin(certificate)}"] if certificate else []
    with chromium(*flags) as connection:
        tools = DevTools(connection)
        tools.call("Page.enable")
        tools.call("Page.navigate", url=jupyter_url)
        tools.wait_for("!!document.querySelector('input[type=password]')")
        tools.evaluate(
            f"document.querySelector('input[type=password]').value = {json.dumps(password)};"
            "document.querySelector('input[type=password]').form.submit(); true"
        )
        tools.wait_for("location.pathname.startsWith('/jupyter/lab') && !!document.querySelector('.jp-LabShell')")
        tools.wait_for("document.querySelectorAll('.jp-LauncherCard').length > 0", timeout=60)
        time.sleep(1)
        shot = tools.call("Page.captureScreenshot", format="png")
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(base64.b64decode(shot["data"]))
        return str(tools.evaluate("location.href"))
