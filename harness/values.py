"""``harness values SCENARIO``: what a team applies with helm for the scenario's storage, instead of the harness's
own StatefulSet: the kube-prometheus-stack chart values (``prometheus.prometheusSpec``: ``storageSpec``,
``securityContext``, ``retention``, ``resources``), then the PersistentVolume and StorageClass manifests the
scenario corresponds to, each a YAML document of its own, commented with where it goes and, at the top, the doctor's
findings for the scenario.

Nothing here plans storage a second time: the claim and the PV are the backend's (``planned_claim``,
``planned_volume``, ``class_to_create``) as built by ``harness.runtime.manifests`` for the Kubernetes runtime, so the
chart gets exactly the claim the doctor's binding simulation and the runtime use. The manifests carry none of the
harness's run labels: a PV a team applies is theirs, and ``harness cleanup`` (which finds objects by those labels)
must never take it for a run's leftover.

Exit codes: 0 printed; 1 printed, but the doctor found a BLOCKER (the storage would not work as planned); 2 bad input
(missing or invalid scenario, storage a cluster cannot use, unreadable kubeconfig).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from harness.binding import BindingOutcome
from harness.doctor import blocking, run_doctor
from harness.doctor.binding import simulate_binding, with_class_to_create
from harness.errors import HarnessError, ScenarioError, UsageError
from harness.kube.inventory import KubeInventory, Manifest, PvcInfo
from harness.results.model import DoctorFinding
from harness.runtime.manifests.common import Names
from harness.runtime.manifests.prometheus import container_resources, pod_security_context
from harness.runtime.manifests.volumes import claim_template, storage_class_manifest, volume_manifest
from harness.scenario.model import Scenario
from harness.storage import backend_for
from harness.storage.base import operator_claim_name

EXIT_OK, EXIT_BLOCKER, EXIT_USAGE = 0, 1, 2
CHART = "kube-prometheus-stack"
# The release name the chart's own README installs with (`helm install kube-prometheus-stack ...`), which makes the
# Prometheus resource "kube-prometheus-stack-prometheus", the name most deployments of the chart carry. The scenario
# name would be no better guess: nothing in a team's cluster is named after it.
DEFAULT_RELEASE = CHART
_WIDTH = 118  # of the YAML text and its comments
DEFAULT_NAMESPACE = "monitoring"  # where the chart's README installs it
# Names only, for the builders' Names: the run id is never printed (its labels are stripped, see _unmarked).
_NO_RUN = "values"


def prometheus_name(release: str) -> str:
    """The name kube-prometheus-stack gives its ``Prometheus`` resource for ``release`` (its templates/_helpers.tpl:
    ``kube-prometheus-stack.fullname`` is the release name when it contains the chart name, else
    ``<release>-kube-prometheus-stack``, cut to 26 characters without a trailing "-"; the resource is that plus
    ``-prometheus``), without fullnameOverride or cleanPrometheusOperatorObjectNames."""
    full = release if CHART in release else f"{release}-{CHART}"
    return full[:26].rstrip("-") + "-prometheus"


@dataclass(frozen=True)
class StorageValues:
    """What ``harness values`` prints, as data."""

    scenario: Scenario
    release: str
    prometheus: str  # the Prometheus resource's name
    namespace: str
    values: dict[str, Any]  # the chart values
    manifests: list[Manifest]  # the PV and StorageClass to apply, in apply order (the class first)
    class_exists: bool | None  # the cluster has the class the claim names (None: no cluster was read)
    claim: PvcInfo | None  # the claim the operator will make from the values (None: emptyDir)
    binding: BindingOutcome | None  # the doctor's binding simulation of that claim
    findings: list[DoctorFinding]


def duration(seconds: float) -> str:
    """A retention as the operator's Duration type writes it ("1d", "2h30m"), whole seconds."""
    left, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _names(scenario: Scenario) -> Names:
    return Names(scenario=scenario.name, run_id=_NO_RUN)


def _unmarked(manifest: Manifest, names: Names) -> Manifest:
    """``manifest`` without the labels that make it a run's object (see the module's docstring)."""
    meta = dict(manifest["metadata"])
    labels = {k: v for k, v in meta.get("labels", {}).items() if k not in names.labels()}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    return {**manifest, "metadata": meta}


def volume_claim_spec(scenario: Scenario) -> Manifest | None:
    """``storageSpec.volumeClaimTemplate.spec``: the runtime's claim template (class, size, access modes, selector);
    None when the pod uses no claim (emptyDir)."""
    template = claim_template(scenario, _names(scenario))
    return None if template is None else dict(template["spec"])


