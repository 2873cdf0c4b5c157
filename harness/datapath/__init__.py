"""The data path's low-level tools, each wrapping one program or library, none knowing a scenario, a runtime or a
fault: the user-space NFS client (``nfs_client``, the only libnfs user) and its FUSE filesystem (``nfs_fuse``, run
as its own process), the iSCSI client (``iscsi_client``, the only libiscsi user), the embedded NFS-Ganesha and tgt
(``servers``), the mount table and loop-mounted images (``mounts``), filling a filesystem to ENOSPC (``fill``), and
the fault layer: its FUSE filesystem (``fault_fuse``, its own process), its control protocol (``fault_protocol``)
and its durability model (``fault_durability``), both standard library only.
"""

import os

# mfusepy loads libfuse when imported and prefers libfuse2 (``fuse``) when both are installed; Debian's ceph-fuse
# pulls libfuse2 in beside our libfuse3. libfuse2 refuses to mount over a non-empty directory ("fuse: mountpoint is
# not empty"), which the fault layer does by design (it lies over Prometheus' existing data directory), so the FUSE
# programs of this package (run as ``python -m harness.datapath.<program>``, which imports this package first) pin
# libfuse3, the library they were written and tested against. A caller's own choice is kept.
os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
