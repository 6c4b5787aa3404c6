"""kubesim: a Kubernetes API server emulator speaking the real wire protocol.

One process hosts many independent clusters at ``http(s)://127.0.0.1:PORT/clusters/<name>``, each
with its own store, revision counter, discovery, controllers and faults, built lazily on first use.
The unmodified official ``kubernetes`` client and ``kubectl`` are the judges of fidelity.

Map (request path, top to bottom):

* ``server`` -- the aiohttp edge: routing, query parsing, exact ``Status`` bodies, token auth,
  fault injection, ``/kubesim/v1`` admin API; ``start(ServerOptions) -> RunningServer``.
* ``discovery`` / ``openapi`` -- ``/version``, ``/api``, ``/apis``, group and resource lists,
  aggregated discovery; the OpenAPI v3 stubs kubectl's field validation looks for.
* ``registry`` -- create/get/list/update/patch (JSON, merge, strategic, apply), status and scale
  subresources, generation, defaults, managed fields, no-op writes, dry run.
* ``deleting`` -- DELETE, finalizers, propagation, and the garbage-collector, namespace and CRD
  cleanup controllers.
* ``watching`` -- chunked watch streams, history replay, bookmarks, 410, selector-aware events.
* ``store`` -- one cluster's objects, the global revision, event history and subscriptions.
* ``clusters`` -- ``Cluster`` (lazy per-cluster state, allocators, resource table) and ``ClusterSet``.
* ``resources`` -- the built-in resource table and per-kind strategy flags.
* ``crds`` -- CRD validation, establishment, custom resource types, structural pruning/defaults.
* ``selectors`` / ``unknownfields`` / ``errors`` -- label/field selectors, ``fieldValidation``,
  the API error ``Status`` bodies.
* ``workloads`` -- the simulated controllers (outcome/delay annotations documented there).
* ``faults`` -- per-cluster error rates, latency, dropped connections, cut watches.
* ``tlsutil`` -- throwaway CA and server certificate.
* ``apply``, ``fieldsets``, ``managedfields``, ``defaults`` -- server-side apply, FieldsV1 and the
  API server's defaults (pure).
* ``testing`` -- ``KubeSim``, the server in a background thread for tests; ``cli`` -- ``kubesim serve``.

Not emulated: protobuf request bodies (415), CRD version conversion beyond rewriting
``apiVersion``, admission webhooks, RBAC, pods created by workload controllers, the objects
controllers put in every namespace (``kube-root-ca.crt``, the ``default`` ServiceAccount).
"""
