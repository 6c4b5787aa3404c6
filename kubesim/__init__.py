"""kubesim: a Kubernetes API server emulator speaking the real wire protocol.

One process hosts many independent clusters at ``http(s)://127.0.0.1:PORT/clusters/<name>``, each
with its own store, revision counter, discovery, controllers and faults, built lazily on first use.
The unmodified official ``kubernetes`` client and ``kubectl`` are the judges of fidelity.

Map, top to bottom (the layers import-linter checks: a module imports only from lines below it):

* ``cli`` -- ``kubesim serve``; ``testing`` -- ``KubeSim``, the server in a background thread.
* ``server`` -- the aiohttp edge: routing, query parsing, exact ``Status`` bodies, token auth,
  fault injection, ``/kubesim/v1`` admin API; ``start(ServerOptions) -> RunningServer``.
* ``wiring`` -- the composition root: boots a cluster with its controllers and first namespaces.
* the controllers, each a store listener: ``collecting`` (garbage collector, namespace and CRD
  cleanup), ``establishing`` (the CRD controller), ``workloads`` (simulated workload controllers,
  outcome/delay annotations documented there); and beside them, for the edge: ``watching``
  (chunked watch streams, history replay, bookmarks, 410, selector-aware events), ``discovery`` /
  ``openapi`` (``/version``, ``/api``, ``/apis``, aggregated discovery, the OpenAPI v3 stubs
  kubectl's field validation looks for).
* ``deleting`` -- the DELETE verb: preconditions, propagation policies, finalizers.
* ``registry`` -- create/get/list/update/patch (JSON, merge, strategic, apply), status and scale
  subresources, generation, defaults, managed fields, no-op writes, dry run.
* ``clusters`` -- ``Cluster`` (lazy per-cluster state, allocators, resource table, timers) and
  ``ClusterSet``.
* pure rules and parts: ``crds`` (CRD strategy and validation, the types a CRD defines),
  ``structural`` (custom resources pruned, defaulted and checked against their schema),
  ``apply`` / ``managedfields`` / ``fieldsets`` (server-side apply, FieldsV1), ``strategic_merge``,
  ``defaults``, ``validation``, ``immutability``, ``decoding``, ``unknownfields``
  (``fieldValidation``), ``selectors`` (label/field selectors), ``tables``; ``store`` (one
  cluster's objects, the global revision, event history and subscriptions), ``faults`` (error
  rates, latency, dropped connections, cut watches), ``clock`` (timestamps, controller timers),
  ``tlsutil`` (throwaway CA and server certificate), ``resources`` (the built-in resource table
  and per-kind strategy flags), ``errors`` (the API error ``Status`` bodies).

Not emulated: protobuf request bodies of kinds other than those kubectl's imperative commands
and reviews send (415, see ``kubesim.protobufs``), CRD version conversion beyond rewriting
``apiVersion``, admission webhooks, pods created by workload controllers, token expiry.
Also emulated: ServiceAccount tokens and the RBAC authorizer (``rbac``, ``authorizing``;
the admin kubeconfig is system:masters), and the objects controllers put in every namespace
(``kube-root-ca.crt``, the ``default`` ServiceAccount: ``populating``).
"""
