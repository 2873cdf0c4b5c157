"""The real prometheus-operator for the local cluster: built from its Go module, cached by version, run as a host
process with the cluster's kubeconfig.

The build (``python -m testbed build-operator``, run by ``nox -s cluster -- build``) downloads the module and
its two nested modules (``pkg/apis/monitoring``, ``pkg/client``: the main module's go.mod replaces them with
``./pkg/...`` and its zip lacks them), compiles ``cmd/operator`` and ``cmd/prometheus-config-reloader``, and writes
an OCI archive of the reloader (the operator injects it into every Prometheus pod, and no registry is reachable).
Everything lands in ``/var/cache/prom-harness/prometheus-operator-<version>/``; a step whose output is there is
skipped. The CRDs ship in the module (``example/prometheus-operator-crd``) and are copied next to the binaries.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from testbed import config, oci

if TYPE_CHECKING:
    from harness.proc import Completed

VERSION = "v0.85.0"  # the only version the module proxy here serves
MODULE = "github.com/prometheus-operator/prometheus-operator"
NESTED = ("pkg/apis/monitoring", "pkg/client")
RELOADER_IMAGE = f"localhost/harness/prometheus-config-reloader:{VERSION}"  # not :latest: never pulled
GO_BUILD_TIMEOUT_S = 3600.0  # the operator links most of client-go: ~15 min on 2 busy cores
DOWNLOAD_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 60.0  # the operator answers /healthz a second or two after start (CRD discovery, informers)


def cache_dir(version: str = VERSION) -> Path:
    return config.CACHE_ROOT / f"prometheus-operator-{version}"


def operator_bin(version: str = VERSION) -> Path:
    return cache_dir(version) / "bin" / "operator"


def reloader_archive(version: str = VERSION) -> Path:
    return cache_dir(version) / "images" / "prometheus-config-reloader.tar"


def crd_dir(version: str = VERSION) -> Path:
    return cache_dir(version) / "crds"


def _log(msg: str) -> None:
    print(f"[operator build] {msg}", flush=True)


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise SystemExit("go is not installed: the operator is built from its Go module")
    return go


def _download(module: str, version: str) -> Path:
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@{version}"],
        check=True, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S,
    ).stdout  # fmt: skip
    return Path(json.loads(out)["Dir"])


def write_module(src: Path, version: str) -> None:
    """The main module with its nested modules where its go.mod's replace directives expect them (writable: the
    module cache is read-only)."""
    tmp = src.with_name(src.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(_download(MODULE, version), tmp)
    for nested in NESTED:
        shutil.rmtree(tmp / nested, ignore_errors=True)
        shutil.copytree(_download(f"{MODULE}/{nested}", version), tmp / nested)
    for path in [tmp, *tmp.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    tmp.rename(src)


def _go_build(src: Path, package: str, target: Path) -> float:
    # Go's defaults (cgo where a C compiler is): both commands share most of client-go, so the second build reuses
    # the first one's compiled packages; the reloader's image gets the libraries it links (oci.with_libraries).
    env = dict(os.environ)
    start = time.monotonic()
    subprocess.run(
        ["nice", "-n", "10", _go(), "build", "-o", str(target) + ".partial", package],
        check=True, cwd=src, env=env, timeout=GO_BUILD_TIMEOUT_S,
    )  # fmt: skip
    Path(str(target) + ".partial").replace(target)
    return round(time.monotonic() - start, 1)


def is_built(version: str = VERSION) -> bool:
    return (cache_dir(version) / "build.json").exists()


def build(version: str = VERSION) -> None:
    started = time.monotonic()
    src = cache_dir(version) / "src"
    if not (src / "go.mod").exists():
        _log(f"go mod download {MODULE}@{version} (+ {', '.join(NESTED)})")
        src.parent.mkdir(parents=True, exist_ok=True)
        write_module(src, version)
    timings: dict[str, float] = {}
    reloader = cache_dir(version) / "bin" / "prometheus-config-reloader"
    reloader.parent.mkdir(parents=True, exist_ok=True)
    for target, package in ((operator_bin(version), "operator"), (reloader, "reloader")):
        if not target.exists():
            _log(f"go build ./cmd/{target.name} (nice 10)")
            timings[package] = _go_build(src, f"./cmd/{target.name}", target)
            _log(f"{target.name}: {timings[package]}s")
    spec = oci.ImageSpec(ref=RELOADER_IMAGE, files=oci.with_libraries(reloader, "/bin/prometheus-config-reloader"),
                         dirs=["/tmp"], entrypoint=["/bin/prometheus-config-reloader"])  # fmt: skip
    digest = oci.write_archive(spec, reloader_archive(version))
    shutil.rmtree(crd_dir(version), ignore_errors=True)
    shutil.copytree(src / "example" / "prometheus-operator-crd", crd_dir(version))
    record = {"version": version, "go_build_seconds": timings, "reloader_image": {"ref": RELOADER_IMAGE,
              "digest": digest}, "last_build_seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    (cache_dir(version) / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    _log(f"done in {record['last_build_seconds']}s; cache {cache_dir(version)}")


def reloader_digest(version: str = VERSION) -> str:
    return str(json.loads((cache_dir(version) / "build.json").read_text())["reloader_image"]["digest"])


def _kubectl(kubeconfig: Path, *args: str, check: bool = True) -> Completed:
    from testbed.procs import run

    kubectl = str(config.bin_dir() / "kubectl")
    return run(kubectl, "--kubeconfig", str(kubeconfig), *args, check=check, timeout_s=120)


def apply_crds(kubeconfig: Path, version: str = VERSION) -> None:
    """Every CRD of the module (the operator's Prometheus controller watches ServiceMonitors, PodMonitors,
    Probes, ScrapeConfigs and PrometheusRules too); server-side, as they exceed client-side apply's annotation."""
    _kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(crd_dir(version)))
    _kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir(version)))


