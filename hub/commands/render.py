"""``convoy render``, ``convoy validate`` and ``convoy preview``: the render pipeline from the command line.

They read a fleet repository from a plain directory, a local Git repository (at
``--rev``, straight from the object database) or a URL (cloned into a temporary
bare mirror), render with the same :class:`hub.render.pipeline.Renderer` as the
hub, and print. Formatting is pure (``*_rows``, :func:`diff_bundles`); printing
happens at the edge. Every error is one line on stderr and exit code 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from hub.fleet import clusters as fleet_clusters
from hub.fleet import model
from hub.render import layering, pipeline, sealed
from hub.tree import errors, repofs
from protos import selectors, sops
from protos.objects import ObjectRef

__all__ = ["BundleDiff", "diff_bundles", "open_fs", "preview", "render", "validate"]


def _is_url(text: str) -> bool:
    return "://" in text or text.startswith("git@")


@contextlib.contextmanager
def open_fs(repo: str, rev: str | None) -> Iterator[repofs.RepoFS]:
    """A view of ``repo``: a directory's files, or a Git commit (``rev``, default HEAD for a bare repo / URL).

    A Git working tree without ``--rev`` is read as files, so uncommitted edits render too.
    """
    import git  # GitPython: only the hub side needs it

    from hub.source.git import redact_url

    if _is_url(repo):
        with tempfile.TemporaryDirectory(prefix="convoy-mirror-") as tmp:
            mirror = _clone(repo, Path(tmp))
            yield _git_fs(git.Repo(mirror), rev or "HEAD", redact_url(repo))
        return
    path = Path(repo)
    if not path.is_dir():
        raise click.ClickException(f"{repo}: no such directory")
    git_repo: git.Repo | None = None
    with contextlib.suppress(git.InvalidGitRepositoryError, git.NoSuchPathError):
        git_repo = git.Repo(path, search_parent_directories=False)
    if git_repo is None or (rev is None and not git_repo.bare):
        if rev is not None:
            raise click.ClickException(f"{repo}: --rev {rev} needs a Git repository, this is a plain directory")
        yield repofs.DirectoryFS(path)
        return
    yield _git_fs(git_repo, rev or "HEAD", repo)


def _clone(url: str, into: Path) -> str:
    """A bare clone of ``url`` under ``into``; its path."""
    import git

    from hub.source.git import redact_url

    try:
        git.Repo.clone_from(url, into / "mirror", bare=True)
    except git.GitCommandError as exc:
        raise click.ClickException(f"{redact_url(url)}: cannot clone (git exit {exc.status})") from None
    return str(into / "mirror")


def _git_fs(repo: Any, rev: str, where: str) -> repofs.RepoFS:
    # Git quietly prefers the tag when a bare name is both a tag and a branch; say so instead,
    # as the hub does (hub.source.git.GitSource.resolve).
    names = {str(ref.path) for ref in repo.references}
    if f"refs/heads/{rev}" in names and f"refs/tags/{rev}" in names:
        raise click.ClickException(f"{where}: {rev!r} is ambiguous: it names refs/heads/{rev} and refs/tags/{rev}; "
                                   "give the full name")
    try:
        return repofs.GitTreeFS(repo, rev)
    except errors.RenderError:
        raise click.ClickException(f"{where}: no branch, tag or commit named {rev!r}") from None


def _declared_at(fs: repofs.RepoFS) -> dict[str, fleet_clusters.ClusterDecl]:
    try:
        return fleet_clusters.declared_clusters(fs, max_bytes=pipeline.RenderLimits().max_file_bytes)
    except errors.RenderError as exc:  # clusters/ itself is unreadable (e.g. a symlink out of the repository)
        raise _fail(exc) from None


def _clusters_at(fs: repofs.RepoFS) -> list[fleet_clusters.ClusterInfo]:
    return fleet_clusters.all_clusters(_declared_at(fs))


def _fail(error: errors.RenderError) -> click.ClickException:
    return click.ClickException(str(error))


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


# -- convoy render ------------------------------------------------------------------------------------------


@click.command("render")
@click.option("--repo", required=True, help="Fleet repository: a directory, a Git repository or a URL.")
@click.option("--rev", default=None, help="Branch, tag or commit (default: the working tree, or HEAD).")
@click.option("--cluster", "cluster_name", required=True, help="Cluster to render.")
@click.option("--labels", default="", help="Labels as registered at the hub, k=v,... (Git's win on conflict).")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def render(repo: str, rev: str | None, cluster_name: str, labels: str, output: str) -> None:
    """Print one cluster's bundle and its digest, exactly as the hub would serve it.

    \b
    Examples:
      convoy render --repo fleet-config --cluster prod-eu-1
      convoy render --repo https://git.example.com/fleet.git --rev main --cluster edge-9 --labels env=prod -o json
    """
    try:
        registered = selectors.parse_labels(labels, where="--labels")
    except selectors.SelectorError as exc:
        raise click.ClickException(str(exc)) from None
    with open_fs(repo, rev) as fs:
        try:
            fleet = model.load_fleet(fs, max_bytes=pipeline.RenderLimits().max_fleet_file_bytes)
        except errors.RenderError as exc:
            raise _fail(exc) from None
        declared = _declared_at(fs)
        decl = declared.get(cluster_name)
        if decl is None and not registered:
            known = ", ".join(sorted(declared)) or "none"
            raise click.ClickException(f"cluster {cluster_name}: unknown: not declared under clusters/ "
                                       f"(declared: {known}); pass --labels to render a cluster Git does not know")
        info = fleet_clusters.cluster_info(cluster_name, registered_labels=registered, decl=decl)
        result = pipeline.Renderer().render_cluster(fs, fleet, info)
    if result.errors or result.bundle is None:
        raise click.ClickException("; ".join(str(error) for error in result.errors))
    if output == "json":
        click.echo(json.dumps({"digest": result.digest, "bundle": result.bundle}, indent=2, ensure_ascii=False))
    else:
        click.echo(f"# cluster: {cluster_name}\n# digest: {result.digest}\n# objects: {result.object_count}")
        click.echo(yaml.safe_dump(result.bundle, sort_keys=False, allow_unicode=True), nl=False)


# -- convoy validate ----------------------------------------------------------------------------------------


def validation_rows(result: pipeline.FleetRender) -> list[tuple[str, str, str, str, str]]:
    """(cluster, apps, objects, digest, error) per cluster, sorted by cluster name."""
    rows = []
    for name in sorted(result.clusters):
        render_ = result.clusters[name]
        rows.append((name, ",".join(render_.apps) or "-", str(render_.object_count) if render_.ok else "-",
                     _short(render_.digest), "; ".join(error.message if not error.app else
                                                       f"app {error.app}: {error.message}"
                                                       for error in render_.errors)))
    return rows


@click.command("validate")
@click.argument("path", default=".", required=False)
@click.option("--rev", default=None, help="Validate this commit instead of the working tree.")
@click.option("--strict", is_flag=True, help="A plaintext Secret is an error, not a warning.")
@click.option("--identity", default=None, type=click.Path(exists=True, dir_okay=False),
              help="An operator's age identity file: sealed secrets it opens have their MAC checked "
                   "(default: SOPS_AGE_KEY / SOPS_AGE_KEY_FILE when set).")
def validate(path: str, rev: str | None, strict: bool, identity: str | None) -> None:
    """Render every cluster declared in the fleet repository; exit 1 on any error (for the repo's CI).

    Warns on stderr (exit code unchanged) where kustomize builds what a cluster will refuse (a
    generated ConfigMap key with a space), where a later layer of an app drops a field an earlier
    layer set, e.g. a per-cluster patch that replaces the whole annotations map, and where a Secret is
    plaintext in the repository (an error under --strict or fleet.yaml's secrets: sealedOnly). With
    an operator key, a sealed secret whose MAC does not verify is an error.

    \b
    Examples:
      convoy validate fleet-config
      convoy validate . --rev HEAD
    """
    with open_fs(path, rev) as fs:
        declared = _clusters_at(fs)
        result = pipeline.Renderer().render_fleet(fs, declared)
        warnings = layering.layer_warnings(fs, result.fleet, declared) if result.fleet is not None else []
    if result.fleet_error is not None:
        raise _fail(result.fleet_error)
    table = _table("CLUSTER", "APPS", "OBJECTS", "DIGEST", "ERROR")
    rows = validation_rows(result)
    for row in rows:
        table.add_row(*row, style="red" if row[4] else None)
    console = _console()
    console.print(f"{len(result.clusters)} clusters at {fs.revision}", style="bold")
    console.print(table)
    for name in sorted(result.clusters):
        for note in result.clusters[name].external:
            console.print(f"note: cluster {name}: app {note.replace(': ', ' built by the external kustomize: ', 1)}")
    # Warnings, not errors (a layer may drop a field on purpose): stderr, and the exit code stays. First
    # what kustomize builds but the cluster will refuse, so it is read before the apply fails.
    for name in sorted(result.clusters):
        for build_warning in result.clusters[name].build_warnings:
            click.echo(f"warning: cluster {name}: app {build_warning}", err=True)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    failed = [row[0] for row in rows if row[4]]
    sealed_only = strict or (result.fleet is not None and result.fleet.secrets.sealed_only)
    for name, level, message in secret_findings(result, identities=_operator_identities(identity),
                                                sealed_only=sealed_only):
        click.echo(f"{level}: cluster {name}: {message}", err=True)
        if level == "error" and name not in failed:
            failed.append(name)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(rows)} clusters failed to render: {', '.join(failed)}")


def _table(*columns: str) -> Table:
    """A table in the style of every convoy table (`convoy status`, kubectl): no box, bold headers."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        # The last column (ERROR) folds; the others stay whole.
        table.add_column(column, overflow="fold", no_wrap=column != columns[-1])
    return table


def _operator_identities(path: str | None) -> list[str]:
    text = ""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    elif os.environ.get("SOPS_AGE_KEY"):
        text = os.environ["SOPS_AGE_KEY"]
    elif os.environ.get("SOPS_AGE_KEY_FILE"):
        text = Path(os.environ["SOPS_AGE_KEY_FILE"]).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-1")]


def secret_findings(result: pipeline.FleetRender, *, identities: list[str],
                    sealed_only: bool) -> list[tuple[str, str, str]]:
    """(cluster, "warning"|"error", message) about Secrets: plaintext ones, and sealed ones that do not open.

    A sealed secret is checked once (by ciphertext digest) with the operator keys that are among its
    recipients; the values are decrypted in memory only and never shown.
    """
    findings: list[tuple[str, str, str]] = []
    checked: dict[str, str | None] = {}
    mine = {sops.recipient_of(i) for i in identities}
    for name in sorted(result.clusters):
        bundle = result.clusters[name].bundle
        for app, ref in sealed.plaintext_secrets(bundle):
            findings.append((name, "error" if sealed_only else "warning",
                             f"app {app}: {ref} is a plaintext Secret in the fleet repository; seal it with "
                             "convoy seal"))
        for obj in (bundle or {}).get("objects") or []:
            if not (isinstance(obj, Mapping) and sops.is_sealed(obj)) or not mine & set(sops.recipients(obj)):
                continue
            digest = sops.ciphertext_digest(obj)
            if digest not in checked:
                try:
                    sops.open_document(obj, identities)
                    checked[digest] = None
                except sops.SopsError as exc:
                    checked[digest] = str(exc)
            if checked[digest]:
                app = ((obj.get("metadata") or {}).get("labels") or {}).get("convoy.dev/app", "")
                findings.append((name, "error", f"app {app}: {ObjectRef.of(obj)}{sealed.source_of(obj)}: "
                                                f"{checked[digest]}"))
    return findings


def _console() -> Console:
    # A wide console when not on a terminal (CI logs, tests), so rows are never cut.
    width = None if os.isatty(1) else 200
    return Console(width=width, highlight=False)


# -- convoy preview -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BundleDiff:
    """How one cluster's bundle differs between two revisions."""

    added: tuple[ObjectRef, ...]
    removed: tuple[ObjectRef, ...]
    changed: tuple[ObjectRef, ...]
    apps_changed: bool
    text: str          #: unified diff of the objects, YAML, one file per object

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.apps_changed)


def _by_ref(bundle: Mapping[str, Any] | None) -> dict[ObjectRef, Any]:
    return {ObjectRef.of(obj): obj for obj in (bundle or {}).get("objects", [])}


def _yaml_lines(obj: Any) -> list[str]:
    if obj is None:
        return []
    return yaml.safe_dump(obj, sort_keys=True, allow_unicode=True).splitlines(keepends=True)


def diff_bundles(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> BundleDiff:
    before, after = _by_ref(base), _by_ref(head)
    added = tuple(sorted(set(after) - set(before)))
    removed = tuple(sorted(set(before) - set(after)))
    changed = tuple(sorted(ref for ref in set(before) & set(after) if before[ref] != after[ref]))
    chunks: list[str] = []
    for ref in sorted({*added, *removed, *changed}):
        chunks.extend(difflib.unified_diff(_yaml_lines(before.get(ref)), _yaml_lines(after.get(ref)),
                                           fromfile=f"base/{ref}", tofile=f"head/{ref}"))
    apps_changed = (base or {}).get("apps") != (head or {}).get("apps")
    return BundleDiff(added=added, removed=removed, changed=changed, apps_changed=apps_changed,
                      text="".join(chunks))


@dataclasses.dataclass(frozen=True)
class PreviewRow:
    cluster: str
    status: str        # unchanged | changed | new | removed | error
    diff: BundleDiff | None
    base_digest: str | None
    head_digest: str | None
    error: str


def preview_rows(base: pipeline.FleetRender, head: pipeline.FleetRender) -> list[PreviewRow]:
    rows = []
    for name in sorted({*base.clusters, *head.clusters}):
        before, after = base.clusters.get(name), head.clusters.get(name)
        if after is not None and after.errors:
            rows.append(PreviewRow(name, "error", None, before.digest if before else None, None,
                                   "; ".join(str(error) for error in after.errors)))
            continue
        if after is None:
            rows.append(PreviewRow(name, "removed", diff_bundles(before.bundle if before else None, None),
                                   before.digest if before else None, None, ""))
            continue
        if before is None or before.bundle is None:
            status = "new" if before is None else "changed"
            rows.append(PreviewRow(name, status, diff_bundles(None, after.bundle), None, after.digest, ""))
            continue
        diff = diff_bundles(before.bundle, after.bundle)
        rows.append(PreviewRow(name, "unchanged" if before.digest == after.digest else "changed", diff,
                               before.digest, after.digest, ""))
    return rows


def _revision(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("empty revision: give a branch, tag or commit"
                                 + (" (or leave --head out for the working tree)" if param.name == "head_rev" else ""))
    return value


def preview_document(rows: list[PreviewRow], *, base: str, head: str) -> dict[str, Any]:
    """``convoy preview -o json``."""
    clusters = [{"cluster": row.cluster, "status": row.status, "baseDigest": row.base_digest,
                 "headDigest": row.head_digest, "error": row.error or None,
                 "addedObjects": [str(ref) for ref in row.diff.added] if row.diff else [],
                 "removedObjects": [str(ref) for ref in row.diff.removed] if row.diff else [],
                 "changedObjects": [str(ref) for ref in row.diff.changed] if row.diff else [],
                 "appsChanged": bool(row.diff and row.diff.apps_changed)} for row in rows]
    return {"base": base, "head": head, "changed": sum(1 for row in rows if row.status != "unchanged"),
            "total": len(rows), "clusters": clusters}


WORKING_TREE = "working tree"


@click.command("preview")
@click.option("--repo", default=".", show_default=True, help="Fleet Git repository (a path or a URL).")
@click.option("--base", "base_rev", required=True, callback=_revision, help="The revision the change starts from.")
@click.option("--head", "head_rev", default=None, callback=_revision,
              help="The revision with the change (default: the working tree, uncommitted edits included, as "
                   "`render` and `validate` read it; HEAD for a bare repository or a URL).")
@click.option("--diff", "show_diff", is_flag=True, help="Print the full unified diff of every changed object.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when any cluster's bundle changes, 0 when none does (as `git diff --exit-code`).")
def preview(repo: str, base_rev: str, head_rev: str | None, show_diff: bool, output: str, exit_code: bool) -> None:
    """For every declared cluster: does its bundle change between two revisions, and how.

    \b
    Examples:
      convoy preview --base origin/main                 # your uncommitted and committed changes
      convoy preview --repo . --base origin/main --head HEAD --diff
      convoy preview --base main --exit-code -o json > preview.json
    """
    renderer = pipeline.Renderer()
    results: list[pipeline.FleetRender] = []
    with contextlib.ExitStack() as stack:
        if _is_url(repo):
            repo = _clone(repo, Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="convoy-mirror-"))))
        for rev in (base_rev, head_rev):
            with open_fs(repo, rev) as fs:
                results.append(renderer.render_fleet(fs, _clusters_at(fs)))
    head_name = head_rev or WORKING_TREE
    base, head = results
    if head.fleet_error is not None:
        raise click.ClickException(f"head {head_name}: {head.fleet_error}")
    if base.fleet_error is not None:
        base = dataclasses.replace(base, clusters={})  # everything counts as new against a broken base
    rows = preview_rows(base, head)
    changed = [row for row in rows if row.status != "unchanged"]
    if output != "table":
        document = preview_document(rows, base=base_rev, head=head_name)
        click.echo(json.dumps(document, indent=2) if output == "json"
                   else yaml.safe_dump(document, sort_keys=False).rstrip())
    else:
        _print_preview(rows, base_rev, head_name, show_diff)
    if any(row.status == "error" for row in rows):
        raise click.ClickException("the head revision fails to render for: "
                                   + ", ".join(row.cluster for row in rows if row.status == "error"))
    if exit_code and changed:
        raise SystemExit(1)


