"""``convoy spoke install``: the manifests that install the spoke in a cluster, printed or applied.

:func:`install_manifests` is pure: settings in, plain manifests out (Namespace, ServiceAccount,
ClusterRole and binding, a Role and binding for the spoke's own state, the bootstrap Secret and
the Deployment). The settings reach ``convoy spoke run`` as the ``CONVOY_SPOKE_*`` environment
variables that :func:`spoke.settings.load_settings` reads — the names come from
``settings.ENV_NAMES``, so the two cannot drift apart. ``deploy/spoke/`` is the same output for
placeholder values, as a kustomize base (``python -m spoke.install deploy/spoke`` rewrites it).

Only :func:`apply_manifests` touches a cluster, through the spoke's own ``ClusterClient`` (the
official ``kubernetes`` client, server-side apply as field manager ``convoy-install``).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from protos import jointoken
from protos.objects import ObjectRef
from protos.status import DriftPolicy
from spoke import derived_rbac, settings

__all__ = [
    "BOOTSTRAP_SECRET",
    "DEFAULT_IMAGE",
    "FIELD_MANAGER",
    "NAME",
    "RbacMode",
    "apply_manifests",
    "base_files",
    "install",
    "install_manifests",
    "read_bundle",
    "render_yaml",
]

NAME = "convoy-spoke"
BOOTSTRAP_SECRET = "convoy-spoke-bootstrap"
DEFAULT_IMAGE = "ghcr.io/convoy-dev/convoy-spoke:0.1.0"
FIELD_MANAGER = "convoy-install"
#: The image's non-root user (deploy/images/Dockerfile.spoke).
_UID = 10001
_COMMON_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "convoy"}

#: Placeholder values of the committed kustomize base in deploy/spoke/.
PLACEHOLDERS: Mapping[str, Any] = {
    "cluster": "my-cluster",
    "hub": "convoy-hub.example.com:8443",
    "token": "REPLACE-WITH-BOOTSTRAP-TOKEN",
    "labels": {},
    "namespace": settings.DEFAULT_NAMESPACE,
    "image": DEFAULT_IMAGE,
    "insecure": False,
}


class RbacMode(enum.StrEnum):
    """What the spoke's ServiceAccount may do (``--rbac``)."""

    #: Everything, everywhere: a GitOps agent applies whatever the fleet holds (CRDs, RBAC too).
    CLUSTER = "cluster"
    #: Read everywhere (the drift watch lists each kind across namespaces), write only in the
    #: namespaces given: cluster-scoped kinds and other namespaces are refused by the API server.
    NAMESPACED = "namespaced"
    #: Exactly what one bundle needs (``--bundle``): see :mod:`spoke.derived_rbac`.
    DERIVED = "derived"


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = dict(_COMMON_LABELS)
    return meta


def _env(key: str, value: str) -> dict[str, Any]:
    return {"name": settings.ENV_NAMES[key], "value": value}


