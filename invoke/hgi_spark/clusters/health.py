"""What a running cluster's master says about it, through its nginx, as the user's browser sees it.

One login with the deployment's Jupyter password, then two questions, each with a bounded timeout:
the Spark master's JSON (``/spark/json/``: workers registered with their cores and memory, running
and finished applications) and Jupyter's API (``/jupyter/api/kernels``: each kernel busy or idle,
and since when). Every kind of cluster asks the same way; a master that does not answer is a
finding, never a traceback or a hang. ``idle`` is computed from the same answers.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookiejar import CookieJar
from typing import Any

#: A node's record of the extra packages install put on it (clusters/extras.py), in its state_dir.
EXTRAS_RECORD = "extra-packages.json"

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Application:
    id: str
    name: str
    user: str
    cores: int
    started: datetime
    ended: datetime | None = None


@dataclass(frozen=True)
class Kernel:
    id: str
    state: str  # busy, idle, starting ...
    last_activity: datetime | None


@dataclass
class MasterView:
    """The master's answers, or why there are none."""

    reachable: bool
    problem: str = ""
    workers: list[dict[str, Any]] = field(default_factory=list)
    running: list[Application] = field(default_factory=list)
    finished: list[Application] = field(default_factory=list)
    kernels: list[Kernel] = field(default_factory=list)
    kernels_problem: str = ""
    started: datetime | None = None  # when the master started, as far as it says


def _time(value: Any) -> datetime | None:
    """Spark's epoch milliseconds or Jupyter's ISO time, as an aware UTC datetime."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _application(entry: Mapping[str, Any]) -> Application:
    started = _time(entry.get("starttime")) or datetime.now(timezone.utc)
    duration = entry.get("duration")
    ended = None
    if entry.get("state") in ("FINISHED", "KILLED", "FAILED") and isinstance(duration, int | float):
        ended = datetime.fromtimestamp(started.timestamp() + duration / 1000, tz=timezone.utc)
    return Application(
        str(entry.get("id", "")),
        str(entry.get("name", "")),
        str(entry.get("user", "")),
        int(entry.get("cores") or 0),
        started,
        ended,
    )


class Session:
    """A browser's session with the cluster's nginx: its cookie after the Jupyter login."""

    def __init__(self, base_url: str, password: str, *, cafile: str = "") -> None:
        self.base = base_url.rstrip("/")
        self.password = password
        self.jar = CookieJar()
        handlers: list[Any] = [urllib.request.HTTPCookieProcessor(self.jar)]
        if cafile:
            import ssl

            # The deployment's own self-signed certificate, trusted alone; it names the master, not
            # the floating IP the URL has, so only the certificate is checked, not the name.
            context = ssl.create_default_context(cafile=cafile)
            context.check_hostname = False
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self.opener = urllib.request.build_opener(*handlers)

    def _xsrf(self) -> str:
        return next((c.value for c in self.jar if c.name == "_xsrf"), "") or ""

    def login(self) -> None:
        self.opener.open(f"{self.base}/jupyter/login", timeout=TIMEOUT_S).read()
        form = urllib.parse.urlencode({"_xsrf": self._xsrf(), "password": self.password}).encode()
        self.opener.open(f"{self.base}/jupyter/login", data=form, timeout=TIMEOUT_S).read()

    def json(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.base}{path}", headers={"X-XSRFToken": self._xsrf()})
        with self.opener.open(request, timeout=TIMEOUT_S) as answer:
            if "json" not in answer.headers.get("Content-Type", ""):
                raise ValueError(f"{path} did not answer JSON (not logged in?)")
            return json.loads(answer.read())


def master_view(base_url: str, password: str, *, cafile: str = "") -> MasterView:
    """Ask the master through nginx; what cannot be read is said in ``problem``."""
    session = Session(base_url, password, cafile=cafile)
    try:
        session.login()
        spark = session.json("/spark/json/")
    except (OSError, ValueError, urllib.error.URLError) as error:
        return MasterView(False, problem=f"the master does not answer at {base_url}: {error}")
    view = MasterView(True)
    view.workers = list(spark.get("workers") or [])
    view.running = [_application(a) for a in spark.get("activeapps") or []]
    view.finished = [_application(a) for a in spark.get("completedapps") or []]
    try:
        kernels = session.json("/jupyter/api/kernels")
        view.kernels = [
            Kernel(str(k.get("id", "")), str(k.get("execution_state", "")), _time(k.get("last_activity")))
            for k in kernels
        ]
    except (OSError, ValueError, urllib.error.URLError) as error:
        view.kernels_problem = f"Jupyter does not answer: {error}"
    return view


@dataclass(frozen=True)
class Idle:
    """How long the cluster has had no running application and no busy kernel."""

    idle: bool
    since: datetime | None
    why: str
    last_application: Application | None = None
    last_kernel: Kernel | None = None

    def seconds(self, now: datetime | None = None) -> float:
        if not self.idle or self.since is None:
            return 0.0
        return ((now or datetime.now(timezone.utc)) - self.since).total_seconds()


def idleness(view: MasterView, up_since: datetime | None) -> Idle:
    """Idle since the last application ended or the last kernel was active (or the cluster came up)."""
    if not view.reachable:
        return Idle(False, None, view.problem)
    if view.kernels_problem:
        return Idle(False, None, view.kernels_problem)
    if view.running:
        names = ", ".join(f"{a.name} ({a.user}, since {a.started:%H:%M}Z)" for a in view.running)
        return Idle(False, None, f"running applications: {names}")
    busy = [k for k in view.kernels if k.state not in ("idle", "dead")]
    if busy:
        return Idle(False, None, f"{len(busy)} busy Jupyter kernel(s)")
    ended = [a for a in view.finished if a.ended is not None]
    last_app = max(ended, key=lambda a: a.ended or a.started) if ended else None
    active = [k for k in view.kernels if k.last_activity is not None]
    last_kernel = max(active, key=lambda k: k.last_activity) if active else None  # type: ignore[arg-type,return-value]
    moments = [m for m in (up_since, last_app.ended if last_app else None) if m is not None]
    if last_kernel is not None and last_kernel.last_activity is not None:
        moments.append(last_kernel.last_activity)
    since = max(moments) if moments else None
    return Idle(True, since, "no running application and no busy kernel", last_app, last_kernel)


# --- per-node health, as status --nodes shows it ---------------------------------------------------------


@dataclass(frozen=True)
class Process:
    """One service of a node as ``run-node --status`` reports it."""

    name: str
    state: str  # running, dead (a stale pid file), stopped; on a system node also failed, starting ...
    pid: int | None

    def shown(self) -> str:
        return f"{self.state} (pid {self.pid})" if self.pid else self.state


def parse_status(text: str) -> list[Process]:
    """The ``NAME running|dead|stopped PID`` lines of a local node's ``run-node --status``."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("running", "dead", "stopped"):
            found.append(Process(parts[0], parts[1], int(parts[2]) if parts[2].isdigit() else None))
    return found


