"""The only user of the official ``kubernetes`` client, one room per concern:

- ``inventory``: the binding inventory, a pure model (PVs, claims, StorageClasses, Nodes, ``KubeInventory``) the
  doctor simulates binding on; it imports no client.
- ``decode``: the client's objects (and PV manifests) read into that model.
- ``contexts``: kubeconfig contexts, clients for them, and ``load_inventory`` (the inventory of a real cluster).
- ``api``: ``KubeApi``, the calls the kubernetes runtime and ``harness cleanup`` make, over one table of kinds.
- ``kinds``: that one table (``KINDS``): each kind once, its client API, method names and verbs.
- ``pods``: pods, their containers' states and their events as the runtime reads them.
- ``proxy``: ``PodProxy``, plain HTTP on 127.0.0.1 forwarded through the API server's pod proxy.

Import from the room (``from harness.kube.api import KubeApi``). ``KubeInventory`` is also named here, for the
annotations that name it as ``harness.kube.KubeInventory``.
"""

from harness.kube.inventory import KubeInventory

__all__ = ["KubeInventory"]
