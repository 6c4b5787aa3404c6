"""Progressive rollouts: a commit that changes bundles reaches the fleet wave by wave.

* :mod:`hub.rollout.planning` — pure: wave assignment, the state machine
  (``step``), supersession, failure and rollback decisions. No I/O.
* :mod:`hub.rollout.controller` — the hub-side driver: loads and saves rollout
  state in the database, applies releases/reverts as desired-state changes,
  records every transition in the event log.
"""
