"""OCI image archives written by hand (tarfile + json + sha256), for `ctr image import`. No engine needed."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 0  # fixed mtimes: the same inputs give the same digests


@dataclass
class ImageSpec:
    ref: str  # e.g. localhost/harness/prometheus:latest
    files: dict[str, Path] = field(default_factory=dict)  # path in image -> file on this machine
    contents: dict[str, bytes] = field(default_factory=dict)  # path in image -> literal bytes
    dirs: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)  # path in image -> target (e.g. /usr/bin/python3)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/bin:/usr/bin:/bin"])
    workdir: str = "/"
    exposed_ports: list[str] = field(default_factory=list)


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries `ldd` resolves for a dynamic binary, plus its interpreter (empty for a static one)."""
    # ldd answers in milliseconds; the timeout only keeps a hung one from blocking the build.
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False, timeout=60).stdout
    libs: list[Path] = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target.startswith("/"):
                libs.append(Path(target))
        elif parts and parts[0].startswith("/"):
            libs.append(Path(parts[0]))
    return libs


def with_libraries(binary: Path, at: str) -> dict[str, Path]:
    """`binary` placed at `at`, and each shared library at the path the loader will look for it."""
    files = {at: binary}
    for lib in shared_libraries(binary):
        files[str(lib)] = lib
    return files


def _add_dir(tar: tarfile.TarFile, seen: set[str], path: str) -> None:
    parts = [p for p in path.strip("/").split("/") if p]
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d in seen:
            continue
        seen.add(d)
        info = tarfile.TarInfo(d)
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777 if d == "tmp" else 0o755
        info.mtime = EPOCH
        tar.addfile(info)


def _layer(spec: ImageSpec) -> bytes:
    buf = io.BytesIO()
    seen: set[str] = set()
    entries: dict[str, bytes | Path] = {**spec.files, **spec.contents}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(spec.dirs):
            _add_dir(tar, seen, d)
        for path in sorted(entries):
            name = path.strip("/")
            _add_dir(tar, seen, str(Path(name).parent) if "/" in name else "")
            src = entries[path]
            data = src if isinstance(src, bytes) else Path(src).resolve().read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = EPOCH
            executable = isinstance(src, Path) and (Path(src).resolve().stat().st_mode & 0o111)
            info.mode = 0o755 if executable else 0o644
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted(spec.symlinks.items()):
            name = path.strip("/")
            _add_dir(tar, seen, str(Path(name).parent) if "/" in name else "")
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            info.mtime = EPOCH
            info.mode = 0o777
            tar.addfile(info)
    return buf.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes, media_type: str) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def write_archive(spec: ImageSpec, dest: Path) -> str:
    """Write an OCI image-layout tar for `spec` to `dest`; return the manifest digest."""
    blobs: dict[str, bytes] = {}
    layer = _layer(spec)
    layer_desc = _blob(blobs, layer, "application/vnd.oci.image.layer.v1.tar")
    container_config: dict[str, object] = {"Env": spec.env, "WorkingDir": spec.workdir}
    if spec.entrypoint:
        container_config["Entrypoint"] = spec.entrypoint
    if spec.cmd:
        container_config["Cmd"] = spec.cmd
    if spec.exposed_ports:
        container_config["ExposedPorts"] = {p: {} for p in spec.exposed_ports}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "testbed/oci.py"}],
    }
    config_desc = _blob(blobs, json.dumps(config, sort_keys=True).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    }
    manifest_desc = _blob(
        blobs, json.dumps(manifest, sort_keys=True).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    manifest_desc["annotations"] = {
        "io.containerd.image.name": spec.ref,
        "org.opencontainers.image.ref.name": spec.ref.rsplit(":", 1)[-1],
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest_desc]}
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def put(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = EPOCH
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))

        put("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        put("index.json", json.dumps(index, sort_keys=True).encode())
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = EPOCH
            tar.addfile(info)
        for digest, data in sorted(blobs.items()):
            put("blobs/sha256/" + digest.split(":", 1)[1], data)
    tmp.replace(dest)
    return str(manifest_desc["digest"])
