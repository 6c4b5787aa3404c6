"""``convoy drift adopt``: turn a manual change the spoke reported into a commit on a new branch.

The drift comes from the hub (GetCluster, the spoke's current drift set); the patches from
:mod:`hub.render.adoption`; the text edits from :mod:`hub.fleet.editing`. The commit is built in a
private Git index from HEAD, so the user's working tree, index and checked-out branch are never
touched (uncommitted edits neither block nor leak into it). Before the branch is kept, its
revision is rendered and every adopted field must render to its live value; otherwise the branch
is removed and the command says which field did not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import posixpath
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from hub import adminclient, cliconfig
from hub.commands.fleet import complete_clusters, hub_command
from hub.fleet import clusters as fleet_clusters
from hub.fleet import editing, model
from hub.render import adoption, pipeline
from hub.tree import errors, repofs
from protos import codec, selectors
from protos.convoy.v1 import convoy_pb2 as pb
from protos.objects import ObjectRef

__all__ = ["adopt", "drift"]

FLEET_FILE = "fleet.yaml"
DEFAULT_CLUSTER_LAYER = "clusters/{cluster}/{app}"


class AdoptFailed(click.ClickException):
    """Exit 1 with one clear line."""


@click.group()
def drift() -> None:
    """Manual changes the spokes report: adopt them into the fleet repository."""


def _drifted(item: pb.DriftItem) -> adoption.Drifted:
    return adoption.Drifted(
        ref=codec.ref_from_wire(item.ref), app=item.app, kind_of_drift=item.kind_of_drift,
        changes=tuple(adoption.Change(f.path, f.desired, f.live) for f in item.fields),
        managers=tuple(item.managers), detected_at=codec.datetime_from_wire(item.detected_at)
        if item.HasField("detected_at") else None)


def _ref_matches(text: str, ref: ObjectRef) -> bool:
    """``KIND/NAMESPACE/NAME`` or ``KIND/NAME`` (KIND as ``Deployment`` or ``Deployment.apps``)."""
    parts = text.split("/")
    if len(parts) == 2:
        kind, namespace, name = parts[0], "", parts[1]
    elif len(parts) == 3:
        kind, namespace, name = parts
    else:
        raise click.BadParameter(f"{text!r} is not KIND/NAMESPACE/NAME or KIND/NAME", param_hint="REF")
    kind_ok = kind.lower() in (ref.kind.lower(), ref.group_kind.lower())
    return kind_ok and name == ref.name and namespace == ref.namespace


def _select(detail: pb.ClusterDetail, cluster: str, refs: Sequence[str]) -> list[adoption.Drifted]:
    items = [_drifted(item) for item in detail.drift]
    if not items:
        raise AdoptFailed(f"cluster {cluster}: the hub has no drift reported for it; nothing to adopt")
    if not refs:
        return items
    chosen: list[adoption.Drifted] = []
    for text in refs:
        found = [d for d in items if _ref_matches(text, d.ref)]
        if not found:
            raise AdoptFailed(f"cluster {cluster}: no drift reported on {text} (drifted: "
                              + ", ".join(str(d.ref) for d in items) + ")")
        chosen.extend(d for d in found if d not in chosen)
    return chosen


# -- the repository -----------------------------------------------------------------------------


@dataclasses.dataclass
class _Repo:
    """The fleet repository at HEAD, read from Git objects (the working tree is not read)."""

    git: Any  # git.Repo
    head: str
    branch: str  # the checked-out branch's name, or the commit when detached

    def read(self, path: str) -> str | None:
        """The file's text at HEAD; None when HEAD has no such file."""
        import git

        try:
            return str(self.git.git.show(f"{self.head}:{path}", strip_newline_in_stdout=False))
        except git.GitCommandError:
            return None


def _open_repo(path: str) -> _Repo:
    import git

    try:
        repo = git.Repo(path, search_parent_directories=False)
        head = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise AdoptFailed(f"{path}: not a Git repository (give the fleet repository with --repo)") from None
    except ValueError:
        raise AdoptFailed(f"{path}: the repository has no commit yet") from None
    branch = head if repo.head.is_detached else repo.active_branch.name
    return _Repo(repo, head, branch)


