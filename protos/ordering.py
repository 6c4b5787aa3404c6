"""The apply order shared by the hub (bundle order) and the spoke (staged apply).

One declared table, like fluxcd/pkg ``ssa/sort.go``: the hub writes a bundle's objects in this order
and the spoke applies them in it, so the two can never disagree.
"""

from __future__ import annotations

__all__ = ["BUILTIN_CLUSTER_SCOPED", "KIND_LAST", "KIND_ORDER", "kind_rank"]

#: Kinds in apply order within a stage. Kinds not listed go after all of these, except :data:`KIND_LAST`.
KIND_ORDER: tuple[str, ...] = (
    'CustomResourceDefinition',
    'Namespace',
    'ResourceQuota',
    'LimitRange',
    'PriorityClass',
    'RuntimeClass',
    'StorageClass',
    'VolumeSnapshotClass',
    'IngressClass',
    'GatewayClass',
    'PodSecurityPolicy',
    'ServiceAccount',
    'ClusterRole',
    'Role',
    'ClusterRoleBinding',
    'RoleBinding',
    'ConfigMap',
    'Secret',
    'Endpoints',
    'Service',
    'PersistentVolume',
    'PersistentVolumeClaim',
    'Deployment',
    'StatefulSet',
    'DaemonSet',
    'ReplicaSet',
    'Job',
    'CronJob',
    'PodDisruptionBudget',
    'HorizontalPodAutoscaler',
    'Ingress',
)
#: Applied after everything else: webhooks and API services could reject or intercept the rest.
KIND_LAST: tuple[str, ...] = ('APIService', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration')

#: Built-in cluster-scoped kinds by (group, kind). A manifest may omit ``metadata.namespace`` and
#: still be namespaced (its app's namespace applies), so scope cannot be read off a manifest.
BUILTIN_CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset({
    ('', 'ComponentStatus'),
    ('', 'Namespace'),
    ('', 'Node'),
    ('', 'PersistentVolume'),
    ('admissionregistration.k8s.io', 'MutatingWebhookConfiguration'),
    ('admissionregistration.k8s.io', 'ValidatingAdmissionPolicy'),
    ('admissionregistration.k8s.io', 'ValidatingAdmissionPolicyBinding'),
    ('admissionregistration.k8s.io', 'ValidatingWebhookConfiguration'),
    ('apiextensions.k8s.io', 'CustomResourceDefinition'),
    ('apiregistration.k8s.io', 'APIService'),
    ('certificates.k8s.io', 'CertificateSigningRequest'),
    ('certificates.k8s.io', 'ClusterTrustBundle'),
    ('flowcontrol.apiserver.k8s.io', 'FlowSchema'),
    ('flowcontrol.apiserver.k8s.io', 'PriorityLevelConfiguration'),
    ('gateway.networking.k8s.io', 'GatewayClass'),
    ('networking.k8s.io', 'IPAddress'),
    ('networking.k8s.io', 'IngressClass'),
    ('networking.k8s.io', 'ServiceCIDR'),
    ('node.k8s.io', 'RuntimeClass'),
    ('policy', 'PodSecurityPolicy'),
    ('rbac.authorization.k8s.io', 'ClusterRole'),
    ('rbac.authorization.k8s.io', 'ClusterRoleBinding'),
    ('scheduling.k8s.io', 'PriorityClass'),
    ('snapshot.storage.k8s.io', 'VolumeSnapshotClass'),
    ('storage.k8s.io', 'CSIDriver'),
    ('storage.k8s.io', 'CSINode'),
    ('storage.k8s.io', 'StorageClass'),
    ('storage.k8s.io', 'VolumeAttachment'),
})

_RANK: dict[str, int] = {kind: i for i, kind in enumerate(KIND_ORDER)}
_RANK.update({kind: len(KIND_ORDER) + 1 + i for i, kind in enumerate(KIND_LAST)})
_UNLISTED = len(KIND_ORDER)


def kind_rank(kind: str) -> int:
    """Position of ``kind`` in the apply order (unlisted kinds between the table and the last kinds)."""
    return _RANK.get(kind, _UNLISTED)
