"""The data path's low-level tools, each wrapping one program or library, none knowing a scenario, a runtime or a
fault: the user-space NFS client (``nfs_client``, the only libnfs user) and its FUSE filesystem (``nfs_fuse``, run
as its own process), the iSCSI client (``iscsi_client``, the only libiscsi user), the embedded NFS-Ganesha and tgt
(``servers``), the mount table and loop-mounted images (``mounts``), filling a filesystem to ENOSPC (``fill``), and
the fault layer: its FUSE filesystem (``fault_fuse``, its own process), its control protocol (``fault_protocol``)
and its durability model (``fault_durability``), both standard library only.
"""
