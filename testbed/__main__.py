"""`python -m testbed build|start|stop|status|env|node lose|restore|kubelet-stop|kubelet-start NAME|ceph-csi
restart-node-plugin NAME`."""

from __future__ import annotations

import argparse
import json
import sys

from testbed import build, ceph_csi, config, run

NODE_ACTIONS = {
    "lose": run.lose_node,
    "restore": run.restore_node,
    "kubelet-stop": run.stop_kubelet,
    "kubelet-start": run.start_kubelet,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help=f"compile Kubernetes {config.K8S_VERSION} and write the images into the cache")
    p_start = sub.add_parser("start", help="start etcd, the control plane, containerd and kubelets (needs root)")
    p_start.add_argument("--nodes", type=int, default=None, help=f"number of nodes (default {config.NODE_COUNT})")
    sub.add_parser("stop", help="stop everything `start` started, unmount, remove cgroups and bridges")
    sub.add_parser("status", help="print what runs, as JSON; exit 0 only when the cluster is up")
    sub.add_parser("env", help="print shell lines that point kubectl and the tests at the cluster")
    p_node = sub.add_parser(
        "node",
        help="lose a node (SIGKILL its kubelet, containers, containerd) or restore it; stop or start its kubelet alone",
    )
    p_node.add_argument("what", choices=list(NODE_ACTIONS))
    p_node.add_argument("name", help="e.g. node-2")
    p_csi = sub.add_parser(
        "ceph-csi",
        help="restart ceph-csi's node plugin on a node, with the ceph-fuse mounts it holds (ceph-csi runs on demand)",
    )
    p_csi.add_argument("what", choices=["restart-node-plugin"])
    p_csi.add_argument("name", help="e.g. node-1")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build.build()
        elif args.command == "start":
            run.start(args.nodes)
        elif args.command == "stop":
            run.stop()
        elif args.command == "status":
            info = run.status()
            print(json.dumps(info, indent=2))
            return 0 if info["running"] else 1
        elif args.command == "node":
            NODE_ACTIONS[args.what](args.name)
        elif args.command == "ceph-csi":
            ceph_csi.restart_node_plugin(args.name)
        elif args.command == "env":
            print(f"export KUBECONFIG={config.kubeconfig_path()}")
            print(f"export PATH={config.bin_dir()}:$PATH")
    except run.ClusterError as exc:
        print(f"cluster {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
