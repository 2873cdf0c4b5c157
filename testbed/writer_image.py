"""The writer image: the harness' TSDB writer (``harness.loads.tsdb_writer`` and the shard module built on it) in a
pod of the local cluster, with no registry and no image engine.

The image is this machine's own Python: the interpreter that runs the tests (``sys.executable`` resolved: pyenv here,
Debian's python3 in CI), its shared libraries, its standard library without the parts a writer never loads (tests,
GUI, the static libpython of ``config-*``), lib-dynload with each extension's libraries, and from site-packages only
the top-level packages a subprocess importing ``modules`` actually loads (with their ``*.libs`` dirs and dist-info).
The ``harness`` package is copied from this source tree, not reached through the editable install's finder.

The tag is a content hash of what goes in, so a changed checkout (or an upgraded package) gives a new ref
``localhost/harness/writer:<12 hex>``; the archive is cached under ``/var/cache/prom-harness/writer-image/`` by tag
(the newest few kept) and imported into each node's containerd (a node that has that digest is skipped).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed import config, node, oci

REPO = "localhost/harness/writer"
# The TSDB writer (and its shards) and the fault layer (harness.datapath.fault_fuse, run by the kubernetes runtime's
# privileged sidecar for io_errors / io_latency).
DEFAULT_MODULES = ("harness.loads.tsdb_writer", "harness.loads.shard", "harness.datapath.fault_fuse")
# Where the harness package and the chosen site-packages go; PYTHONPATH names it.
LIB_DIR = "/opt/harness/python"
PYTHON = "/usr/bin/python3"  # a symlink to the interpreter at its own path (its prefix is found from there)
KEEP = 4  # cached archives (and node store refs) kept: the current checkout's and a few others' (other worktrees)
# The discovery subprocess imports numpy, pydantic and the harness: about a second, longer on a busy machine.
DISCOVERY_TIMEOUT_S = 120.0

# Standard library parts a writer never loads; config-* holds the static libpython (tens of MB).
STDLIB_SKIP_DIRS = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__", "site-packages"}
# Extension modules of the test suite and Tk (whose libraries would pull in X11).
DYNLOAD_SKIP_PREFIXES = ("_test", "_tkinter", "_ctypes_test", "_xxtest", "xxlimited", "xxsubtype")
# Inside a site-packages package: its test suites, byte code and build-time files (headers, stubs, static libs).
PACKAGE_SKIP_DIRS = {"__pycache__", "tests"}
PACKAGE_SKIP_SUFFIXES = {".pyc", ".pyi", ".pxd", ".h", ".c", ".a"}

# Run by sys.executable: what importing the modules loads beyond what the interpreter's start-up loaded (site, .pth
# hooks such as the editable finder), and where this interpreter's parts live.
_DISCOVER = r"""
import importlib, importlib.metadata, json, sys, sysconfig
before = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
files = sorted({getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items()) if n not in before} - {""})
dists = importlib.metadata.packages_distributions()
print(json.dumps({
    "files": files,
    "dists": dists,
    "dist_info": {
        d.metadata["Name"]: [str(d.locate_file(f)) for f in (d.files or []) if f.parts[0].endswith(".dist-info")]
        for d in importlib.metadata.distributions()
    },
    "purelib": sysconfig.get_path("purelib"),
    "platlib": sysconfig.get_path("platlib"),
    "stdlib": sysconfig.get_path("stdlib"),
    "dynload": [p for p in sys.path if p.rstrip("/").endswith("lib-dynload")],
    "base_prefix": sys.base_prefix,
    "base_exec_prefix": sys.base_exec_prefix,
    "version": sys.version,
    "executable": sys.executable,
    # Libraries loaded with ctypes (libfuse3 by mfusepy) are no extension's dependency: what the process maps.
    "mapped": sorted({line.split()[-1] for line in open("/proc/self/maps") if ".so" in line.split()[-1]}),
}))
"""


@dataclass
class Plan:
    """What goes into the image, before the extensions' libraries are resolved (those come from the system, and
    ldd takes seconds over ~100 extensions: only a build needs them)."""

    modules: tuple[str, ...]
    interpreter: Path
    files: dict[str, Path]  # path in the image -> file here
    extensions: list[Path]  # the .so files among them, for ldd
    packages: list[str]  # the site-packages top levels chosen (for the log and the tests)
    sites: list[Path]
    env: list[str]
    tag: str

    @property
    def ref(self) -> str:
        return f"{REPO}:{self.tag}"


def _log(msg: str) -> None:
    print(f"[writer image] {msg}", flush=True)


@dataclass
class Discovered:
    """What `_DISCOVER` reports."""

    files: list[str]
    dists: dict[str, list[str]]
    dist_info: dict[str, list[str]]
    purelib: str
    platlib: str
    stdlib: str
    dynload: list[str]
    base_prefix: str
    base_exec_prefix: str
    version: str
    executable: str
    mapped: list[str]


def _discover(modules: Sequence[str]) -> Discovered:
    result = subprocess.run(
        [sys.executable, "-c", _DISCOVER, *modules],
        capture_output=True, text=True, check=False, timeout=DISCOVERY_TIMEOUT_S, cwd="/",
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{sys.executable} could not import {list(modules)}: {result.stderr.strip()[-2000:]}")
    return Discovered(**json.loads(result.stdout))


def _walk(root: Path, skip_dirs: set[str], skip_suffixes: frozenset[str] | set[str] = frozenset()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix in skip_suffixes or not path.exists():  # a dangling symlink has nothing to copy
                continue
            yield path


def _top_level(site: Path, file: Path) -> Path | None:
    """The top-level package (or module) under `site` that `file` belongs to; for a namespace package such as
    ``google`` the first regular package below it (``google/protobuf``), not the whole namespace."""
    try:
        parts = file.relative_to(site).parts
    except ValueError:
        return None
    top = site / parts[0]
    depth = 1
    while top.is_dir() and not (top / "__init__.py").exists() and depth < len(parts) - 1:
        top = top / parts[depth]
        depth += 1
    return top


def harness_source() -> Path:
    return Path(__file__).resolve().parents[1] / "harness"


def _interpreter_files(info: Discovered, files: dict[str, Path], extensions: list[Path]) -> Path:
    """The interpreter and its libraries, the standard library and lib-dynload, each at its own path."""
    interpreter = Path(info.executable).resolve()
    files[str(interpreter)] = interpreter
    for lib in oci.shared_libraries(interpreter):
        files[str(lib)] = lib
    stdlib = Path(info.stdlib)
    skip = STDLIB_SKIP_DIRS | {d.name for d in stdlib.glob("config-*")} | {"lib-dynload"}
    for path in _walk(stdlib, skip):
        files[str(path)] = path
    for dynload in map(Path, info.dynload):
        for path in _walk(dynload, {"__pycache__"}):
            if not path.name.startswith(DYNLOAD_SKIP_PREFIXES):
                files[str(path)] = path
                if path.suffix == ".so":
                    extensions.append(path)
    return interpreter


def _site_files(info: Discovered, sites: list[Path], files: dict[str, Path], extensions: list[Path]) -> list[str]:
    """The site-packages top levels the discovery saw loaded, with their ``*.libs`` and dist-info, under LIB_DIR;
    returns their names."""
    tops = {top for loaded in map(Path, info.files) for site in sites if (top := _top_level(site, loaded)) is not None}
    # A harness installed into site-packages (not editable) is left there: the image gets the source tree's.
    tops = {top for top in tops if top.name != "harness"}
    names = []
    for top in sorted(tops):
        site = next(s for s in sites if top.is_relative_to(s))
        names.append(str(top.relative_to(site)))
        roots = [top]
        if top.with_name(top.name + ".libs").is_dir():
            roots.append(top.with_name(top.name + ".libs"))  # auditwheel's vendored libraries (numpy.libs)
        for root in roots:
            for path in _walk(root, PACKAGE_SKIP_DIRS, PACKAGE_SKIP_SUFFIXES) if root.is_dir() else [root]:
                files[f"{LIB_DIR}/{path.relative_to(site)}"] = path
                if ".so" in path.suffixes and root == top:
                    extensions.append(path)
        # importlib.metadata.version() of a package works in the image as it does here.
        for dist in info.dists.get(top.relative_to(site).parts[0].removesuffix(".py"), []):
            for meta in map(Path, info.dist_info.get(dist, [])):
                if meta.is_file():
                    files[f"{LIB_DIR}/{meta.relative_to(site)}"] = meta
    return names


def _tag(info: Discovered, modules: Sequence[str], env: list[str], files: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([info.version, list(modules), env]).encode())
    # The recipe too: a change to what goes in (skip lists, stripping, the layer format) is a new image.
    digest.update(Path(__file__).read_bytes() + Path(oci.__file__).read_bytes())
    for at, path in sorted(files.items()):
        # The harness by content (an edit often keeps a file's size); the rest by size and mtime (a reinstall or an
        # upgrade changes those) so that the tag costs no read of ~100 MB.
        if at.startswith(f"{LIB_DIR}/harness/"):
            digest.update(f"{at}\0".encode() + path.read_bytes())
        else:
            st = path.stat()
            digest.update(f"{at}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:12]


def plan(modules: Sequence[str] = DEFAULT_MODULES) -> Plan:
    info = _discover(modules)
    files: dict[str, Path] = {}
    extensions: list[Path] = []
    interpreter = _interpreter_files(info, files, extensions)
    sites = sorted({Path(info.purelib), Path(info.platlib)})
    packages = _site_files(info, sites, files, extensions)
    env_extra = []
    for lib in map(Path, info.mapped):
        # A library the process mapped that is no Python extension (those came above with their packages).
        if lib.is_file() and not any(lib.is_relative_to(s) for s in [*sites, Path(info.stdlib)]):
            if str(lib) not in files:
                files[str(lib)] = lib
                extensions.append(lib)  # its own libraries come with it (ldd)
            if lib.name.startswith("libfuse3.so"):
                env_extra.append(f"FUSE_LIBRARY_PATH={lib}")  # mfusepy's find_library needs ldconfig, absent there
    source = harness_source()
    for path in _walk(source, {"__pycache__"}, {".pyc"}):
        files[f"{LIB_DIR}/harness/{path.relative_to(source)}"] = path
    home = (
        info.base_prefix if info.base_exec_prefix == info.base_prefix else f"{info.base_prefix}:{info.base_exec_prefix}"
    )
    env = [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        f"PYTHONHOME={home}",
        f"PYTHONPATH={LIB_DIR}",
        "PYTHONDONTWRITEBYTECODE=1",  # nothing to gain from byte code written into a container's throwaway layer
        "PYTHONUNBUFFERED=1",  # the writer's log lines reach `kubectl logs` as they are written
        *env_extra,
    ]
    return Plan(tuple(modules), interpreter, files, extensions, packages, sites, env, _tag(info, modules, env, files))


def _without_debug_info(lib: Path) -> bytes | None:
    """`lib` with its debug sections stripped, when that makes it smaller (pyenv's libpython carries ~17 MB of
    DWARF; Debian's libraries are stripped already); None without binutils' strip."""
    strip = shutil.which("strip")
    if strip is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / lib.name
        # A library of tens of MB strips in well under a second; the timeout only bounds a hung one.
        done = subprocess.run([strip, "--strip-debug", "-o", str(out), str(lib)], check=False, timeout=120)
        if done.returncode != 0 or out.stat().st_size >= lib.stat().st_size:
            return None
        return out.read_bytes()


def spec(modules: Sequence[str] = DEFAULT_MODULES, planned: Plan | None = None) -> oci.ImageSpec:
    """The image for `modules` (default: the TSDB writer)."""
    p = planned or plan(modules)
    files = dict(p.files)
    contents: dict[str, bytes] = {}
    for lib in oci.shared_libraries(p.interpreter):
        data = _without_debug_info(lib)
        if data is not None:
            del files[str(lib)]
            contents[str(lib)] = data
    for ext in p.extensions:
        for lib in oci.shared_libraries(ext):
            # Libraries a wheel vendors (numpy.libs) are in the image already, found through the extension's RPATH.
            if not any(lib.is_relative_to(site) for site in p.sites):
                files.setdefault(str(lib), lib)
    return oci.ImageSpec(
        ref=p.ref,
        files=files,
        contents=contents,
        # Debian's /usr/bin/python3 is itself a symlink to python3.X; an interpreter at PYTHON needs none.
        symlinks={PYTHON: str(p.interpreter)} if str(p.interpreter) != PYTHON else {},
        dirs=["/tmp"],
        entrypoint=[PYTHON],
        env=p.env,
    )


def cache_dir() -> Path:
    return config.CACHE_ROOT / "writer-image"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One build at a time per cache (pytest sessions of several worktrees may ask for the same tag at once)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(modules: Sequence[str] = DEFAULT_MODULES) -> tuple[str, str, Path]:
    """The archive for `modules` in the cache (written unless there): ref, manifest digest and archive path."""
    started = time.monotonic()
    p = plan(modules)
    directory = cache_dir()
    archive, stamp = directory / f"{p.tag}.tar", directory / f"{p.tag}.json"
    with _locked(directory):
        if archive.exists() and stamp.exists():
            digest = str(json.loads(stamp.read_text())["digest"])
            os.utime(archive)  # newest first when pruning
            _log(f"{p.ref}: cached ({archive.stat().st_size / 2**20:.1f} MiB, {time.monotonic() - started:.1f}s)")
            return p.ref, digest, archive
        digest = oci.write_archive(spec(modules, p), archive)
        seconds = round(time.monotonic() - started, 1)
        size = archive.stat().st_size
        stamp.write_text(
            json.dumps({"ref": p.ref, "digest": digest, "modules": list(p.modules), "packages": p.packages,
                        "bytes": size, "build_seconds": seconds}, indent=2) + "\n"
        )  # fmt: skip
        _log(f"built {p.ref}: {size / 2**20:.1f} MiB in {seconds}s; site-packages: {', '.join(p.packages)}")
        for old in sorted(directory.glob("*.tar"), key=lambda a: a.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink()
            old.with_suffix(".json").unlink(missing_ok=True)
    return p.ref, digest, archive


def kept_refs() -> set[str]:
    return {f"{REPO}:{a.stem}" for a in cache_dir().glob("*.tar")}


def ensure(nodes: Sequence[config.Node] | None = None, modules: Sequence[str] = DEFAULT_MODULES) -> str:
    """Build (or find) the image for `modules` and import it into each node of the running local cluster; return
    its ref. Older writer images whose archives left the cache are removed from the nodes' stores."""
    ref, digest, archive = build(modules)
    keep = kept_refs() | {ref}
    for n in nodes if nodes is not None else config.nodes():
        started = time.monotonic()
        node.import_archive(n, ref, digest, archive)
        _log(f"{n.name}: {ref} in its store ({time.monotonic() - started:.1f}s)")
        stale = [r for r in node.image_refs(n) if r.startswith(f"{REPO}:") and r not in keep]
        if stale:
            _log(f"{n.name}: removing older writer images {stale}")
            node.remove_images(n, stale)
    return ref


if __name__ == "__main__":
    print(ensure(modules=sys.argv[1:] or DEFAULT_MODULES))