def chart_values(scenario: Scenario) -> dict[str, Any]:
    """The kube-prometheus-stack values for the scenario, as plain data (a test can put its ``storageSpec`` into a
    ``Prometheus`` resource: the chart copies ``prometheusSpec.storageSpec`` to ``spec.storage`` as it is)."""
    prom = scenario.prometheus
    spec: dict[str, Any] = {
        "retention": duration(prom.retention_s),
        "securityContext": pod_security_context(prom.security_context),
    }
    resources = container_resources(prom)
    if resources is not None:
        spec["resources"] = resources
    claim_spec = volume_claim_spec(scenario)
    if claim_spec is not None:
        spec["storageSpec"] = {"volumeClaimTemplate": {"spec": claim_spec}}
    return {"prometheus": {"prometheusSpec": spec}}


def build(
    scenario: Scenario,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    inventory: KubeInventory | None = None,
) -> StorageValues:
    """Everything ``harness values`` prints. Raises UsageError when a cluster cannot use the scenario's storage (an
    embedded server on this host, a local PV without its node and path)."""
    backend, spec = backend_for(scenario.storage), scenario.storage
    refusal = backend.cluster_refusal(spec)
    if refusal is not None:
        raise UsageError(refusal)
    names = _names(scenario)
    prom = prometheus_name(release)
    volume = volume_manifest(scenario, names)  # the backend's volume_source refuses what a cluster lacks
    manifests: list[Manifest] = []
    wanted = backend.class_to_create(spec)
    class_exists = None if inventory is None or wanted is None else inventory.storage_class(wanted.name) is not None
    if wanted is not None and not class_exists:
        manifests.append(_unmarked(storage_class_manifest(wanted, names), names))
    if volume is not None:
        manifests.append(_unmarked(volume, names))

    seen = (
        replace(inventory, namespace=namespace)
        if inventory is not None
        else KubeInventory(namespace=namespace, source="no cluster: only the PV printed here")
    )
    findings = run_doctor(scenario, runtime="kubernetes", kube=seen)
    seen = with_class_to_create(seen, scenario)
    # The claim the operator makes for a Prometheus of that name (planned_claim names it with operator_claim_name);
    # the PV keeps the scenario's name, as the runtime and the doctor plan it.
    claim = backend.planned_claim(spec, prom, namespace)
    binding = None if claim is None else simulate_binding(claim, seen, backend.planned_volume(spec, scenario.name))
    return StorageValues(
        scenario=scenario,
        release=release,
        prometheus=prom,
        namespace=namespace,
        values=chart_values(scenario),
        manifests=manifests,
        class_exists=class_exists,
        claim=claim,
        binding=binding,
        findings=findings,
    )


# --- the YAML text ----------------------------------------------------------------------------------------------


def _commented(data: Any) -> Any:
    """Plain dicts as CommentedMaps, so comments can be attached and key order stays as built."""
    if isinstance(data, dict):
        out = CommentedMap()
        for k, v in data.items():
            out[k] = _commented(v)
        return out
    if isinstance(data, list):
        return [_commented(v) for v in data]
    return data


def _finding_lines(findings: list[DoctorFinding]) -> list[str]:
    if not findings:
        return ["the doctor found nothing to report"]
    lines = []
    for f in findings:
        lines.append(f"{f.severity.value} {f.check}: {f.title}")
        if f.fix:
            lines += [f"    fix: {line}" for line in f.fix.splitlines()]
    return lines


def _binding_lines(sv: StorageValues) -> list[str]:
    if sv.claim is None or sv.binding is None:
        return []
    outcome = sv.binding
    if outcome.bound_pv is not None:
        when = " when the pod is scheduled (WaitForFirstConsumer)" if outcome.wait_for_first_consumer else ""
        verdict = f"binds pv/{outcome.bound_pv}{when}"
    elif outcome.dynamic is not None:
        verdict = f'binds a new PV that provisioner "{outcome.dynamic}" creates'
    else:
        verdict = f"stays Pending: {outcome.event}"
    return [f"binding (the doctor's simulation): the claim {sv.claim.namespace}/{sv.claim.name} {verdict}"]