@dataclass(frozen=True)
class NodeHealth:
    """One node: reachable or not, each service's state, its registration with the master, its disk."""

    name: str
    role: str
    reachable: bool
    services: Mapping[str, str]
    registered: str = ""  # worker: "ALIVE, 2 cores, 3677 MiB" or why not
    tmp_free: str = ""
    detail: str = ""
    extras: str = ""  # the extra packages it has (its record), "" when none were installed

    @property
    def healthy(self) -> bool:
        running = all(state.startswith("running") for state in self.services.values())
        return self.reachable and running and (self.role != "worker" or self.registered.startswith("ALIVE"))


@dataclass
class ClusterHealth:
    """Every node, the master's applications and kernels: rows for people, a dict for --json."""

    nodes: list[NodeHealth]
    view: MasterView

    def rows(self) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = []
        for node in self.nodes:
            if not node.reachable:
                rows.append((node.name, f"UNREACHABLE: {node.detail}"))
                continue
            services = ", ".join(f"{name} {state}" for name, state in node.services.items())
            extra = [
                part
                for part in (
                    node.registered and f"registered: {node.registered}",
                    node.tmp_free,
                    node.extras and f"extra packages: {node.extras}",
                )
                if part
            ]
            verdict = "ok" if node.healthy else "DOWN"
            rows.append((node.name, "; ".join([f"{verdict}: {services}", *extra])))
        if not self.view.reachable:
            rows.append(("master", self.view.problem))
        for app in self.view.running:
            rows.append(
                (
                    f"application {app.id}",
                    f"{app.name}, {app.user}, {app.cores} cores, since {app.started:%Y-%m-%d %H:%M}Z",
                )
            )
        for kernel in self.view.kernels:
            since = f" since {kernel.last_activity:%Y-%m-%d %H:%M}Z" if kernel.last_activity else ""
            rows.append((f"kernel {kernel.id[:8]}", f"{kernel.state}{since}"))
        if self.view.kernels_problem:
            rows.append(("kernels", self.view.kernels_problem))
        return rows

    def text(self, *, as_json: bool = False) -> str:
        if as_json:
            return json.dumps(self.as_dict(), indent=2)
        from hgi_spark.core import tables

        return tables.table(self.rows(), headers=("node", "health"))

    def as_dict(self) -> dict[str, Any]:
        def app(a: Application) -> dict[str, Any]:
            return {"id": a.id, "name": a.name, "user": a.user, "cores": a.cores, "started": a.started.isoformat()}

        return {
            "nodes": [
                {
                    "name": n.name,
                    "role": n.role,
                    "reachable": n.reachable,
                    "healthy": n.healthy,
                    "services": dict(n.services),
                    "registered": n.registered,
                    "tmp_free": n.tmp_free,
                    "detail": n.detail,
                    "extra_packages": n.extras,
                }
                for n in self.nodes
            ],
            "master": {"reachable": self.view.reachable, "problem": self.view.problem},
            "applications": [app(a) for a in self.view.running],
            "kernels": [
                {
                    "id": k.id,
                    "state": k.state,
                    "last_activity": k.last_activity.isoformat() if k.last_activity else None,
                }
                for k in self.view.kernels
            ],
        }


def registration(view: MasterView, webui: str) -> str:
    """A worker's registration as the master lists it (by its web UI address)."""
    if not view.reachable:
        return "unknown (the master does not answer)"
    for worker in view.workers:
        if worker.get("webuiaddress") == webui:
            return f"{worker.get('state')}, {worker.get('cores')} cores, {worker.get('memory')} MiB"
    return "not registered with the master"


def tmp_space(free: int, total: int) -> str:
    """The shared tmp's free space as every kind shows it (bytes in, GiB out)."""
    return f"shared tmp: {free / 2**30:.1f} GiB free of {total / 2**30:.1f}"


def free_space(path: str) -> str:
    import shutil

    try:
        usage = shutil.disk_usage(path)
    except OSError as error:
        return f"shared tmp: {error.strerror}"
    return tmp_space(usage.free, usage.total)


def extras_shown(text: str) -> str:
    """A node's record of its extra packages (``EXTRAS_RECORD``) for a status row; empty when it has none."""
    try:
        record = json.loads(text)
    except ValueError:
        return "unreadable record" if text.strip() else ""
    return ", ".join([*record.get("python", []), *record.get("system", [])]) or "none"