def install_manifests(
    *,
    cluster: str,
    hub: str,
    token: str,
    labels: Mapping[str, str],
    namespace: str = settings.DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    insecure: bool = False,
    drift_policy: DriftPolicy = DriftPolicy.CORRECT,
    health_port: int = settings.DEFAULT_HEALTH_PORT,
    rbac: RbacMode = RbacMode.CLUSTER,
    namespaces: Sequence[str] = (),
    bundle: Mapping[str, Any] | None = None,
    bundle_source: str = "the bundle",
) -> list[dict[str, Any]]:
    """The manifests that install one cluster's spoke, in apply order.

    ``rbac``/``namespaces``: :class:`RbacMode`; NAMESPACED needs the namespaces the spoke may write
    (each is created, with a RoleBinding granting the spoke everything inside it). DERIVED needs
    ``bundle`` (the cluster's Bundle document; ``bundle_source`` names it in errors).
    Raises :class:`spoke.settings.SettingsError` for values ``convoy spoke run`` would refuse.
    """
    if rbac is RbacMode.NAMESPACED and not namespaces:
        raise settings.SettingsError("--rbac namespaced needs --namespaces a,b: the namespaces the spoke may write")
    if rbac is not RbacMode.NAMESPACED and namespaces:
        raise settings.SettingsError("--namespaces applies only with --rbac namespaced")
    if (rbac is RbacMode.DERIVED) != (bundle is not None):
        raise settings.SettingsError("--rbac derived needs --bundle FILE (the output of `convoy render --cluster "
                                     "NAME`), and --bundle applies only with --rbac derived")
    derived: derived_rbac.DerivedRules | None = None
    if bundle is not None:
        try:
            derived = derived_rbac.derive(bundle, namespace=namespace, source=bundle_source)
        except derived_rbac.DerivationError as exc:
            raise settings.SettingsError(str(exc)) from exc
    label_text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    # Validate with the running spoke's own loader, so a bad value fails here, naming the flag,
    # rather than in a crash-looping pod.
    settings.load_settings(cli={"hub": hub, "cluster": cluster, "labels": label_text, "token": token,
                                "namespace": namespace, "insecure": insecure, "drift_policy": str(drift_policy),
                                "health_port": health_port}, env={})

    namespace_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(NAME, namespace)}
    cluster_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(f"{NAME}-{namespace}"),
        # A GitOps agent applies whatever kinds the fleet repository holds, CRDs and RBAC included,
        # and must read and delete them again (drift watch, prune): no narrower list is possible.
        # Narrow it per cluster if your fleet allows (--rbac derived narrows it to one bundle); the Role
        # below keeps the spoke's own state.
        "rules": derived.cluster if derived is not None else [
            {"apiGroups": ["*"], "resources": ["*"],
             "verbs": ["*"] if rbac is RbacMode.CLUSTER else ["get", "list", "watch"]},
            {"nonResourceURLs": ["*"], "verbs": ["get"]},
        ],
    }
    cluster_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(f"{NAME}-{namespace}"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{NAME}-{namespace}"},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }
    # The credential, hub CA and inventory live in Secrets of this namespace: granted on their own
    # so they survive a ClusterRole narrowed by the operator.
    state_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(f"{NAME}-state", namespace),
        "rules": [{"apiGroups": [""], "resources": ["secrets", "configmaps"],
                   "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}],
    }
    state_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(f"{NAME}-state", namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{NAME}-state"},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }
    bootstrap = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(BOOTSTRAP_SECRET, namespace),
        "type": "Opaque",
        "stringData": {"token": token},
    }
    env = [
        _env("hub", hub),
        _env("cluster", cluster),
        _env("labels", label_text),
        {"name": settings.ENV_NAMES["token"],
         "valueFrom": {"secretKeyRef": {"name": BOOTSTRAP_SECRET, "key": "token"}}},
        {"name": settings.ENV_NAMES["namespace"],
         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        _env("insecure", "true" if insecure else "false"),
        _env("drift_policy", str(drift_policy)),
        _env("health_port", str(health_port)),
    ]
    selector = {"app.kubernetes.io/name": NAME}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, namespace),
        "spec": {
            "replicas": 1,
            # Two spokes of one cluster would fight over the same objects: never run old and new together.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**_COMMON_LABELS}},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": _UID,
                        "runAsGroup": _UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "spoke",
                        "image": image,
                        "command": ["convoy", "spoke", "run"],
                        "env": env,
                        "ports": [{"name": "health", "containerPort": health_port}],
                        "livenessProbe": {"httpGet": {"path": "/livez", "port": "health"},
                                          "periodSeconds": 10, "failureThreshold": 6},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"},
                                           "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}},
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        # The read-only root needs one writable place: the client's discovery cache.
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }
    scoped: list[dict[str, Any]] = []
    if rbac is RbacMode.NAMESPACED:
        # Bound by a RoleBinding per namespace, "everything" means everything inside that namespace only.
        write_role = f"{NAME}-{namespace}-write"
        scoped.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                       "metadata": _meta(write_role),
                       "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
        for target in dict.fromkeys(namespaces):
            if target != namespace:
                scoped.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(target)})
            scoped.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                           "metadata": _meta(write_role, target),
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                       "name": write_role},
                           "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]})
    if derived is not None:
        # Only what each namespace's objects need, in a Role of that namespace.
        for target, rules in derived.namespaced.items():
            if target != namespace:
                scoped.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(target)})
            scoped.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                           "metadata": _meta(f"{NAME}-{namespace}-write", target), "rules": rules})
            scoped.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                           "metadata": _meta(f"{NAME}-{namespace}-write", target),
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                       "name": f"{NAME}-{namespace}-write"},
                           "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]})
    return [namespace_obj, account, cluster_role, cluster_binding, *scoped, state_role, state_binding, bootstrap,
            deployment]


