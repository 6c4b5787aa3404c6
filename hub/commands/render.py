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

from hub.commands import preview_report
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


def _redacted(obj: Any, base: Any = None) -> Any:
    """``obj`` with a plaintext Secret's values replaced; with ``base``, marked where they differ from its.

    The unified diff still shows which keys changed; sealed (SOPS) values are ciphertext and stay.
    """
    if not isinstance(obj, Mapping) or obj.get("kind") != "Secret" or sops.is_sealed(obj):
        return obj
    out = dict(obj)
    for field in ("data", "stringData"):
        values = obj.get(field)
        if isinstance(values, Mapping):
            theirs = base.get(field) if isinstance(base, Mapping) else None
            theirs = theirs if isinstance(theirs, Mapping) else {}
            out[field] = {key: preview_report.REDACTED if base is None or theirs.get(key) == value
                          else f"{preview_report.REDACTED} (differs)" for key, value in values.items()}
    return out


def diff_bundles(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> BundleDiff:
    before, after = _by_ref(base), _by_ref(head)
    added = tuple(sorted(set(after) - set(before)))
    removed = tuple(sorted(set(before) - set(after)))
    changed = tuple(sorted(ref for ref in set(before) & set(after) if before[ref] != after[ref]))
    chunks: list[str] = []
    for ref in sorted({*added, *removed, *changed}):
        old, new = before.get(ref), after.get(ref)
        chunks.extend(difflib.unified_diff(_yaml_lines(_redacted(old)), _yaml_lines(_redacted(new, old)),
                                           fromfile=f"base/{ref}", tofile=f"head/{ref}"))
    apps_changed = (base or {}).get("apps") != (head or {}).get("apps")
    return BundleDiff(added=added, removed=removed, changed=changed, apps_changed=apps_changed,
                      text="".join(chunks))


def _revision(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("empty revision: give a branch, tag or commit"
                                 + (" (or leave --head out for the working tree)" if param.name == "head_rev" else ""))
    return value


WORKING_TREE = "working tree"
OUTPUTS = ("table", "json", "yaml", "markdown")


def _fail_on(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    policies = tuple(sorted({part.strip() for item in value for part in item.split(",") if part.strip()}))
    unknown = [policy for policy in policies if policy not in preview_report.FAIL_ON]
    if unknown:
        raise click.BadParameter(f"unknown policy {', '.join(map(repr, unknown))}; choose from "
                                 + ", ".join(preview_report.FAIL_ON))
    return policies


@click.command("preview")
@click.option("--repo", default=".", show_default=True, help="Fleet Git repository (a path or a URL).")
@click.option("--base", "base_rev", required=True, callback=_revision, help="The revision the change starts from.")
@click.option("--head", "head_rev", default=None, callback=_revision,
              help="The revision with the change (default: the working tree, uncommitted edits included, as "
                   "`render` and `validate` read it; HEAD for a bare repository or a URL).")
@click.option("--diff", "show_diff", is_flag=True,
              help="Print the full unified diff of every changed object (table output only).")
@click.option("-o", "--output", "--format", "output", type=click.Choice(OUTPUTS), default="table",
              show_default=True,
              help="table: one row per cluster; markdown: a pull-request comment (by env/region, rollout waves, "
                   "render errors, identical changes grouped, field diffs, Secret values redacted, at most "
                   "65,536 characters); json/yaml: the same, machine-readable. --format is -o's other name.")
@click.option("--fail-on", "fail_on", multiple=True, callback=_fail_on, metavar="POLICY[,POLICY...]",
              help="Exit 1 when the change breaks a policy: " + "; ".join(
                  f"{name}: {what}" for name, what in preview_report.FAIL_ON.items())
              + ". Comma-separated and/or repeated; the report is printed first.")
@click.option("--exit-code", is_flag=True,
              help="Exit 1 when any cluster's bundle changes, 0 when none does (as `git diff --exit-code`).")
def preview(repo: str, base_rev: str, head_rev: str | None, show_diff: bool, output: str, fail_on: tuple[str, ...],
            exit_code: bool) -> None:
    """For every declared cluster: does its bundle change between two revisions, and how.

    Exit codes: 0 nothing breaks; 1 the head fails to render for some cluster, a --fail-on policy
    fails (one line each on stderr, after the report) or, with --exit-code, a bundle changes; 2 usage.

    \b
    Examples:
      convoy preview --base origin/main                 # your uncommitted and committed changes
      convoy preview --repo . --base origin/main --head HEAD --diff
      convoy preview --base main --exit-code -o json > preview.json
      convoy preview --base origin/main --head HEAD --format markdown --fail-on deletions,render-errors
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
    report = preview_report.build_report(base, head, base_name=base_rev, head_name=head_name)
    failures = preview_report.policy_failures(report, fail_on)
    if output == "table":
        _print_preview(report, base, head, show_diff)
    elif output == "markdown":
        click.echo(preview_report.to_markdown(report, failures=failures), nl=False)
    else:
        document = preview_report.to_document(report, failures=failures, fail_on=fail_on)
        click.echo(json.dumps(document, indent=2, ensure_ascii=False) if output == "json"
                   else yaml.safe_dump(document, sort_keys=False, allow_unicode=True).rstrip())
    for line in failures:
        click.echo(f"Error: {line}", err=True)
    errors_ = report.with_status("error")
    if errors_:
        raise click.ClickException("the head revision fails to render for: "
                                   + ", ".join(entry.cluster for entry in errors_))
    if failures or (exit_code and report.affected):
        raise SystemExit(1)


def _print_preview(report: preview_report.Report, base: pipeline.FleetRender, head: pipeline.FleetRender,
                   show_diff: bool) -> None:
    table = _table("CLUSTER", "BUNDLE", "ADDED", "REMOVED", "CHANGED", "DIGEST", "ERROR")
    for entry in report.clusters:
        objects = entry.change.objects if entry.change is not None else ()
        counts = (("-", "-", "-") if entry.status == "error" else
                  tuple(str(sum(1 for o in objects if o.action == action))
                        for action in ("created", "deleted", "changed")))
        digest = (f"{_short(entry.base_digest)} -> {_short(entry.head_digest)}"
                  if entry.base_digest != entry.head_digest else _short(entry.head_digest))
        table.add_row(entry.cluster, entry.status, *counts, digest, entry.error,
                      style={"error": "red", "changed": "yellow", "new": "green"}.get(entry.status))
    console = _console()
    console.print(f"preview {report.base} -> {report.head}", style="bold")
    console.print(table)
    console.print(f"{len(report.affected)} of {len(report.clusters)} clusters change")
    if not show_diff:
        return
    for entry in report.clusters:
        if entry.change is None:
            continue
        before, after = base.clusters.get(entry.cluster), head.clusters.get(entry.cluster)
        diff = diff_bundles(before.bundle if before else None, after.bundle if after else None)
        if not diff.empty:
            click.echo(f"\n=== cluster {entry.cluster} ({entry.status}) ===")
            if diff.apps_changed:
                click.echo("apps (order, namespace, dependsOn, driftPolicy or ignoreDifferences) changed")
            click.echo(diff.text, nl=False)