def _wrap(lines: list[str]) -> str:
    """Comment lines cut to the output's width; a continuation is indented under its line."""
    out: list[str] = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip()) + 2)
        out += textwrap.wrap(line, width=_WIDTH, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return "\n".join(out)


def _doctor_lines(sv: StorageValues) -> list[str]:
    s = sv.scenario
    return [
        f"harness values {s.name}: kube-prometheus-stack for the storage of scenario {s.name!r} "
        f"({backend_for(s.storage).cluster_description(s.storage)}).",
        f"Release {sv.release!r} in namespace {sv.namespace!r}: the chart names the Prometheus resource "
        f"{sv.prometheus!r} (--release sets another).",
        "",
        "Doctor findings (as `harness doctor --runtime kubernetes` reports them; its claim is named after the "
        "scenario, the binding is the same):",
        *_finding_lines(sv.findings),
        *_binding_lines(sv),
        "",
    ]


def _values_lines(sv: StorageValues) -> list[str]:
    lines = [
        "Chart values: save this document as values.yaml (or `--only values > values.yaml`), then",
        f"  helm upgrade --install {sv.release} prometheus-community/kube-prometheus-stack -n {sv.namespace} "
        "-f values.yaml",
    ]
    if sv.manifests:
        lines.append(
            "Apply the manifests below FIRST (`harness values ... --only manifests | kubectl apply -f -`): the "
            "claim the operator makes binds the PV they create."
        )
    if sv.claim is None:
        lines.append(
            "No storageSpec: the chart's default, an emptyDir. The TSDB lives and dies with the pod: a reschedule, "
            "node drain or `helm upgrade` that recreates the pod loses all history (what this scenario shows)."
        )
    else:
        lines.append(
            f"The operator names the claim {operator_claim_name(sv.prometheus)} (in {sv.namespace}); the PV is "
            "not pre-bound to it: the claim's class, selector, size and access modes select it."
        )
    return lines


def _manifest_comment(manifest: Manifest, sv: StorageValues) -> str:
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    if kind == "StorageClass":
        where = (
            "the cluster has no StorageClass of this name"
            if sv.class_exists is False
            else "create it unless your cluster already has a StorageClass of this name (none was read: --context)"
        )
        return f"StorageClass {name}: {where}. `kubectl apply -f` this document."
    return (
        f"PersistentVolume {name} ({backend_for(sv.scenario.storage).cluster_description(sv.scenario.storage)}): "
        "`kubectl apply -f` this document before the helm release, so the operator's claim finds it. "
        f"Reclaim policy {manifest['spec'].get('persistentVolumeReclaimPolicy')}: a deleted claim leaves it Released "
        "with a stale claimRef."
    )


def render(sv: StorageValues, only: str | None = None) -> str:
    """The YAML text: the values document, then one document per manifest; ``only`` "values" or "manifests"."""
    docs: list[Any] = []
    head = _doctor_lines(sv)  # on the first document printed
    if only in (None, "values"):
        values = _commented(sv.values)
        values.yaml_set_start_comment(_wrap([*head, *_values_lines(sv)]))
        docs.append(values)
        head = []
    if only in (None, "manifests"):
        for manifest in sv.manifests:
            doc = _commented(manifest)
            doc.yaml_set_start_comment(_wrap([*head, _manifest_comment(manifest, sv)]))
            docs.append(doc)
            head = []
    yaml = YAML(typ="rt")
    yaml.width = _WIDTH
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    if docs:
        yaml.dump_all(docs, out)
    return out.getvalue()


# --- the command ------------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file (YAML)")
    parser.add_argument(
        "--release",
        default=DEFAULT_RELEASE,
        help="the kube-prometheus-stack release name; the Prometheus resource, and so the claim the operator makes, "
        f"is named after it (default: {DEFAULT_RELEASE})",
    )
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help=f"the release's namespace (default: {DEFAULT_NAMESPACE})"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set a scenario key before it is read, e.g. storage.node=node-2 or storage.server=10.0.0.1 (the value "
        "is YAML; storage.embedded=null drops an embedded server's settings); repeatable",
    )
    parser.add_argument(
        "--only", choices=["values", "manifests"], help="print only the chart values, or only the manifests"
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="with --context: read the cluster's PVs, claims and StorageClasses for the doctor (default: $KUBECONFIG)",
    )
    parser.add_argument(
        "--context",
        default=None,
        help="the kube context to read (without it nothing is read: the doctor sees only the PV printed here)",
    )


def load(args: argparse.Namespace) -> StorageValues:
    """The scenario and, with --context, the cluster's inventory, as ``harness doctor`` reads them."""
    from harness.config import choose_context, load_user_config
    from harness.kube.contexts import load_inventory
    from harness.scenario.host_defaults import with_host_defaults
    from harness.scenario.loader import load_scenario

    scenario = with_host_defaults(load_scenario(Path(args.scenario), args.overrides), args.settings)
    inventory = None
    if args.context:
        context = choose_context(args.kubeconfig, args.context, load_user_config(args.settings))
        inventory = load_inventory(args.kubeconfig, namespace=args.namespace, context=context)
    try:
        return build(scenario, release=args.release, namespace=args.namespace, inventory=inventory)
    except UsageError as e:
        raise UsageError(
            f"{args.scenario}: {e} (for this command: give them with --set storage.KEY=VALUE; "
            "--set storage.embedded=null drops an embedded server's settings)"
        ) from e


def execute(args: argparse.Namespace) -> int:
    try:
        sv = load(args)
    except ScenarioError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render(sv, args.only))
    return EXIT_BLOCKER if blocking(sv.findings) else EXIT_OK


__all__ = [
    "DEFAULT_RELEASE",
    "StorageValues",
    "build",
    "chart_values",
    "configure",
    "duration",
    "execute",
    "prometheus_name",
    "render",
    "volume_claim_spec",
]
