"""How the harness reaches Prometheus in its pod (``Settings.k8s_reach``): the pod IP when this host routes to it
(``auto``, ``pod-ip``), else a local forwarder through the API server's pod proxy (``api-proxy``, or ``auto`` when the
pod IP does not answer). The forwarder is made once per run and closed with it: the pod's name is stable, so it
survives the pod's restarts and replacements.
"""

from __future__ import annotations

import logging
import socket

from harness.errors import InfraError
from harness.kube.api import KubeApi
from harness.kube.pods import PodInfo
from harness.kube.proxy import PodProxy
from harness.runtime.manifests.prometheus import PORT
from harness.settings import Reach

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 1.0


class PodReach:
    """The URL Prometheus answers at, the way ``reach`` says; owns the pod proxy's forwarder once one is made."""

    def __init__(self, api: KubeApi, reach: Reach) -> None:
        self.api = api
        self.reach: Reach = reach
        self._proxy: PodProxy | None = None

    def url(self, pod: PodInfo) -> str:
        """The pod IP when this host can route to it (a refused connection counts: the host answered), else a
        local forwarder through the API server's pod proxy (the pod's name is stable, so it survives restarts)."""
        if self.reach != "api-proxy":
            try:
                with socket.create_connection((pod.ip, PORT), timeout=CONNECT_TIMEOUT_S):
                    pass
                return f"http://{pod.ip}:{PORT}"
            except ConnectionRefusedError:
                return f"http://{pod.ip}:{PORT}"
            except OSError as e:
                if self.reach == "pod-ip":
                    raise InfraError(
                        f"this host cannot reach pod {pod.namespace}/{pod.name} at {pod.ip}:{PORT} ({e}) and "
                        "HARNESS_K8S_REACH=pod-ip; unset it to go through the API server's pod proxy"
                    ) from e
                log.info("pod IP %s not reachable from here (%s): using the API server's pod proxy", pod.ip, e)
        if self._proxy is None:
            self._proxy = PodProxy(self.api, pod.namespace, pod.name, PORT)
        return self._proxy.url

    def close(self) -> None:
        """Close the forwarder, if one was made (its listening socket would otherwise stay open until exit)."""
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
