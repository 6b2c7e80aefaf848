"""Extra packages on every node: resolved on this machine, then pushed to each node and installed
there with the image's own installer, so a conflict is refused before any node is touched.

The deployment's ``extra_python_packages`` (pip requirements) are resolved here with pip's
``--dry-run --report`` for the image's Python and platform, under the image's pip constraints plus
its hail, pyspark and jupyterlab pins: the answer is the exact ``NAME==VERSION`` set of the
distributions the image lacks, or one line naming the pin a requirement contradicts. Their wheels
are downloaded here (nodes on private networks, and the VM cluster's VMs, have no internet) and
kept in the cache by the digest of the request, so one request resolves once and every node (and a
worker added later) gets exactly the same set.

On a cloud or VM node (``install_nodes``) a bash script on ssh's stdin carries the wheels (and the
.debs resolved here against the master's apt, clusters/debs.py) as a base64 tarball, installs the
missing Debian packages from those .debs with ``apt-get`` and the wheels with the
image's ``install-hail-env`` into the image's Hail venv (as root, ``sudo -n`` for the image's
user), and writes ``<state_dir>/extra-packages.json``, which ``status --nodes`` reads back. The
local cluster installs the same set into a prefix of its own (clusters/local/prefix.py).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hgi_spark.clusters import debs, health, nodes, remote
from hgi_spark.core.config import Deployment, Image
from hgi_spark.core.errors import ConfigError, NotFoundError, ToolError
from hgi_spark.core.files import write_atomic
from hgi_spark.core.layout import cache_dir

INSTALL_TIMEOUT_S = 1200.0  # one node: unpack, apt-get, pip, byte-compile (minutes under emulation)
# A node whose ssh failed before the script started is asked again (the script is idempotent): four
# emulated VMs on two cores made the master's sshd miss the banner deadline of the workers' jumps.
INSTALL_RECONNECTS = 3
# The image is Debian 12 on x86_64 (glibc 2.36): wheels for any manylinux up to that glibc fit it.
PLATFORMS = (*(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)), "manylinux2014_x86_64")
# What pip may read of this machine's settings: the index it reaches by default (PIP_INDEX_URL,
# PIP_CERT), never a local find-links, constraints or extra index (as make-wheelhouse).
#: Where an item of extra_python_packages is written (its index; None: the key), for error lines.
Where = Callable[[int | None], str]
_PIP_UNSET = ("PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_REQUIREMENT")


@dataclass(frozen=True)
class Wanted:
    """What the deployment's YAML asks for, as written."""

    python: tuple[str, ...] = ()
    system: tuple[str, ...] = ()

    @classmethod
    def of(cls, deployment: Deployment) -> Wanted:
        return cls(tuple(deployment.extra_python_packages), tuple(deployment.extra_system_packages))

    def __bool__(self) -> bool:
        return bool(self.python or self.system)

    def shown(self) -> str:
        return ", ".join([*self.python, *self.system]) or "none"


@dataclass(frozen=True)
class Resolution:
    """The exact set a request resolved to: new distributions (with their wheels here) and Debian names."""

    key: str
    pins: tuple[str, ...]  # NAME==VERSION of every distribution the image's venv lacks, sorted
    system: tuple[str, ...]
    requested: tuple[str, ...]
    wheels: Path

    def record(self) -> dict[str, Any]:
        """What a node keeps in its state dir, and what ``status --nodes`` shows."""
        return {"python": list(self.pins), "system": list(self.system), "requested": list(self.requested)}

    def shown(self) -> str:
        return ", ".join([*self.pins, *self.system]) or "none (the image has them all)"


# --- resolving on this machine ---------------------------------------------------------------------


def image_pins(image: Image) -> dict[str, str]:
    """Canonical name -> version of everything the image's venv holds (constraints + its own three)."""
    pins: dict[str, str] = {}
    if image.constraints_file is not None:
        for line in image.constraints_file.read_text(encoding="utf-8").splitlines():
            text = line.split("#", 1)[0].split(";", 1)[0].strip()
            name, sep, version = text.partition("==")
            if sep and name.strip():
                pins[canonicalize_name(name.strip())] = version.strip()
    software = image.software
    pins.update({"hail": software.hail, "pyspark": software.pyspark, "jupyterlab": software.jupyterlab})
    return pins