def _print_preview(rows: list[PreviewRow], base_rev: str, head_name: str, show_diff: bool) -> None:
    table = _table("CLUSTER", "BUNDLE", "ADDED", "REMOVED", "CHANGED", "DIGEST", "ERROR")
    for row in rows:
        counts = ((str(len(row.diff.added)), str(len(row.diff.removed)), str(len(row.diff.changed)))
                  if row.diff else ("-", "-", "-"))
        digest = (f"{_short(row.base_digest)} -> {_short(row.head_digest)}"
                  if row.base_digest != row.head_digest else _short(row.head_digest))
        table.add_row(row.cluster, row.status, *counts, digest, row.error,
                      style={"error": "red", "changed": "yellow", "new": "green"}.get(row.status))
    console = _console()
    console.print(f"preview {base_rev} -> {head_name}", style="bold")
    console.print(table)
    changed = [row for row in rows if row.status != "unchanged"]
    console.print(f"{len(changed)} of {len(rows)} clusters change")
    if show_diff:
        for row in rows:
            if row.diff is not None and not row.diff.empty:
                click.echo(f"\n=== cluster {row.cluster} ({row.status}) ===")
                if row.diff.apps_changed:
                    click.echo("apps (order, namespace, dependsOn, driftPolicy or ignoreDifferences) changed")
                click.echo(row.diff.text, nl=False)




