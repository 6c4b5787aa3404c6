"""What the hub fault tests share: a seven-cluster fleet written in three store batches, a reference
render, and reads of the hub's database."""

from __future__ import annotations

from pathlib import Path

from hub.fleet import clusters as fleet_clusters
from hub.render import pipeline
from hub.source import git as gitsource
from hub.store import db as store_db
from hub.store import models
from hub.store import repository as store
from tests.integration.hub_harness import FLEET_YAML, FleetRepo, standard_fleet

#: Three clusters per write batch, so seven clusters take three batches.
_BATCHED_HUB = "import hub.service as s; s._WRITE_BATCH = 3; from hub.cli import main; main()"
CLUSTERS = [f"c{n}" for n in range(1, 8)]
ROLLOUT = """\
rollout:
  bakeTime: 1h
  progressDeadline: 1h
  waves:
    - name: canary
      selector: {matchLabels: {canary: "true"}}
"""


def _fleet(tmp_path: Path, *, rollout: bool) -> FleetRepo:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    files: dict[str, str | None] = {"fleet.yaml": FLEET_YAML + (ROLLOUT if rollout else "")}
    for name in CLUSTERS:
        canary = '\n  canary: "true"' if name == "c1" else ""
        files[f"clusters/{name}/cluster.yaml"] = f"labels:\n  env: prod{canary}\n"
    repo.commit(files, message="seven clusters")
    return repo


def _render(repo: FleetRepo, sha: str, mirror: Path) -> dict[str, str]:
    """The digests a hub that is never killed renders at ``sha`` (the same pipeline, in this process)."""
    source = gitsource.GitSource(url=str(repo.path), mirror_dir=mirror)
    source.fetch()
    fs = source.fs_at(sha)
    declared = fleet_clusters.declared_clusters(fs)
    infos = [fleet_clusters.cluster_info(name, decl=declared[name]) for name in sorted(declared)]
    renders = pipeline.Renderer().render_fleet(fs, infos).clusters
    return {name: render.digest or "" for name, render in renders.items()}


def _history(db: store_db.Database) -> str:
    with db.session(write=False) as s:
        return "\n".join(f"{e.kind} {e.cluster} {e.message}" for e in store.events(s, limit=200))


def _deployed(db: store_db.Database) -> str | None:
    with db.session(write=False) as s:
        return store.get_state(s, store.StateKey.LAST_DEPLOYED_COMMIT)


def _deployed_or_none(db: store_db.Database) -> str | None:
    try:
        return _deployed(db)
    except Exception:  # the hub has not created its schema yet
        return None


def _desired(db: store_db.Database) -> dict[str, str]:
    with db.session(write=False) as s:
        return {name: row.digest for name, row in store.desired_all(s).items()}


def _events(db: store_db.Database, kind: models.EventKind, commit: str) -> list[models.Event]:
    with db.session(write=False) as s:
        return [e for e in store.events(s, kinds=[kind], limit=10_000) if e.commit == commit]
