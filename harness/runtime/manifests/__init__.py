"""The Kubernetes objects of a run, built by pure functions (tested without a cluster). Everything carries the
managed-by and run-id labels, so cleanup deletes only what a run made, and, when the run knows its owner, the owner
label and the annotations that say which process on which host made it (``harness cleanup --all-mine`` selects by the
label and leaves a run alone while that process lives).

One module per concern: ``common`` (every name of a run, its labels and metadata, the namespace), ``prometheus``
(the generated config, the StatefulSet in the prometheus-operator's shape, the operator's Prometheus resource and its
scrape Secret, the fault layer's sidecar), ``volumes`` (the PersistentVolume, claim and StorageClass the storage
backend plans) and ``helper_pods`` (the pods a run adds beside Prometheus: fio's, disk_full's fill pod).
"""