def _commit_on_branch(repo: _Repo, branch: str, files: Mapping[str, str], message: str) -> str:
    """A commit of HEAD plus ``files`` on a new branch ``branch``, via a private index; its sha."""
    import git

    if repo.git.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}", with_exceptions=False):
        raise AdoptFailed(f"branch {branch} already exists; give another name with --branch")
    with tempfile.TemporaryDirectory(prefix="convoy-adopt-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        try:
            repo.git.git.read_tree(repo.head, env=env)
            for path, text in files.items():
                staged = Path(tmp) / "blob"
                staged.write_text(text)
                sha = repo.git.git.hash_object("-w", str(staged))
                repo.git.git.update_index("--add", "--cacheinfo", f"100644,{sha},{path}", env=env)
            tree = repo.git.git.write_tree(env=env)
            commit = repo.git.git.commit_tree(tree, "-p", repo.head, "-m", message, env=env)
            repo.git.git.update_ref(f"refs/heads/{branch}", commit, "")
        except git.GitCommandError as exc:
            detail = (exc.stderr or "").strip().removeprefix("stderr:").strip(" '\n")
            raise AdoptFailed(f"cannot commit the adoption to branch {branch}: {detail or exc}") from None
    return str(commit)


def _branch_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if (value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", value)) or (value and ".." in value):
        raise click.BadParameter(f"{value!r} is not a usable branch name")
    return value


# -- rendering ------------------------------------------------------------------------------------


def _render(repo: _Repo, rev: str, labels: Mapping[str, Mapping[str, str]]) -> pipeline.FleetRender:
    fs = repofs.GitTreeFS(repo.git, rev)
    try:
        declared = fleet_clusters.declared_clusters(fs, max_bytes=pipeline.RenderLimits().max_file_bytes)
    except errors.RenderError as exc:
        raise AdoptFailed(str(exc)) from None
    infos = [info for info in fleet_clusters.all_clusters(declared, labels) if info.name in labels]
    result = pipeline.Renderer().render_fleet(fs, infos)
    if result.fleet_error is not None or result.fleet is None:
        raise AdoptFailed(f"{rev[:12]}: {result.fleet_error}")
    return result


def _objects(result: pipeline.FleetRender, cluster: str) -> dict[ObjectRef, dict[str, Any]]:
    render = result.clusters.get(cluster)
    if render is None or render.bundle is None:
        problems = "; ".join(str(e) for e in render.errors) if render else "not rendered"
        raise AdoptFailed(f"cluster {cluster} does not render at {result.revision[:12]}: {problems}")
    return {ObjectRef.of(obj): obj for obj in render.bundle.get("objects", [])}


# -- the edits ------------------------------------------------------------------------------------


def _component_edit(repo: _Repo, files: dict[str, str], directory: str, entries: list[dict[str, Any]],
                    comment: str) -> None:
    path = f"{directory}/kustomization.yaml"
    existing = files.get(path) or repo.read(path)
    if existing is None:
        files[path] = editing.new_component(entries, comment=comment)
    else:
        try:
            files[path] = editing.add_patches(existing, entries, where=path)
        except editing.EditError as exc:
            raise AdoptFailed(str(exc)) from None


def _fleet_text(repo: _Repo, files: dict[str, str]) -> str:
    text = files.get(FLEET_FILE) or repo.read(FLEET_FILE)
    if text is None:
        raise AdoptFailed(f"{FLEET_FILE} is not in the repository at {repo.head[:12]}")
    return text


def _edit_fleet(files: dict[str, str], repo: _Repo, change: Any) -> None:
    try:
        files[FLEET_FILE] = change(_fleet_text(repo, files))
    except editing.EditError as exc:
        raise AdoptFailed(str(exc)) from None


def _patches(items: Sequence[adoption.Drifted], objects: Mapping[ObjectRef, Mapping[str, Any]],
             fleet: model.Fleet) -> Iterator[tuple[model.App, list[dict[str, Any]]]]:
    for item in items:
        try:
            app = fleet.app(item.app)
        except KeyError:
            raise AdoptFailed(f"{item.ref}: app {item.app!r} is not in {FLEET_FILE} at HEAD") from None
        try:
            yield app, adoption.patches_for(item, objects.get(item.ref), app_namespace=app.namespace)
        except adoption.AdoptError as exc:
            raise AdoptFailed(f"app {app.name}: {exc}") from None


def _cluster_layer_edits(repo: _Repo, cluster: str, items: Sequence[adoption.Drifted],
                         objects: Mapping[ObjectRef, Mapping[str, Any]], fleet: model.Fleet) -> dict[str, str]:
    files: dict[str, str] = {}
    wired: set[str] = set()  # apps given a clusterLayer in this commit (two objects of one app: one line)
    for app, entries in _patches(items, objects, fleet):
        if app.cluster_layer is None and app.name not in wired:
            wired.add(app.name)
            _edit_fleet(files, repo, lambda text, a=app: editing.add_app_field(
                text, a.name, "clusterLayer", DEFAULT_CLUSTER_LAYER, where=FLEET_FILE))
        if app.cluster_layer is None:
            directory = DEFAULT_CLUSTER_LAYER.format(cluster=cluster, app=app.name)
        else:
            directory = str(app.cluster_layer_path(cluster))
        _component_edit(repo, files, directory, entries,
                        comment=f"The per-cluster layer of {app.name} on {cluster} (clusterLayer "
                                f"{app.cluster_layer or DEFAULT_CLUSTER_LAYER}).\n"
                                "Started by `convoy drift adopt`: it adopts manual changes as patches.")
    return files


def _overlay_edits(repo: _Repo, selector: str, name: str, items: Sequence[adoption.Drifted],
                   objects: Mapping[ObjectRef, Mapping[str, Any]], fleet: model.Fleet) -> dict[str, str]:
    files: dict[str, str] = {}
    for app, entries in _patches(items, objects, fleet):
        directory = f"{posixpath.dirname(app.path.rstrip('/'))}/overlays/adopted/{name}"
        if repo.read(f"{directory}/kustomization.yaml") is None and f"{directory}/kustomization.yaml" not in files:
            _edit_fleet(files, repo, lambda text, a=app, d=directory: editing.add_app_overlay(
                text, a.name, selector, d, where=FLEET_FILE))
        _component_edit(repo, files, directory, entries,
                        comment=f"Adopted by `convoy drift adopt --selector {selector}`: a manual change every "
                                "matching cluster made the same way.")
    return files


def _declared(repo: _Repo) -> dict[str, fleet_clusters.ClusterDecl]:
    try:
        return fleet_clusters.declared_clusters(repofs.GitTreeFS(repo.git, repo.head),
                                                max_bytes=pipeline.RenderLimits().max_file_bytes)
    except errors.RenderError as exc:
        raise AdoptFailed(str(exc)) from None


def _same_everywhere(client: adminclient.AdminClient, repo: _Repo, cluster: str, selector: str,
                     items: Sequence[adoption.Drifted]) -> dict[str, dict[str, str]]:
    """The labels of every cluster ``selector`` matches, once each has drifted exactly as ``items``.

    The overlay will apply to every cluster the selector matches, so a cluster declared in Git that
    the hub has no report from (its live state is unknown) is refused as well.
    """
    try:
        parsed = selectors.parse(selector, where="--selector")
    except selectors.SelectorError as exc:
        raise click.BadParameter(str(exc), param_hint="--selector") from None
    matched = {c.name: dict(c.labels) for c in client.list_clusters(selector).clusters}
    if cluster not in matched:
        raise AdoptFailed(f"cluster {cluster} does not match --selector {selector!r}")
    unknown = sorted(name for name, decl in _declared(repo).items()
                     if name not in matched and decl.error is None and parsed.matches(decl.labels))
    if unknown:
        raise AdoptFailed(f"--selector {selector!r} also matches clusters declared in Git that the hub has no "
                          f"report from: {', '.join(unknown)}; narrow the selector or adopt cluster by cluster")
    differ = []
    for name in sorted(matched):
        if name == cluster:
            continue
        theirs = [_drifted(d) for d in client.get_cluster(name).drift]
        if not all(any(adoption.same_drift(mine, other) for other in theirs) for mine in items):
            differ.append(name)
    if differ:
        raise AdoptFailed(f"--selector {selector!r}: these clusters did not drift the way {cluster} did (same "
                          f"objects, fields and live values): {', '.join(differ)}; adopt them one by one")
    return matched


@drift.command("adopt")
@click.argument("cluster", shell_complete=complete_clusters)
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--repo", "repo_path", default=".", show_default=True, help="The fleet Git repository (a local path).")
@click.option("--branch", default=None, callback=_branch_name,
              help="The new branch (default: convoy/adopt-CLUSTER-YYYYMMDD-HHMMSS), made from HEAD.")
@click.option("-l", "--selector", default=None,
              help="Adopt for every cluster this label selector matches, into one new overlay of the app; "
                   "refused unless they all drifted the same way.")
@click.option("--dry-run", is_flag=True, help="Print the files and the commit message; make no branch.")
@hub_command
def adopt(hub_name: str | None, cluster: str, refs: tuple[str, ...], repo_path: str, branch: str | None,
          selector: str | None, dry_run: bool) -> None:
    """Write CLUSTER's reported drift into the fleet repository as patches, on a new branch.

    REF is KIND/NAMESPACE/NAME (KIND/NAME when cluster-scoped); default: every drifted object of
    CLUSTER. The patches go into the app's cluster layer (clusters/CLUSTER/APP by default; fleet.yaml
    gets `clusterLayer` when the app has none), or with --selector into a new overlay
    APPDIR/overlays/adopted/NAME wired into the app's overlays. The commit is made from HEAD without
    touching the working tree; check the branch out, or push it, and preview it with
    `convoy preview --base HEAD --head BRANCH`. Secret data is refused: seal it with `convoy seal`.

    \b
    Examples:
      convoy drift adopt prod-eu-1
      convoy drift adopt prod-eu-1 Deployment/shop/web --branch adopt-web-replicas
      convoy drift adopt prod-eu-1 --selector env=prod --dry-run
    """
    repo = _open_repo(repo_path)
    with adminclient.AdminClient(cliconfig.resolve(hub_name)) as client:
        detail = client.get_cluster(cluster)
        items = _select(detail, cluster, refs)
        labels = {cluster: dict(detail.summary.labels)}
        if selector is not None:
            labels = _same_everywhere(client, repo, cluster, selector, items)
    base = _render(repo, repo.head, labels)
    assert base.fleet is not None
    objects = _objects(base, cluster)
    for line in adoption.moved_since(objects, items):
        click.echo(f"warning: {line}", err=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    branch = branch or f"convoy/adopt-{cluster}-{stamp}"
    if selector is None:
        files = _cluster_layer_edits(repo, cluster, items, objects, base.fleet)
        where = cluster
    else:
        name = re.sub(r"[^a-z0-9-]+", "-", f"{items[0].ref.kind}-{items[0].ref.name}-{stamp}".lower())
        files = _overlay_edits(repo, selector, name, items, objects, base.fleet)
        where = f"{len(labels)} clusters ({selector})"
    message = adoption.commit_message(where, items)
    if dry_run:
        for path, text in files.items():
            click.echo(f"--- {path}\n{text}", nl=False)
        click.echo(f"--- commit message (branch {branch})\n{message}", nl=False)
        return
    commit = _commit_on_branch(repo, branch, files, message)
    head = _render(repo, commit, labels)
    wrong = [f"{name}: {line}" for name in sorted(labels) for line in adoption.mismatches(_objects(head, name), items)]
    if wrong:
        repo.git.git.update_ref("-d", f"refs/heads/{branch}", commit)
        raise AdoptFailed("the patches do not render to the live state, so no branch was kept:\n  "
                          + "\n  ".join(wrong))
    click.echo(f"branch {branch} ({commit[:12]}) from {repo.branch}: " + message.splitlines()[0])
    for path in files:
        click.echo(f"  {path}")
    click.echo(f"Preview it: convoy preview --repo {repo_path} --base {repo.branch} --head {branch}")

