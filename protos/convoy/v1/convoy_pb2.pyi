import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Phase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHASE_UNSPECIFIED: _ClassVar[Phase]
    PHASE_APPLYING: _ClassVar[Phase]
    PHASE_PROGRESSING: _ClassVar[Phase]
    PHASE_READY: _ClassVar[Phase]
    PHASE_DEGRADED: _ClassVar[Phase]
    PHASE_FAILED: _ClassVar[Phase]
    PHASE_DRIFTED: _ClassVar[Phase]
    PHASE_PAUSED: _ClassVar[Phase]
PHASE_UNSPECIFIED: Phase
PHASE_APPLYING: Phase
PHASE_PROGRESSING: Phase
PHASE_READY: Phase
PHASE_DEGRADED: Phase
PHASE_FAILED: Phase
PHASE_DRIFTED: Phase
PHASE_PAUSED: Phase

class RegisterRequest(_message.Message):
    __slots__ = ("bootstrap_token", "cluster_name", "labels", "spoke_version", "age_recipient")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BOOTSTRAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SPOKE_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGE_RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    bootstrap_token: str
    cluster_name: str
    labels: _containers.ScalarMap[str, str]
    spoke_version: str
    age_recipient: str
    def __init__(self, bootstrap_token: _Optional[str] = ..., cluster_name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., spoke_version: _Optional[str] = ..., age_recipient: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("cluster_name", "credential", "hub_ca_pem", "bundle_signing_key", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    HUB_CA_PEM_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_SIGNING_KEY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    credential: str
    hub_ca_pem: bytes
    bundle_signing_key: bytes
    labels: _containers.ScalarMap[str, str]
    def __init__(self, cluster_name: _Optional[str] = ..., credential: _Optional[str] = ..., hub_ca_pem: _Optional[bytes] = ..., bundle_signing_key: _Optional[bytes] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("applied_digest", "age_recipient")
    APPLIED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    AGE_RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    applied_digest: str
    age_recipient: str
    def __init__(self, applied_digest: _Optional[str] = ..., age_recipient: _Optional[str] = ...) -> None: ...

class DesiredState(_message.Message):
    __slots__ = ("cluster_name", "commit", "digest", "size", "paused", "signature", "since", "rollout_wave", "inline_bundle", "inline_compression", "oci_reference")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_WAVE_FIELD_NUMBER: _ClassVar[int]
    INLINE_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    INLINE_COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    OCI_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    commit: str
    digest: str
    size: int
    paused: bool
    signature: bytes
    since: _timestamp_pb2.Timestamp
    rollout_wave: str
    inline_bundle: bytes
    inline_compression: str
    oci_reference: str
    def __init__(self, cluster_name: _Optional[str] = ..., commit: _Optional[str] = ..., digest: _Optional[str] = ..., size: _Optional[int] = ..., paused: _Optional[bool] = ..., signature: _Optional[bytes] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rollout_wave: _Optional[str] = ..., inline_bundle: _Optional[bytes] = ..., inline_compression: _Optional[str] = ..., oci_reference: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at", "interval_seconds")
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    sent_at: _timestamp_pb2.Timestamp
    interval_seconds: int
    def __init__(self, sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_seconds: _Optional[int] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("desired", "heartbeat", "rotation", "age_key_rotation")
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    AGE_KEY_ROTATION_FIELD_NUMBER: _ClassVar[int]
    desired: DesiredState
    heartbeat: Heartbeat
    rotation: CredentialRotation
    age_key_rotation: AgeKeyRotation
    def __init__(self, desired: _Optional[_Union[DesiredState, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., rotation: _Optional[_Union[CredentialRotation, _Mapping]] = ..., age_key_rotation: _Optional[_Union[AgeKeyRotation, _Mapping]] = ...) -> None: ...

class AgeKeyRotation(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CredentialRotation(_message.Message):
    __slots__ = ("credential", "old_valid_seconds")
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    OLD_VALID_SECONDS_FIELD_NUMBER: _ClassVar[int]
    credential: str
    old_valid_seconds: int
    def __init__(self, credential: _Optional[str] = ..., old_valid_seconds: _Optional[int] = ...) -> None: ...

class GetBundleRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class BundleChunk(_message.Message):
    __slots__ = ("digest", "size", "compression", "signature", "compressed_size", "data", "offset")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    digest: str
    size: int
    compression: str
    signature: bytes
    compressed_size: int
    data: bytes
    offset: int
    def __init__(self, digest: _Optional[str] = ..., size: _Optional[int] = ..., compression: _Optional[str] = ..., signature: _Optional[bytes] = ..., compressed_size: _Optional[int] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ...) -> None: ...

class ObjectRef(_message.Message):
    __slots__ = ("group", "kind", "namespace", "name")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    group: str
    kind: str
    namespace: str
    name: str
    def __init__(self, group: _Optional[str] = ..., kind: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ObjectResult(_message.Message):
    __slots__ = ("ref", "app", "action", "health", "reason", "error")
    REF_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ref: ObjectRef
    app: str
    action: str
    health: str
    reason: str
    error: str
    def __init__(self, ref: _Optional[_Union[ObjectRef, _Mapping]] = ..., app: _Optional[str] = ..., action: _Optional[str] = ..., health: _Optional[str] = ..., reason: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class FieldDrift(_message.Message):
    __slots__ = ("path", "desired", "live")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    path: str
    desired: str
    live: str
    def __init__(self, path: _Optional[str] = ..., desired: _Optional[str] = ..., live: _Optional[str] = ...) -> None: ...

class DriftItem(_message.Message):
    __slots__ = ("ref", "app", "kind_of_drift", "fields", "corrected", "detected_at", "managers")
    REF_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    KIND_OF_DRIFT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_FIELD_NUMBER: _ClassVar[int]
    DETECTED_AT_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    ref: ObjectRef
    app: str
    kind_of_drift: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldDrift]
    corrected: bool
    detected_at: _timestamp_pb2.Timestamp
    managers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ref: _Optional[_Union[ObjectRef, _Mapping]] = ..., app: _Optional[str] = ..., kind_of_drift: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldDrift, _Mapping]]] = ..., corrected: _Optional[bool] = ..., detected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., managers: _Optional[_Iterable[str]] = ...) -> None: ...

class DriftEvent(_message.Message):
    __slots__ = ("ref", "app", "action", "kind_of_drift", "fields", "managers", "at", "message")
    REF_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    KIND_OF_DRIFT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ref: ObjectRef
    app: str
    action: str
    kind_of_drift: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldDrift]
    managers: _containers.RepeatedScalarFieldContainer[str]
    at: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, ref: _Optional[_Union[ObjectRef, _Mapping]] = ..., app: _Optional[str] = ..., action: _Optional[str] = ..., kind_of_drift: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldDrift, _Mapping]]] = ..., managers: _Optional[_Iterable[str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class StatusReport(_message.Message):
    __slots__ = ("phase", "applied_commit", "applied_digest", "objects", "drift", "errors", "observed_at", "message", "backlog", "spoke_version", "drift_events")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_COMMIT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    SPOKE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DRIFT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    phase: Phase
    applied_commit: str
    applied_digest: str
    objects: _containers.RepeatedCompositeFieldContainer[ObjectResult]
    drift: _containers.RepeatedCompositeFieldContainer[DriftItem]
    errors: _containers.RepeatedScalarFieldContainer[str]
    observed_at: _timestamp_pb2.Timestamp
    message: str
    backlog: int
    spoke_version: str
    drift_events: _containers.RepeatedCompositeFieldContainer[DriftEvent]
    def __init__(self, phase: _Optional[_Union[Phase, str]] = ..., applied_commit: _Optional[str] = ..., applied_digest: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[ObjectResult, _Mapping]]] = ..., drift: _Optional[_Iterable[_Union[DriftItem, _Mapping]]] = ..., errors: _Optional[_Iterable[str]] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., backlog: _Optional[int] = ..., spoke_version: _Optional[str] = ..., drift_events: _Optional[_Iterable[_Union[DriftEvent, _Mapping]]] = ...) -> None: ...

class ReportStatusResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...

class ListClustersRequest(_message.Message):
    __slots__ = ("selector",)
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    selector: str
    def __init__(self, selector: _Optional[str] = ...) -> None: ...

class ClusterSummary(_message.Message):
    __slots__ = ("name", "labels", "desired_commit", "desired_digest", "applied_commit", "applied_digest", "phase", "objects_ready", "objects_total", "drift_count", "last_seen", "paused", "online", "errors", "wave", "rollout_state", "pinned_digest", "render_errors", "last_report", "last_report_observed", "age_recipient", "age_recipient_changed")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESIRED_COMMIT_FIELD_NUMBER: _ClassVar[int]
    DESIRED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    APPLIED_COMMIT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_READY_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DRIFT_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WAVE_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_STATE_FIELD_NUMBER: _ClassVar[int]
    PINNED_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RENDER_ERRORS_FIELD_NUMBER: _ClassVar[int]
    LAST_REPORT_FIELD_NUMBER: _ClassVar[int]
    LAST_REPORT_OBSERVED_FIELD_NUMBER: _ClassVar[int]
    AGE_RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    AGE_RECIPIENT_CHANGED_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    desired_commit: str
    desired_digest: str
    applied_commit: str
    applied_digest: str
    phase: Phase
    objects_ready: int
    objects_total: int
    drift_count: int
    last_seen: _timestamp_pb2.Timestamp
    paused: bool
    online: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    wave: str
    rollout_state: str
    pinned_digest: str
    render_errors: _containers.RepeatedScalarFieldContainer[str]
    last_report: _timestamp_pb2.Timestamp
    last_report_observed: _timestamp_pb2.Timestamp
    age_recipient: str
    age_recipient_changed: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., desired_commit: _Optional[str] = ..., desired_digest: _Optional[str] = ..., applied_commit: _Optional[str] = ..., applied_digest: _Optional[str] = ..., phase: _Optional[_Union[Phase, str]] = ..., objects_ready: _Optional[int] = ..., objects_total: _Optional[int] = ..., drift_count: _Optional[int] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paused: _Optional[bool] = ..., online: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ..., wave: _Optional[str] = ..., rollout_state: _Optional[str] = ..., pinned_digest: _Optional[str] = ..., render_errors: _Optional[_Iterable[str]] = ..., last_report: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_report_observed: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., age_recipient: _Optional[str] = ..., age_recipient_changed: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListClustersResponse(_message.Message):
    __slots__ = ("clusters", "fleet_commit", "fleet_commit_seen", "heartbeat_seconds", "refused_commit", "fetch_error", "replicas", "oci_push")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    FLEET_COMMIT_FIELD_NUMBER: _ClassVar[int]
    FLEET_COMMIT_SEEN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_COMMIT_FIELD_NUMBER: _ClassVar[int]
    FETCH_ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    OCI_PUSH_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[ClusterSummary]
    fleet_commit: str
    fleet_commit_seen: _timestamp_pb2.Timestamp
    heartbeat_seconds: int
    refused_commit: RefusedCommit
    fetch_error: str
    replicas: _containers.RepeatedCompositeFieldContainer[HubReplica]
    oci_push: OciPushLag
    def __init__(self, clusters: _Optional[_Iterable[_Union[ClusterSummary, _Mapping]]] = ..., fleet_commit: _Optional[str] = ..., fleet_commit_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_seconds: _Optional[int] = ..., refused_commit: _Optional[_Union[RefusedCommit, _Mapping]] = ..., fetch_error: _Optional[str] = ..., replicas: _Optional[_Iterable[_Union[HubReplica, _Mapping]]] = ..., oci_push: _Optional[_Union[OciPushLag, _Mapping]] = ...) -> None: ...

class HubReplica(_message.Message):
    __slots__ = ("name", "address", "leader", "gone", "streams", "started", "last_heartbeat")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    STREAMS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    leader: bool
    gone: bool
    streams: int
    started: _timestamp_pb2.Timestamp
    last_heartbeat: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., leader: _Optional[bool] = ..., gone: _Optional[bool] = ..., streams: _Optional[int] = ..., started: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OciPushLag(_message.Message):
    __slots__ = ("target", "pending", "oldest_seconds")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    OLDEST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    target: str
    pending: int
    oldest_seconds: float
    def __init__(self, target: _Optional[str] = ..., pending: _Optional[int] = ..., oldest_seconds: _Optional[float] = ...) -> None: ...

class RefusedCommit(_message.Message):
    __slots__ = ("commit", "kind", "reason", "since")
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    commit: str
    kind: str
    reason: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, commit: _Optional[str] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetClusterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "at", "kind", "cluster", "commit", "digest", "message", "details_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    at: _timestamp_pb2.Timestamp
    kind: str
    cluster: str
    commit: str
    digest: str
    message: str
    details_json: str
    def __init__(self, id: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., cluster: _Optional[str] = ..., commit: _Optional[str] = ..., digest: _Optional[str] = ..., message: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class ClusterDetail(_message.Message):
    __slots__ = ("summary", "objects", "drift", "recent_events", "message", "render_errors")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RENDER_ERRORS_FIELD_NUMBER: _ClassVar[int]
    summary: ClusterSummary
    objects: _containers.RepeatedCompositeFieldContainer[ObjectResult]
    drift: _containers.RepeatedCompositeFieldContainer[DriftItem]
    recent_events: _containers.RepeatedCompositeFieldContainer[Event]
    message: str
    render_errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, summary: _Optional[_Union[ClusterSummary, _Mapping]] = ..., objects: _Optional[_Iterable[_Union[ObjectResult, _Mapping]]] = ..., drift: _Optional[_Iterable[_Union[DriftItem, _Mapping]]] = ..., recent_events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., message: _Optional[str] = ..., render_errors: _Optional[_Iterable[str]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("cluster", "all", "since", "limit", "kinds")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    all: bool
    since: _timestamp_pb2.Timestamp
    limit: int
    kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cluster: _Optional[str] = ..., all: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("ttl_seconds", "uses", "labels", "description", "cluster", "name_prefix", "any_name")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ANY_NAME_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: int
    uses: int
    labels: _containers.ScalarMap[str, str]
    description: str
    cluster: str
    name_prefix: str
    any_name: bool
    def __init__(self, ttl_seconds: _Optional[int] = ..., uses: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., description: _Optional[str] = ..., cluster: _Optional[str] = ..., name_prefix: _Optional[str] = ..., any_name: _Optional[bool] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "expires_at", "uses_left", "labels", "description", "revoked", "cluster", "name_prefix", "any_name")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USES_LEFT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ANY_NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    expires_at: _timestamp_pb2.Timestamp
    uses_left: int
    labels: _containers.ScalarMap[str, str]
    description: str
    revoked: bool
    cluster: str
    name_prefix: str
    any_name: bool
    def __init__(self, id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uses_left: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., description: _Optional[str] = ..., revoked: _Optional[bool] = ..., cluster: _Optional[str] = ..., name_prefix: _Optional[str] = ..., any_name: _Optional[bool] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("info", "token", "ca_fingerprint", "join_token")
    INFO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    JOIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    token: str
    ca_fingerprint: str
    join_token: str
    def __init__(self, info: _Optional[_Union[TokenInfo, _Mapping]] = ..., token: _Optional[str] = ..., ca_fingerprint: _Optional[str] = ..., join_token: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: _Optional[bool] = ...) -> None: ...

class SetPausedRequest(_message.Message):
    __slots__ = ("clusters", "selector", "paused")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedScalarFieldContainer[str]
    selector: str
    paused: bool
    def __init__(self, clusters: _Optional[_Iterable[str]] = ..., selector: _Optional[str] = ..., paused: _Optional[bool] = ...) -> None: ...

class SetPausedResponse(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, clusters: _Optional[_Iterable[str]] = ...) -> None: ...

class SyncNowRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SyncNowResponse(_message.Message):
    __slots__ = ("commit", "changed", "message", "desired_clusters", "held_clusters", "pinned_clusters", "render_error_clusters", "unchanged_count", "failed")
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DESIRED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    HELD_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    PINNED_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    RENDER_ERROR_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    commit: str
    changed: bool
    message: str
    desired_clusters: _containers.RepeatedScalarFieldContainer[str]
    held_clusters: _containers.RepeatedScalarFieldContainer[str]
    pinned_clusters: _containers.RepeatedScalarFieldContainer[str]
    render_error_clusters: _containers.RepeatedScalarFieldContainer[str]
    unchanged_count: int
    failed: bool
    def __init__(self, commit: _Optional[str] = ..., changed: _Optional[bool] = ..., message: _Optional[str] = ..., desired_clusters: _Optional[_Iterable[str]] = ..., held_clusters: _Optional[_Iterable[str]] = ..., pinned_clusters: _Optional[_Iterable[str]] = ..., render_error_clusters: _Optional[_Iterable[str]] = ..., unchanged_count: _Optional[int] = ..., failed: _Optional[bool] = ...) -> None: ...

class GetBundleObjectsRequest(_message.Message):
    __slots__ = ("digest",)
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    digest: str
    def __init__(self, digest: _Optional[str] = ...) -> None: ...

class GetBundleObjectsResponse(_message.Message):
    __slots__ = ("bundle_json",)
    BUNDLE_JSON_FIELD_NUMBER: _ClassVar[int]
    bundle_json: bytes
    def __init__(self, bundle_json: _Optional[bytes] = ...) -> None: ...

class RolloutStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WaveStatus(_message.Message):
    __slots__ = ("name", "state", "clusters", "counts", "started_at", "finished_at", "ready_since", "bake_seconds", "progress_deadline_seconds", "max_unavailable", "on_failure", "absent", "min_ready", "empty_wave", "approval_required", "approvers", "approval_paths", "approval_matched", "approved_by", "approved_at", "approval_comment")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class AbsentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    READY_SINCE_FIELD_NUMBER: _ClassVar[int]
    BAKE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    ABSENT_FIELD_NUMBER: _ClassVar[int]
    MIN_READY_FIELD_NUMBER: _ClassVar[int]
    EMPTY_WAVE_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_PATHS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_MATCHED_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_COMMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    clusters: _containers.RepeatedScalarFieldContainer[str]
    counts: _containers.ScalarMap[str, int]
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    ready_since: _timestamp_pb2.Timestamp
    bake_seconds: float
    progress_deadline_seconds: float
    max_unavailable: str
    on_failure: str
    absent: _containers.ScalarMap[str, str]
    min_ready: str
    empty_wave: str
    approval_required: bool
    approvers: _containers.RepeatedScalarFieldContainer[str]
    approval_paths: _containers.RepeatedScalarFieldContainer[str]
    approval_matched: _containers.RepeatedScalarFieldContainer[str]
    approved_by: str
    approved_at: _timestamp_pb2.Timestamp
    approval_comment: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., clusters: _Optional[_Iterable[str]] = ..., counts: _Optional[_Mapping[str, int]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bake_seconds: _Optional[float] = ..., progress_deadline_seconds: _Optional[float] = ..., max_unavailable: _Optional[str] = ..., on_failure: _Optional[str] = ..., absent: _Optional[_Mapping[str, str]] = ..., min_ready: _Optional[str] = ..., empty_wave: _Optional[str] = ..., approval_required: _Optional[bool] = ..., approvers: _Optional[_Iterable[str]] = ..., approval_paths: _Optional[_Iterable[str]] = ..., approval_matched: _Optional[_Iterable[str]] = ..., approved_by: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approval_comment: _Optional[str] = ...) -> None: ...

class RolloutStatusResponse(_message.Message):
    __slots__ = ("id", "commit", "state", "reason", "waves", "failing_clusters", "started_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WAVES_FIELD_NUMBER: _ClassVar[int]
    FAILING_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    commit: str
    state: str
    reason: str
    waves: _containers.RepeatedCompositeFieldContainer[WaveStatus]
    failing_clusters: _containers.RepeatedScalarFieldContainer[str]
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., commit: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., waves: _Optional[_Iterable[_Union[WaveStatus, _Mapping]]] = ..., failing_clusters: _Optional[_Iterable[str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RolloutControlRequest(_message.Message):
    __slots__ = ("action",)
    ACTION_FIELD_NUMBER: _ClassVar[int]
    action: str
    def __init__(self, action: _Optional[str] = ...) -> None: ...

class PinRequest(_message.Message):
    __slots__ = ("clusters", "selector", "to")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedScalarFieldContainer[str]
    selector: str
    to: str
    def __init__(self, clusters: _Optional[_Iterable[str]] = ..., selector: _Optional[str] = ..., to: _Optional[str] = ...) -> None: ...

class PinResponse(_message.Message):
    __slots__ = ("clusters", "digest")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedScalarFieldContainer[str]
    digest: str
    def __init__(self, clusters: _Optional[_Iterable[str]] = ..., digest: _Optional[str] = ...) -> None: ...

class RemoveClusterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RemoveClusterResponse(_message.Message):
    __slots__ = ("removed", "streams_ended")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    STREAMS_ENDED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    streams_ended: int
    def __init__(self, removed: _Optional[bool] = ..., streams_ended: _Optional[int] = ...) -> None: ...

class RotateCredentialRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RotateCredentialResponse(_message.Message):
    __slots__ = ("online",)
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    online: bool
    def __init__(self, online: _Optional[bool] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class RotateAgeKeyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RotateAgeKeyResponse(_message.Message):
    __slots__ = ("online",)
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    online: bool
    def __init__(self, online: _Optional[bool] = ...) -> None: ...

class RolloutApproveRequest(_message.Message):
    __slots__ = ("wave", "comment")
    WAVE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    wave: str
    comment: str
    def __init__(self, wave: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class CreateAdminCredentialRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateAdminCredentialResponse(_message.Message):
    __slots__ = ("name", "credential")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    credential: str
    def __init__(self, name: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class ListAdminCredentialsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdminCredentialInfo(_message.Message):
    __slots__ = ("name", "created_at", "created_by", "revoked", "revoked_at", "bootstrap")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_FIELD_NUMBER: _ClassVar[int]
    name: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    revoked: bool
    revoked_at: _timestamp_pb2.Timestamp
    bootstrap: bool
    def __init__(self, name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., revoked: _Optional[bool] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bootstrap: _Optional[bool] = ...) -> None: ...

class ListAdminCredentialsResponse(_message.Message):
    __slots__ = ("credentials",)
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    credentials: _containers.RepeatedCompositeFieldContainer[AdminCredentialInfo]
    def __init__(self, credentials: _Optional[_Iterable[_Union[AdminCredentialInfo, _Mapping]]] = ...) -> None: ...

class RevokeAdminCredentialRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class RevokeAdminCredentialResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: bool
    def __init__(self, revoked: _Optional[bool] = ...) -> None: ...