def read_bundle(path: str) -> dict[str, Any]:
    """A Bundle document from ``path`` (``-``: stdin): ``convoy render`` output, or plain manifests.

    Raises :class:`spoke.settings.SettingsError` naming the file when it is neither.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        raise settings.SettingsError(f"--bundle {path}: cannot read it: {exc}") from exc
    except yaml.YAMLError as exc:
        raise settings.SettingsError(f"--bundle {path}: not YAML or JSON: {exc}") from exc
    if len(docs) == 1 and isinstance(docs[0], dict) and docs[0].get("kind") == "Bundle":
        return docs[0]
    if docs and all(isinstance(d, dict) and d.get("kind") and d.get("apiVersion") for d in docs):
        return {"apps": [], "objects": docs}
    raise settings.SettingsError(f"--bundle {path}: expected the output of `convoy render --cluster NAME` (a Bundle) "
                                 "or Kubernetes manifests with apiVersion and kind")


def render_yaml(manifests: Sequence[Mapping[str, Any]]) -> str:
    """A multi-document YAML stream, keys in manifest order."""
    return yaml.dump_all([dict(m) for m in manifests], Dumper=yaml.CSafeDumper, sort_keys=False,
                         explicit_start=True, width=110)


#: deploy/spoke/ file for each kind.
_BASE_FILES = {
    "Namespace": "namespace.yaml",
    "ServiceAccount": "serviceaccount.yaml",
    "ClusterRole": "rbac.yaml",
    "ClusterRoleBinding": "rbac.yaml",
    "Role": "rbac.yaml",
    "RoleBinding": "rbac.yaml",
    "Secret": "secret.yaml",
    "Deployment": "deployment.yaml",
}
_HEADER = "# Generated by `python -m spoke.install deploy/spoke` from spoke/install.py; do not edit.\n"


def base_files() -> dict[str, str]:
    """deploy/spoke/: the manifests for :data:`PLACEHOLDERS` as a kustomize base (name -> text)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for manifest in install_manifests(**PLACEHOLDERS):
        grouped.setdefault(_BASE_FILES[manifest["kind"]], []).append(manifest)
    files = {name: _HEADER + render_yaml(docs) for name, docs in grouped.items()}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(grouped),
    }
    files["kustomization.yaml"] = (
        _HEADER
        + "# Set the cluster, hub and token in secret.yaml and deployment.yaml with an overlay, or use\n"
        + "# `convoy spoke install --cluster NAME --hub ADDR --token TOKEN` which fills them in.\n"
        + yaml.dump(kustomization, Dumper=yaml.CSafeDumper, sort_keys=False)
    )
    return files


def apply_manifests(manifests: Sequence[Mapping[str, Any]], *, kubeconfig: str | None,
                    context: str | None) -> list[str]:
    """Server-side apply the manifests, in order, to a kubeconfig's context; lines saying what happened."""
    # The spoke extra, imported here so printing works without a cluster client.
    from spoke.cluster import ClusterClient, errors

    try:
        client = ClusterClient.from_kubeconfig(kubeconfig, context=context)
    except errors.ClusterError as exc:
        raise click.ClickException(str(exc)) from exc
    lines: list[str] = []
    try:
        for manifest in manifests:
            ref = ObjectRef.of(manifest)
            try:
                created, _ = client.apply_status(manifest, manager=FIELD_MANAGER, force=True)
            except errors.ClusterError as exc:
                raise click.ClickException(f"{ref}: apply failed: {exc}") from exc
            lines.append(f"{ref} {'created' if created else 'configured'}")
    finally:
        client.close()
    return lines