def delete_crds(kubeconfig: Path, version: str = VERSION) -> None:
    _kubectl(kubeconfig, "delete", "--ignore-not-found", "--wait=true", "-f", str(crd_dir(version)), check=False)


def start(kubeconfig: Path, log_path: Path, version: str = VERSION) -> subprocess.Popen[bytes]:
    """The operator for every namespace (runs make their own), with the local reloader image, its kubelet
    controller off (``--kubelet-service`` empty); returned once it answers /healthz."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    # A free port of its own: another session's operator may be listening on any fixed one.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{s.getsockname()[1]}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        operator = subprocess.Popen(
            [str(operator_bin(version)), f"--prometheus-config-reloader={RELOADER_IMAGE}", "--kubelet-service=",
             f"--web.listen-address={listen}", "--log-level=info"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if operator.poll() is not None:
            raise RuntimeError(f"the prometheus-operator exited ({operator.returncode}): see {log_path}")
        try:
            with urllib.request.urlopen(f"http://{listen}/healthz", timeout=2) as r:
                if r.status == 200:
                    return operator
        except OSError:
            pass
        time.sleep(0.5)
    stop(operator)
    raise RuntimeError(f"the prometheus-operator did not answer /healthz within {READY_TIMEOUT_S:g} s: see {log_path}")


def stop(operator: subprocess.Popen[bytes]) -> None:
    if operator.poll() is None:
        operator.terminate()
        try:
            operator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait(timeout=15)


def import_reloader(version: str = VERSION) -> None:
    """The reloader image into every node's containerd (a cluster started before the build lacks it)."""
    from testbed import node

    for n in config.nodes():
        node.import_archive(n, RELOADER_IMAGE, reloader_digest(version), reloader_archive(version))


if __name__ == "__main__":
    # `python3 -m testbed.operator build`: .ci/run runs it in the background (it needs only Go and the
    # module proxy), while the system packages install and the cluster builds.
    import sys

    if sys.argv[1:] != ["build"]:
        raise SystemExit("usage: python3 -m testbed.operator build")
    build()
