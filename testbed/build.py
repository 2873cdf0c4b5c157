"""`build`: compile the Kubernetes commands and the pause binary, and write the OCI image archives.

Everything lands in the cache (config.cache_dir()), keyed by version, and a step whose output is there is skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from testbed import config, oci

# Timeouts of the go commands: long enough for this 2-core machine when it is shared, short enough that a hung
# download or build fails with the command named instead of blocking a test session or `nox -s cluster` for ever.
# k8s.io/kubernetes and its dependencies are ~500 MB through the module proxy (README: part of the first 267 s).
GO_MODULE_DOWNLOAD_TIMEOUT_S = 1800.0
# `go env`, `go list -m -versions`, one small staging module: seconds.
GO_QUERY_TIMEOUT_S = 300.0
# The slowest command, kube-apiserver, took 267 s cold (README); several times that when other builds share the cores.
GO_BUILD_TIMEOUT_S = 3600.0

PAUSE_GO = """package main

// pause: the sandbox process of every pod. Sleeps until told to stop, reaping any child it inherits.
import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
"""

PROMETHEUS_YML = b"""global:
  scrape_interval: 5s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
"""


def _log(msg: str) -> None:
    print(f"[cluster build] {msg}", flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["CGO_ENABLED"] = "0"
    env["GOFLAGS"] = "-trimpath -mod=mod"
    return env


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise SystemExit("go is not installed: the cluster build compiles Kubernetes from source")
    return go


def write_module(src: Path, version: str) -> None:
    """A module that requires k8s.io/kubernetes at `version` and pins each staging module at v0.<minor>.

    k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging paths, which a dependent module
    cannot see; so `go install k8s.io/kubernetes/cmd/...@v` fails, and a module like this one is the way.
    """
    src.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [_go(), "mod", "download", f"k8s.io/kubernetes@{version}"],
        check=True, env=_go_env(), timeout=GO_MODULE_DOWNLOAD_TIMEOUT_S,
    )  # fmt: skip
    gomodcache = subprocess.run(
        [_go(), "env", "GOMODCACHE"], check=True, capture_output=True, text=True, env=_go_env(),
        timeout=GO_QUERY_TIMEOUT_S,
    ).stdout.strip()  # fmt: skip
    upstream = (Path(gomodcache) / f"k8s.io/kubernetes@{version}" / "go.mod").read_text()
    block = re.search(r"^replace \((.*?)^\)", upstream, re.S | re.M)
    if block is None:
        raise SystemExit(f"k8s.io/kubernetes@{version}: no replace block in go.mod")
    staging = re.findall(r"(k8s\.io/[\w.-]+) => \./staging", block.group(1))
    wanted = "v0." + version.lstrip("v").split(".", 1)[1]
    pins = {m: _available(m, wanted) for m in staging}
    substituted = {m: v for m, v in pins.items() if v != wanted}
    if substituted:
        _log(f"not on the module proxy at {wanted}, pinned instead: {substituted}")
    lines = ["module harness.local/k8sbuild", "", "go 1.23.0", "", f"require k8s.io/kubernetes {version}", ""]
    lines += ["replace ("] + [f"\t{m} => {m} {v}" for m, v in pins.items() if v] + [")", ""]
    (src / "go.mod").write_text("\n".join(lines))
    (src / "substituted.json").write_text(json.dumps(substituted, indent=2) + "\n")


def _available(module: str, wanted: str) -> str:
    """`wanted` if the module proxy serves it, else the newest earlier patch of the same minor it serves, else "".

    The proxy reachable here lacks a few staging modules at some patch versions (k8s.io/endpointslice v0.32.13,
    the sample-* modules); a neighbouring patch of a staging module has the same API. "" drops the pin, which is
    only harmless for modules none of the built commands import (the sample-* ones).
    """
    env = _go_env()
    if (
        subprocess.run(
            [_go(), "mod", "download", f"{module}@{wanted}"],
            check=False,
            env=env,
            capture_output=True,
            timeout=GO_QUERY_TIMEOUT_S,
        ).returncode
        == 0
    ):
        return wanted
    listed = subprocess.run(
        [_go(), "list", "-m", "-versions", module], check=False, env=env, capture_output=True, text=True,
        timeout=GO_QUERY_TIMEOUT_S,
    )  # fmt: skip
    prefix = wanted.rsplit(".", 1)[0] + "."
    patch = int(wanted.rsplit(".", 1)[1])
    candidates = sorted(
        (int(v.rsplit(".", 1)[1]), v)
        for v in listed.stdout.split()[1:]
        if v.startswith(prefix) and v.rsplit(".", 1)[1].isdigit() and int(v.rsplit(".", 1)[1]) < patch
    )
    for _patch, v in reversed(candidates):
        if (
            subprocess.run(
                [_go(), "mod", "download", f"{module}@{v}"],
                check=False,
                env=env,
                capture_output=True,
                timeout=GO_QUERY_TIMEOUT_S,
            ).returncode
            == 0
        ):
            return v
    return ""


def _ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build_commands(version: str, timings: dict[str, float]) -> None:
    src = config.cache_dir(version) / "src"
    out = config.bin_dir(version)
    out.mkdir(parents=True, exist_ok=True)
    if not (src / "go.mod").exists():
        write_module(src, version)
    for cmd in config.COMMANDS:
        target = out / cmd
        if target.exists():
            continue
        _log(f"go build {cmd} (sequential, nice 10)")
        start = time.monotonic()
        subprocess.run(
            ["nice", "-n", "10", _go(), "build", "-ldflags", _ldflags(version), "-o", str(target) + ".partial",
             f"k8s.io/kubernetes/cmd/{cmd}"],
            check=True, cwd=src, env=_go_env(), timeout=GO_BUILD_TIMEOUT_S,
        )  # fmt: skip
        Path(str(target) + ".partial").replace(target)
        timings[cmd] = round(time.monotonic() - start, 1)
        _log(f"{cmd}: {timings[cmd]}s")


def build_pause(version: str, timings: dict[str, float]) -> Path:
    target = config.bin_dir(version) / "pause"
    if target.exists():
        return target
    src = config.cache_dir(version) / "src-pause"
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text("module harness.local/pause\n\ngo 1.21\n")
    (src / "main.go").write_text(PAUSE_GO)
    start = time.monotonic()
    subprocess.run(
        ["nice", "-n", "10", _go(), "build", "-ldflags", "-s -w", "-o", str(target), "."],
        check=True, cwd=src, env=_go_env(), timeout=GO_BUILD_TIMEOUT_S,
    )  # fmt: skip
    timings["pause"] = round(time.monotonic() - start, 1)
    return target


def _which(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (scripts/debian-packages.txt lists the package)")
    return Path(found)


def image_specs(version: str) -> dict[str, oci.ImageSpec]:
    pause = oci.ImageSpec(
        ref=config.PAUSE_IMAGE, files={"/pause": config.bin_dir(version) / "pause"}, entrypoint=["/pause"]
    )
    prometheus = oci.ImageSpec(
        ref=config.PROMETHEUS_IMAGE,
        files=oci.with_libraries(_which("prometheus"), "/bin/prometheus"),
        contents={"/etc/prometheus/prometheus.yml": PROMETHEUS_YML},
        dirs=["/prometheus", "/tmp"],
        entrypoint=["/bin/prometheus"],
        cmd=[
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--web.listen-address=:9090",
        ],
        workdir="/prometheus",
        exposed_ports=["9090/tcp"],
    )
    fio = oci.ImageSpec(
        ref=config.FIO_IMAGE,
        files=oci.with_libraries(_which("fio"), "/usr/bin/fio"),
        dirs=["/tmp", "/data"],
        cmd=["/usr/bin/fio", "--version"],
    )
    # Static busybox: one file, no libraries; applets are called as `/bin/busybox kill ...` (no symlinks needed).
    tools = oci.ImageSpec(
        ref=config.TOOLS_IMAGE,
        files={"/bin/busybox": _which("busybox")},
        dirs=["/tmp"],
        entrypoint=["/bin/busybox"],
        cmd=["sleep", "infinity"],
    )
    return {"pause": pause, "prometheus": prometheus, "fio": fio, "tools": tools}


def build_images(version: str) -> dict[str, str]:
    digests: dict[str, str] = {}
    for name, spec in image_specs(version).items():
        dest = config.image_dir(version) / f"{name}.tar"
        _log(f"image {spec.ref} -> {dest}")
        digests[name] = oci.write_archive(spec, dest)
    return digests


def ensure_images(version: str = config.K8S_VERSION) -> dict[str, str]:
    """Digests of every image, writing the archives a cache built before that image existed lacks (< 1 s)."""
    stamp_path = config.cache_dir(version) / "build.json"
    stamp = json.loads(stamp_path.read_text())
    specs = image_specs(version)
    missing = [n for n in specs if n not in stamp["images"] or not (config.image_dir(version) / f"{n}.tar").exists()]
    for name in missing:
        dest = config.image_dir(version) / f"{name}.tar"
        _log(f"image {specs[name].ref} -> {dest}")
        stamp["images"][name] = oci.write_archive(specs[name], dest)
    if missing:
        stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    return dict(stamp["images"])


def is_built(version: str = config.K8S_VERSION) -> bool:
    stamp = config.cache_dir(version) / "build.json"
    return stamp.exists() and all((config.bin_dir(version) / c).exists() for c in (*config.COMMANDS, "pause"))


def build(version: str = config.K8S_VERSION) -> None:
    started = time.monotonic()
    timings: dict[str, float] = {}
    build_commands(version, timings)
    build_pause(version, timings)
    digests = build_images(version)
    stamp = config.cache_dir(version) / "build.json"
    previous = json.loads(stamp.read_text()) if stamp.exists() else {}
    record = {
        "version": version,
        "go_build_seconds": {**previous.get("go_build_seconds", {}), **timings},
        "images": digests,
        "last_build_seconds": round(time.monotonic() - started, 1),
    }
    stamp.write_text(json.dumps(record, indent=2) + "\n")
    _log(f"done in {record['last_build_seconds']}s; cache {config.cache_dir(version)}")