@click.command("install")
@click.option("--cluster", required=True, help="This cluster's name, as the hub knows it.")
@click.option("--hub", default=None,
              help="Hub gRPC address host:port reachable from the cluster, or several comma-separated (hub replicas); "
                   "default: the one the join token carries.")
@click.option("--token", envvar="CONVOY_SPOKE_TOKEN", default=None,
              help="Join token from `convoy token create` (or a bare bootstrap token) [CONVOY_SPOKE_TOKEN: keeps "
                   "it out of `ps`].")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None, help="Read the token from this file.")
@click.option("--labels", default="", help="Cluster labels k=v,... sent at registration.")
@click.option("--namespace", default=settings.DEFAULT_NAMESPACE, show_default=True,
              help="Namespace the spoke runs in.")
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="Spoke container image.")
@click.option("--insecure", is_flag=True, help="Plaintext gRPC to the hub: local sandboxes only.")
@click.option("--apply", "do_apply", is_flag=True,
              help="Apply to the current kube context (server-side apply) instead of printing.")
@click.option("--context", help="Kubeconfig context for --apply (default: the current one).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig for --apply.")
@click.option("--rbac", "rbac_mode", type=click.Choice([m.value for m in RbacMode]), default=RbacMode.CLUSTER.value,
              show_default=True,
              help="cluster: the spoke may write anything anywhere. namespaced: it reads everywhere but writes "
                   "only in --namespaces (cluster-scoped kinds are refused). derived: exactly the kinds and "
                   "namespaces of --bundle (re-run it when the fleet adds a kind or namespace).")
@click.option("--namespaces", default="", help="With --rbac namespaced: a,b — the namespaces the spoke may write.")
@click.option("--bundle", "bundle_file", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="With --rbac derived: the cluster's bundle, as `convoy render --cluster NAME` prints it "
                   "(YAML or JSON; - for stdin), or a plain manifest stream.")
def install(*, cluster: str, hub: str | None, token: str | None, token_file: str | None, labels: str, namespace: str,
            image: str, insecure: bool, do_apply: bool, context: str | None, kubeconfig: str | None,
            rbac_mode: str, namespaces: str, bundle_file: str | None) -> None:
    """Print (or --apply) the manifests that install the spoke in a cluster.

    \b
    Examples:
      convoy spoke install --cluster edge-1 --token-file join.token --apply
      CONVOY_SPOKE_TOKEN=$(cat join.token) convoy spoke install --cluster edge-1 > spoke.yaml
      convoy spoke install --cluster edge-1 --token-file join.token --rbac namespaced --namespaces shop,web
      convoy render --repo fleet --cluster edge-1 > edge-1.yaml
      convoy spoke install --cluster edge-1 --token-file join.token --rbac derived --bundle edge-1.yaml
    """
    try:
        if token and token_file:
            raise settings.SettingsError("token: give --token or --token-file, not both")
        if token_file:
            token = settings.read_token_file(token_file)
        if not token:
            raise settings.SettingsError("token: give --token, --token-file or CONVOY_SPOKE_TOKEN")
        if not hub and jointoken.is_join_token(token.strip()):
            hub = settings.parse_join_token(token.strip()).hub_address
        if not hub:
            raise settings.SettingsError("hub: give --hub (the token carries no hub address)")
        manifests = install_manifests(
            cluster=cluster, hub=hub, token=token, labels=settings.parse_labels(labels, source="--labels"),
            namespace=namespace, image=image, insecure=insecure, rbac=RbacMode(rbac_mode),
            namespaces=[n.strip() for n in namespaces.split(",") if n.strip()],
            bundle=read_bundle(bundle_file) if bundle_file else None,
            bundle_source=bundle_file or "the bundle")
    except settings.SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    if insecure:
        click.echo("WARNING: --insecure: the spoke will talk to the hub without TLS; for local sandboxes only.",
                   err=True)
    if not do_apply:
        click.echo(render_yaml(manifests), nl=False)
        return
    for line in apply_manifests(manifests, kubeconfig=kubeconfig, context=context):
        click.echo(line)


def _write_base(directory: str) -> None:
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for name, text in base_files().items():
        (target / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    _write_base(sys.argv[1] if len(sys.argv) > 1 else "deploy/spoke")
