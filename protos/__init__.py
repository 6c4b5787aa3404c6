"""The shared contract between the hub, the spoke and the CLI.

Map:

* ``convoy/v1/convoy.proto`` and its generated stubs (``convoy_pb2``,
  ``convoy_pb2_grpc``): the gRPC services. Only :mod:`protos.codec` and the
  gRPC servicer/client modules import the stubs.
* :mod:`protos.objects`: ``ObjectRef``, the one identity of a Kubernetes object
  and the one way to print it.
* :mod:`protos.bundle`: canonical bundle bytes, digest, compression, Ed25519
  signing and verification, and the labels/annotations Convoy stamps.
* :mod:`protos.status`: closed vocabularies (phase, health, action).
* :mod:`protos.codec`: conversions between those and the wire messages.
* :mod:`protos.k8s_schema`: list types and merge keys of the built-in kinds (from the
  Kubernetes OpenAPI spec, ``k8s_listschema.json``) and of custom resources (from a CRD schema).
* :mod:`protos.jointoken`: the join token (bootstrap token, pinned CA fingerprint, hub address) the
  hub writes and the spoke reads, and how the CA fingerprint is computed.
* :mod:`protos.selectors`: the Kubernetes label grammar, ``k=v,...`` label text and label selectors
  (fleet.yaml, the CLI and admin API, kustomize patch targets, the spoke's ``--labels``).

This package imports neither ``hub`` nor ``spoke`` (checked by import-linter).
"""
