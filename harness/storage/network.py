"""What the network backends (``nfs``, ``iscsi``) share as backends; not a backend of its own.

``NetworkBackend`` provisions in the one order both follow on the local runtime: the user's own mount
(``storage.mount_path`` / the backend's ``$HARNESS_*_MOUNT``, see ``harness.storage.mounted``), else the kernel client
where ``storage.client`` picks it, else the backend's user-space data path; and it words the refusals of a server the
run did not start (no fault stops it) and of an embedded one (no kubelet reaches it). ``EmbeddedDaemon`` is an
embedded server that is one daemon of the run's own (NFS-Ganesha, tgtd): stopped, halted and resumed alike.
Each backend keeps only what differs: its filesystem check, its clients, its words and its server's start.
"""

from __future__ import annotations

import ipaddress
import socket
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, Protocol, TypeVar

from harness import proc
from harness.errors import InfraError, UsageError
from harness.storage.base import EmbeddedServer, SpecT, StaticPvBackend, StaticPvSpec
from harness.storage.mounted import MountedVolume, ServedVolume, provision_mounted, use_kernel_client, user_mount_path


class NetworkSpec(StaticPvSpec, Protocol):
    """What the models of network backends share: the user's own mount and the client that mounts otherwise."""

    @property
    def mount_path(self) -> str | None: ...

    @property
    def client(self) -> str: ...


NetworkSpecT = TypeVar("NetworkSpecT", bound=NetworkSpec)


@dataclass(frozen=True)
class ServerTerms:
    """How a network backend's scenario names its server: the field that says ``embedded`` (``server``), what it
    names (``server``), the program an embedded one runs (``NFS-Ganesha``), and what to set instead on a cluster."""

    field: str
    kind: str
    program: str
    cluster_fix: str


class NetworkBackend(StaticPvBackend[NetworkSpecT]):
    """A static-PV backend on a server reached over the network, which the run may start itself (``embedded``)."""

    #: The variable naming the user's own mount (beside ``storage.mount_path``).
    mount_env: ClassVar[str]
    #: How this host reaches the storage through the user's own mount, in words (``ProvisionedStorage.access``).
    user_mount_access: ClassVar[str]
    #: How the scenario names its server, for the refusals.
    server_terms: ClassVar[ServerTerms]

    def provision(self, spec: NetworkSpecT, workdir: Path, run_id: str) -> MountedVolume:
        mounted = provision_mounted(
            self.name,
            env=self.mount_env,
            configured=spec.mount_path,
            fstype_ok=lambda fstype: self.fstype_refusal(spec, fstype),
            run_id=run_id,
            access=self.user_mount_access,
        )
        if mounted is not None:
            return mounted
        return self.mount(spec, workdir, run_id, kernel=use_kernel_client(spec.client, self.why_no_kernel_client))

    @abstractmethod
    def fstype_refusal(self, spec: NetworkSpecT, fstype: str) -> str | None:
        """Why the user's own mount, of filesystem type ``fstype``, is not this storage (None: it is)."""

    @abstractmethod
    def why_no_kernel_client(self) -> str | None:
        """Why this host has no kernel client for this storage (None: it has one)."""

    @abstractmethod
    def mount(self, spec: NetworkSpecT, workdir: Path, run_id: str, *, kernel: bool) -> ServedVolume:
        """Mount the storage with this host's kernel client (``kernel``), else through the run's own user-space
        data path."""

    def host_paths(self, spec: NetworkSpecT) -> list[Path]:
        return user_mount_path(spec.mount_path)

    @abstractmethod
    def runs_embedded(self, spec: NetworkSpecT) -> bool:
        """Whether the run starts the server itself (``embedded``)."""

    @abstractmethod
    def server_named(self, spec: NetworkSpecT) -> str:
        """The server the scenario names, in words (``the NFS server HOST (export PATH)``)."""

    def server_refusal(self, spec: NetworkSpecT) -> str | None:
        if self.runs_embedded(spec):
            return None
        terms = self.server_terms
        return (
            f"{self.server_named(spec)} is not one this run starts, and the harness never stops a {terms.kind} it did "
            f"not start: use `{terms.field}: embedded` for a {terms.kind} the run owns"
        )

    def cluster_refusal(self, spec: NetworkSpecT) -> str | None:
        if not self.runs_embedded(spec):
            return None
        terms = self.server_terms
        return (
            f"storage.{terms.field}: embedded starts {terms.program} on 127.0.0.1 of the harness host, for the local "
            f"runtime; the kubelet needs a {terms.kind} it can reach: {terms.cluster_fix}"
        )


class DaemonServer(Protocol):
    """A server of the run's own that is one daemon (``harness.datapath.servers``' NfsServer, IscsiTarget)."""

    @property
    def daemon(self) -> proc.Daemon: ...

    def stop(self) -> None: ...

    def halt(self) -> None: ...

    def resume(self) -> None: ...


ServerT = TypeVar("ServerT", bound=DaemonServer)


def is_this_host(address: str) -> bool:
    """Whether ``address`` is one of this host's own (binding a socket to it succeeds)."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return False
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def check_listen(listen: str, what: str) -> None:
    """UsageError unless ``listen`` (``storage.embedded.listen``) is an address of this host the server can bind."""
    if not is_this_host(listen):
        raise UsageError(
            f"storage.embedded.listen: {listen} is no address of this host, so the embedded {what} cannot listen "
            "on it; name one of its addresses (`ip -4 addr`), e.g. 127.0.0.1 or the address of the interface the "
            "cluster's nodes route to"
        )


class EmbeddedDaemon(EmbeddedServer[SpecT], Generic[SpecT, ServerT]):
    """An embedded server that is one daemon on an address of this host (``listen``); ``start`` sets ``server``, and
    the words are its own."""

    #: What it is, in words (``NFS server``), for the error when it is used before it started.
    what: ClassVar[str]

    def __init__(self, spec: SpecT, workdir: Path, description: str, listen: str) -> None:
        self.spec = spec
        self.workdir = workdir
        self.listen = listen  # the address of this host it binds to (storage.embedded.listen)
        self.server: ServerT | None = None
        self.description = description
        self.record: Path | None = None  # set by keep_past_run: the daemon outlives the harness, recorded here

    def keep_past_run(self, record: Path) -> bool:
        self.record = record
        return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def halt(self) -> str:
        server = self._running()
        pid = server.daemon.pid
        server.halt()
        return self.halted(server, pid)

    def resume(self) -> str:
        server = self._running()
        server.resume()
        return self.resumed(server)

    @abstractmethod
    def halted(self, server: ServerT, pid: int) -> str:
        """What ``halt`` stopped (the daemon that had ``pid``), in words."""

    @abstractmethod
    def resumed(self, server: ServerT) -> str:
        """What ``resume`` brought back, in words."""

    def _running(self) -> ServerT:
        if self.server is None:
            raise InfraError(f"the embedded {self.what} was not started")
        return self.server