def request_key(image: Image, wanted: Wanted) -> str:
    """The digest of a request: the YAML's lists, the image's pins, Python and platforms."""
    document = {
        "python": sorted(wanted.python),
        "system": sorted(set(wanted.system)),
        "pins": image_pins(image),
        "interpreter": image.software.python,
        "platforms": PLATFORMS,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def _folder(key: str) -> Path:
    return cache_dir() / "extras" / key


def resolved(image: Image, wanted: Wanted) -> Resolution | None:
    """The resolution of this request made earlier (no network), or None."""
    key = request_key(image, wanted)
    try:
        stored = json.loads((_folder(key) / "resolution.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    wheels = _folder(key) / "wheels"
    if not wheels.is_dir():
        return None
    return Resolution(key, tuple(stored["python"]), tuple(stored["system"]), tuple(stored["requested"]), wheels)


def refuse_pinned(image: Image, wanted: Wanted, where: Where) -> None:
    """A requirement the image's pins contradict (``numpy==1.26.4`` against ``numpy==2.4.6``), in one
    line without asking pip."""
    pins = image_pins(image)
    for index, text in enumerate(wanted.python):
        requirement = Requirement(text)
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is not None and not requirement.specifier.contains(pinned, prereleases=True):
            raise ConfigError(
                f"'{text}' conflicts with the image's pin {requirement.name}=={pinned} "
                f"({image.ref} constraints); nothing was installed",
                file=where(index),
                key="extra_python_packages",
                fix=f"allow {requirement.name} {pinned} or remove the requirement; the image's version stays",
            )


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PIP_UNSET}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _target_options(image: Image) -> list[str]:
    python = image.software.python
    options = ["--only-binary", ":all:", "--python-version", python, "--implementation", "cp"]
    options += ["--abi", "cp" + python.replace(".", "")]
    for platform in PLATFORMS:
        options += ["--platform", platform]
    return options


def conflict_line(stderr: str) -> str:
    """pip's explanation of a failed resolution in one line: the conflict's causes, or its last error."""
    lines = stderr.splitlines()
    if "The conflict is caused by:" in lines:
        start = lines.index("The conflict is caused by:") + 1
        causes = []
        for line in lines[start:]:
            if not line.strip():
                break
            causes.append(line.strip().replace("The user requested (constraint)", "the image pins"))
        if causes:
            return "; ".join(causes)
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
    return errors[-1] if errors else (lines[-1] if lines else "pip failed")


def _pip(argv: list[str], what: str, where: Where) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *argv], env=_pip_env(), capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise ConfigError(
            f"{what}: {conflict_line(result.stderr)}; nothing was installed",
            file=where(None),
            key="extra_python_packages",
            fix="change or remove the requirement; the image's pins win",
        )


def resolve(image: Image, wanted: Wanted, *, where: Where, say: Callable[[str], None]) -> Resolution:
    """The exact set for this request, resolved and downloaded once (later calls read the cache)."""
    found = resolved(image, wanted)
    if found is not None:
        return found
    refuse_pinned(image, wanted, where)
    key = request_key(image, wanted)
    folder = _folder(key)
    folder.parent.mkdir(parents=True, exist_ok=True)
    pins = image_pins(image)
    build = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        wheels = build / "wheels"
        wheels.mkdir()
        new: list[str] = []
        if wanted.python:
            say(f"resolving {', '.join(wanted.python)} for Python {image.software.python} under {image.ref}'s pins")
            constraints = build / "constraints.txt"
            constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
            report = build / "report.json"
            _pip(
                [
                    *("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report)),
                    *("--target", str(build / "target"), *_target_options(image)),
                    *("--constraint", str(constraints), *wanted.python),
                ],
                f"{', '.join(wanted.python)} cannot be installed beside {image.ref}'s Hail stack",
                where,
            )
            for item in json.loads(report.read_text(encoding="utf-8")).get("install", []):
                name, version = item["metadata"]["name"], item["metadata"]["version"]
                if pins.get(canonicalize_name(name)) != version:
                    new.append(f"{canonicalize_name(name)}=={version}")
            new.sort()
        if new:
            say(f"downloading the wheels of {', '.join(new)}")
            _pip(
                ["download", "--no-deps", "--quiet", "--dest", str(wheels), *_target_options(image), *new],
                f"the wheels of {', '.join(new)} could not be downloaded",
                where,
            )
        stored = {"python": new, "system": sorted(set(wanted.system)), "requested": list(wanted.python)}
        (build / "resolution.json").write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(build / "target", ignore_errors=True)
        (build / "report.json").unlink(missing_ok=True)
        if folder.exists():  # another run resolved it meanwhile (or left half of it): this one wins
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(build, folder)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    result = resolved(image, wanted)
    assert result is not None
    return result


def resolve_for(deployment: Deployment, image: Image, say: Callable[[str], None]) -> Resolution:
    """The deployment's request resolved (its YAML named in errors)."""

    def where(index: int | None) -> str:
        return deployment.where(("extra_python_packages",) if index is None else ("extra_python_packages", index))

    return resolve(image, Wanted.of(deployment), where=where, say=say)


# --- on the nodes ---------------------------------------------------------------------------------------


def tarball(wheels: Path, debs: Sequence[Path] = ()) -> str:
    """The wheels (and .debs) as one base64 line (a gzip'd tar), for a here-document on ssh's stdin."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for file in [*sorted(wheels.glob("*.whl")), *debs]:
            tar.add(file, arcname=file.name)
    return base64.b64encode(data.getvalue()).decode("ascii")


# The result is the last "@@ result STATE TEXT" line; everything goes to stdout (errors included).
# Distributions an earlier record lists that the new set lacks are uninstalled (the record only
# ever lists what the image lacks, so nothing of the image's goes); the master then keeps the set on
# the shared tmp dir (run-node --share-extras) for nodes that boot later.
_INSTALL = """set -u
exec 2>&1
record={record}
wanted={wanted}
as_root=()
if [ "$(id -u)" -ne 0 ]; then as_root=(sudo -n); fi
result() {{ echo "@@ result $*"; exit 0; }}
reason() {{ local found; found="$(grep -E "$1" "$2" | tail -n 1)"; echo "${{found:-$(tail -n 1 "$2")}}"; }}
work="$(mktemp -d)" || result failed "mktemp failed"
trap 'rm -rf "$work"' EXIT
base64 -d >"$work/wheels.tar.gz" <<'{end}' || result failed "the wheels did not arrive"
{tarball}
{end}
mkdir "$work/wheels" && tar -xzf "$work/wheels.tar.gz" -C "$work/wheels" \\
  || result failed "the wheels could not be unpacked"
chmod -R a+rX "$work"
changed=""
missing=()
for package in {system}; do
  dpkg-query -W -f='${{Status}}' "$package" 2>/dev/null | grep -q ' installed$' || missing+=("$package")
done
if [ "${{#missing[@]}}" -gt 0 ]; then
  # The .debs resolved here (installed offline), or the node's own apt sources when none came.
  if ! "${{as_root[@]}}" {run_node} --role {role} --env-file {env_file} --install-debs "$work/wheels" \\
    "${{missing[@]}}" >"$work/apt.log" 2>&1; then
    result failed "apt-get install ${{missing[*]}}: $(reason '^(E: |still missing: )' "$work/apt.log")"
  fi
  changed="${{missing[*]}}"
fi
pins=({pins})
dropped=()
if [ -r "$record" ]; then
  mapfile -t dropped < <({venv}/bin/python -c '
import json, sys
keep = {{pin.partition("==")[0] for pin in sys.argv[2:]}}
had = [pin.partition("==")[0] for pin in json.load(open(sys.argv[1])).get("python", [])]
print(*(name for name in had if name not in keep), sep="\\n")
' "$record" ${{pins[@]+"${{pins[@]}}"}} 2>/dev/null | grep .)
fi
if [ "${{#dropped[@]}}" -gt 0 ]; then
  if ! "${{as_root[@]}}" {venv}/bin/python -m pip uninstall --yes --quiet "${{dropped[@]}}" \\
    >"$work/uninstall.log" 2>&1; then
    result failed "pip uninstall ${{dropped[*]}}: $(tail -n 1 "$work/uninstall.log")"
  fi
fi
if [ "${{#pins[@]}}" -gt 0 ]; then
  if ! "${{as_root[@]}}" {installer} --venv {venv} --python {python} --constraints {constraints} \\
    --find-links "$work/wheels" "${{pins[@]}}" >"$work/pip.log" 2>&1; then
    result failed "$(reason ': error: ' "$work/pip.log")"
  fi
  grep -q 'already holds' "$work/pip.log" || changed="${{changed:+$changed }}${{pins[*]}}"
fi
if [ "$(cat "$record" 2>/dev/null)" != "$wanted" ]; then
  printf '%s\\n' "$wanted" | "${{as_root[@]}}" tee "$record.new" >/dev/null \\
    && "${{as_root[@]}}" mv "$record.new" "$record" || result failed "could not write $record"
fi
if [ {role} = master ]; then
  "${{as_root[@]}}" {run_node} --role master --env-file {env_file} --share-extras "$record" "$work/wheels" \\
    >"$work/share.log" 2>&1 \\
    || result failed "installed, but not kept for nodes that boot later: $(tail -n 1 "$work/share.log")"
fi
summary=""
[ -z "$changed" ] || summary="installed $changed"
[ "${{#dropped[@]}}" -eq 0 ] || summary="${{summary:+$summary; }}removed ${{dropped[*]}}"
if [ -n "$summary" ]; then result changed "$summary"; else result unchanged; fi
"""


def install_script(resolution: Resolution, image: Image, packed: str, role: str) -> str:
    """The bash script one node runs (as the image's user, root through ``sudo -n``)."""
    q = shlex.quote
    layout = image.layout
    return _INSTALL.format(
        record=q(f"{layout.state_dir}/{health.EXTRAS_RECORD}"),
        wanted=q(json.dumps(resolution.record(), sort_keys=True)),
        end=f"HGI_EXTRAS_{resolution.key}",
        tarball=packed,
        system=" ".join(q(name) for name in resolution.system),
        pins=" ".join(q(pin) for pin in resolution.pins),
        installer=q(f"{layout.node_scripts_dir}/install-hail-env"),
        run_node=q(f"{layout.node_scripts_dir}/run-node"),
        env_file=q(f"{layout.etc_dir}/node.env"),
        role=q(role),
        venv=q(layout.hail_venv),
        python=q(image.software.python),
        constraints=q(f"{layout.etc_dir}/constraints.txt"),
    )


@dataclass(frozen=True)
class NodeResult:
    """One node's line: installed, unchanged, or why it failed."""

    name: str
    ok: bool
    line: str


@dataclass(frozen=True)
class InstallReport:
    """``install``'s answer: one line per node, and what was asked for."""

    resolution: Resolution | None
    results: tuple[NodeResult, ...]
    note: str = ""
    needs_update: bool = False  # the local cluster: its nodes restart onto the new prefix by an update

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if not r.ok]

    def text(self) -> str:
        lines = [f"{r.name}: {r.line}" for r in self.results]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


def node_result(name: str, ok: bool, stdout: str, problem: str) -> NodeResult:
    """A node's answer as its line: the script's result, or ssh's reason for none."""
    if not ok:
        return NodeResult(name, False, f"FAILED: {problem}")
    results = [line[len("@@ result ") :] for line in stdout.splitlines() if line.startswith("@@ result ")]
    if not results:
        last = [line for line in stdout.splitlines() if line.strip()]
        return NodeResult(name, False, f"FAILED: {last[-1] if last else 'no answer from the install script'}")
    state, _, text = results[-1].partition(" ")
    if state == "changed":
        return NodeResult(name, True, f"ok: {text}")
    if state == "unchanged":
        return NodeResult(name, True, "ok: unchanged (it had them all)")
    return NodeResult(name, False, f"FAILED: {text}")


def _debs_for(
    deployment: Deployment,
    image: Image,
    outputs: Mapping[str, Any],
    known_hosts: Path,
    resolution: Resolution,
    port: int,
    say: Callable[[str], None],
) -> list[Path]:
    """The .debs of the Debian packages a node of the image lacks, resolved here against the master's
    apt (clusters/debs.py): nodes on private networks reach no mirror, and the image keeps no lists."""
    if not resolution.system:
        return []
    if shutil.which("apt-get") is None:
        say(
            f"apt-get is not on this machine: the nodes install {', '.join(resolution.system)} "
            "from their own apt sources"
        )
        return []
    master = remote.nodes(outputs)[0]
    script = debs.facts_script(image.layout.state_dir)
    answer = nodes.ask(
        outputs, known_hosts, master, script, port=port, deployment=str(deployment.ref), reconnects=INSTALL_RECONNECTS
    )
    if not answer.ok:
        raise ToolError(
            f"{master.name} did not say what its apt has ({answer.problem}); nothing was installed",
            fix=f"check the master with: {deployment.ref.command('status --nodes')}",
        )
    where = deployment.where(("extra_system_packages",))
    return debs.resolve(debs.NodeApt.parse(answer.stdout), resolution.system, where=where, say=say).files()


def install_nodes(
    deployment: Deployment,
    image: Image,
    outputs: Mapping[str, Any],
    read_console: Callable[[str], str],
    resolution: Resolution,
    say: Callable[[str], None],
) -> InstallReport:
    """The resolved set onto every node at once over ssh; a failing node is a line, the others go on."""
    if not remote.nodes(outputs):
        up = deployment.ref.command("up")
        raise NotFoundError(f"deployment {deployment.ref} is not up", fix=f"bring it up: {up}")
    known_hosts = deployment.paths.known_hosts
    nodes.pin_missing(outputs, read_console, known_hosts)
    port = int((deployment.settings.get("ports") or {}).get("ssh", 22))
    packed = tarball(resolution.wheels, _debs_for(deployment, image, outputs, known_hosts, resolution, port, say))
    say(f"installing {resolution.shown()} on {len(remote.nodes(outputs))} node(s) over ssh")
    answers = nodes.fan_out(
        outputs,
        known_hosts,
        lambda node: install_script(resolution, image, packed, node.role),
        port=port,
        deployment=str(deployment.ref),
        timeout_s=INSTALL_TIMEOUT_S,
        say=lambda text: say(f"install: {text}"),
        reconnects=INSTALL_RECONNECTS,
    )
    results = tuple(node_result(a.node.name, a.ok, a.stdout, a.problem) for a in answers)
    return InstallReport(resolution, results)


def require_all(report: InstallReport, deployment: Deployment, when: str) -> None:
    """After up/update: the cluster is applied, but a node without the extras makes it uneven."""
    if report.failed:
        names = ", ".join(f"{r.name} ({r.line.removeprefix('FAILED: ')})" for r in report.failed)
        raise ToolError(
            f"{when}: extra packages missing on {names}",
            fix=f"the others have them; fix the cause, then run: {deployment.ref.command('install')}",
        )


def record_file(path: Path, resolution: Resolution) -> Path:
    """The same record on this machine (the local cluster's prefix keeps one)."""
    return write_atomic(path, json.dumps(resolution.record(), sort_keys=True) + "\n")


def missing_debian(names: Sequence[str]) -> list[str]:
    """Debian packages of ``names`` this machine lacks (dpkg's view)."""
    missing = []
    for name in names:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True, check=False)
        if not done.stdout.endswith(" installed"):
            missing.append(name)
    return missing


def install_on(
    deployment: Deployment,
    image: Image,
    outputs: Mapping[str, Any],
    read_console: Callable[[str], str],
    say: Callable[[str], None],
) -> InstallReport:
    """``install`` of a cloud or VM cluster: resolve here (or refuse), then every node over ssh. An
    empty list still asks the nodes: what an earlier list installed goes, and so does the set the
    master keeps for nodes that boot later."""
    return install_nodes(deployment, image, outputs, read_console, resolve_for(deployment, image, say), say)


def after_ready(
    deployment: Deployment,
    image: Image,
    outputs: Mapping[str, Any],
    read_console: Callable[[str], str],
    say: Callable[[str], None],
) -> None:
    """After up/update, once the nodes are ready: a node that lacks the YAML's extras (a new worker)
    gets them, the others answer "unchanged"; a node that could not is one error naming it."""
    if not Wanted.of(deployment):
        return
    report = install_on(deployment, image, outputs, read_console, say)
    for result in report.results:
        say(f"extra packages: {result.name}: {result.line}")
    require_all(report, deployment, "the cluster is up")
