"""``convoy seal`` and ``convoy keys``: sealing Secrets for chosen clusters, and the clusters' public keys.

Each cluster's age key pair is made by its spoke, in the cluster; the hub knows only the public
recipients, which these commands read over the AdminService. ``convoy seal`` writes SOPS files
(:mod:`protos.sops`) that ``sops --decrypt`` opens with any one recipient's key. What a file was
sealed for (clusters and/or a selector) is kept in the Secret's annotations, which are not
encrypted, so ``convoy seal --refresh`` can re-seal it for the clusters that match now.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from hub.commands.fleet import _client, _emit, complete_clusters, hub_command
from protos import sops

__all__ = ["cluster_recipients", "dump_documents", "fleet_operators", "keys", "keys_rows", "seal"]

#: Annotations that record what a Secret was sealed for (not encrypted; refresh reads them).
ANNOTATION_CLUSTERS = "convoy.dev/sealed-for-clusters"
ANNOTATION_SELECTOR = "convoy.dev/sealed-for-selector"


# -- YAML -----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The age stanzas are armoured text: a literal block keeps them readable, as sops writes them.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_documents(documents: Sequence[Any]) -> str:
    return "---\n".join(yaml.dump(d, Dumper=_Dumper, sort_keys=False, width=1 << 16) for d in documents)


def _load(path: Path) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None


# -- recipients -----------------------------------------------------------------------------------


def _identity_text(path: str | None) -> list[str]:
    """Operator identities: --identity FILE, else SOPS_AGE_KEY / SOPS_AGE_KEY_FILE as sops reads them."""
    text = ""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    elif os.environ.get("SOPS_AGE_KEY"):
        text = os.environ["SOPS_AGE_KEY"]
    elif os.environ.get("SOPS_AGE_KEY_FILE"):
        text = Path(os.environ["SOPS_AGE_KEY_FILE"]).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-1")]


def cluster_recipients(summaries: Iterable[Any], *, wanted: Sequence[str], selector: str) -> dict[str, str]:
    """``{cluster: recipient}`` for the named clusters and those the hub matched; a cluster without a key
    is an error.
    """
    found = {c.name: c.age_recipient for c in summaries}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise click.ClickException(f"unknown cluster(s): {', '.join(missing)}")
    chosen = {n: found[n] for n in (list(found) if selector else wanted)}
    keyless = sorted(n for n, r in chosen.items() if not r)
    if keyless:
        raise click.ClickException(f"cluster(s) {', '.join(keyless)} have no age key at the hub yet (their spoke "
                                   "has not registered with a version that makes one)")
    return chosen


def _lookup(hub_name: str | None, clusters: Sequence[str], selector: str) -> dict[str, str]:
    if not clusters and not selector:
        return {}
    with _client(hub_name) as client:
        found: dict[str, str] = {}
        if selector:
            found.update(cluster_recipients(client.list_clusters(selector).clusters, wanted=(), selector=selector))
        if clusters:
            found.update(cluster_recipients(client.list_clusters("").clusters, wanted=clusters, selector=""))
    return found


def fleet_operators(path: Path) -> list[str]:
    """The operator recipients fleet.yaml declares (``secrets.operators``), found above ``path``; [] if none."""
    for folder in [path.resolve().parent, *path.resolve().parent.parents]:
        fleet = folder / "fleet.yaml"
        if fleet.is_file():
            try:
                data = yaml.safe_load(fleet.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise click.ClickException(f"{fleet}: {exc}") from None
            policy = data.get("secrets") if isinstance(data, Mapping) else None
            operators = policy.get("operators") if isinstance(policy, Mapping) else None
            return [str(o) for o in operators or []]
    return []


def _annotations(doc: Mapping[str, Any]) -> Mapping[str, str]:
    return ((doc.get("metadata") or {}).get("annotations") or {})


def _ref(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind')}/{namespace}{meta.get('name')}"


# -- convoy seal ----------------------------------------------------------------------------------


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--cluster", "clusters", multiple=True, help="Seal for this cluster (repeatable).")
@click.option("-l", "--selector", default="", help="Seal for every cluster this label selector matches at the hub.")
@click.option("--recipient", "recipients", multiple=True,
              help="Also seal for this age recipient (age1...), e.g. an operator's key (repeatable).")
@click.option("--in-place", "-i", is_flag=True, help="Rewrite the files instead of printing the result.")
@click.option("--refresh", is_flag=True,
              help="Re-seal already sealed files for the clusters that match what they were sealed for now "
                   "(needs an operator key that opens them: --identity, SOPS_AGE_KEY or SOPS_AGE_KEY_FILE).")
@click.option("--identity", default=None, type=click.Path(exists=True, dir_okay=False),
              help="age identity file of an operator key (for --refresh).")
@hub_command
def seal(hub_name: str | None, paths: tuple[str, ...], clusters: tuple[str, ...], selector: str,
         recipients: tuple[str, ...], in_place: bool, refresh: bool, identity: str | None) -> None:
    """Encrypt the Secrets in PATHS (SOPS format, age) for the chosen clusters and recipients.

    Only data and stringData are encrypted; the metadata stays readable so kustomize can still set the
    namespace and labels. The operator recipients of fleet.yaml (secrets.operators, found above the
    first PATH) are added to every file, so a person can re-seal with --refresh when clusters join.
    Without --in-place the result is printed.

    \b
    Examples:
      convoy seal -l env=prod -i apps/web/base/db-secret.sops.yaml
      convoy seal --cluster prod-eu-1 --cluster prod-us-1 secret.yaml > secret.sops.yaml
      convoy seal --refresh --identity ~/.config/convoy/operator.agekey -i apps/web/base/db-secret.sops.yaml
    """
    if refresh:
        _refresh(hub_name, [Path(p) for p in paths], extra=list(recipients), identity=identity, in_place=in_place)
        return
    if not clusters and not selector and not recipients and not fleet_operators(Path(paths[0])):
        raise click.UsageError("choose the recipients: --cluster, --selector and/or --recipient")
    by_cluster = _lookup(hub_name, clusters, selector)
    operators = fleet_operators(Path(paths[0]))
    every = list(dict.fromkeys([*by_cluster.values(), *operators, *recipients]))
    outputs: list[str] = []
    for path in (Path(p) for p in paths):
        documents = _load(path)
        sealed_any = False
        out: list[Any] = []
        for doc in documents:
            if not (isinstance(doc, Mapping) and doc.get("kind") == "Secret") or sops.is_sealed(doc):
                out.append(doc)
                continue
            marked = dict(doc)
            meta = dict(marked.get("metadata") or {})
            notes = dict(meta.get("annotations") or {})
            if clusters:
                notes[ANNOTATION_CLUSTERS] = ",".join(clusters)
            if selector:
                notes[ANNOTATION_SELECTOR] = selector
            if notes:
                meta["annotations"] = notes
            marked["metadata"] = meta
            try:
                out.append(sops.seal(marked, every))
            except sops.SopsError as exc:
                raise click.ClickException(f"{path}: {_ref(doc)}: {exc}") from None
            sealed_any = True
        if not sealed_any:
            raise click.ClickException(f"{path}: no plaintext Secret to seal")
        text = dump_documents(out)
        if in_place:
            path.write_text(text, encoding="utf-8")
            click.echo(f"{path}: sealed for {len(every)} recipient(s)", err=True)
        else:
            outputs.append(text)
    if outputs:
        sys.stdout.write("---\n".join(outputs))


def _refresh(hub_name: str | None, paths: Sequence[Path], *, extra: list[str], identity: str | None,
             in_place: bool) -> None:
    identities = _identity_text(identity)
    if not identities:
        raise click.UsageError("--refresh needs an operator key: --identity FILE, SOPS_AGE_KEY or SOPS_AGE_KEY_FILE")
    with _client(hub_name) as client:
        everyone = list(client.list_clusters("").clusters)
        by_selector: dict[str, list[Any]] = {}
        plan: list[tuple[Path, list[Any]]] = []
        for path in paths:
            plan.append((path, _load(path)))
            for doc in plan[-1][1]:
                sel = _annotations(doc).get(ANNOTATION_SELECTOR, "") if isinstance(doc, Mapping) else ""
                if sel and sel not in by_selector:
                    by_selector[sel] = list(client.list_clusters(sel).clusters)
    operators = {sops.recipient_of(i) for i in identities}
    now = dt.datetime.now(dt.UTC)
    for path, documents in plan:
        changed = False
        out: list[Any] = []
        for doc in documents:
            if not (isinstance(doc, Mapping) and sops.is_sealed(doc)):
                out.append(doc)
                continue
            notes = _annotations(doc)
            names = [n for n in notes.get(ANNOTATION_CLUSTERS, "").split(",") if n]
            sel = notes.get(ANNOTATION_SELECTOR, "")
            want = dict(cluster_recipients(everyone, wanted=names, selector="")) if names else {}
            if sel:
                want.update(cluster_recipients(by_selector[sel], wanted=(), selector=sel))
            had = sops.recipients(doc)
            # Keys that are no cluster's (operators, people) stay; cluster keys follow the selection.
            known = {c.age_recipient for c in everyone if c.age_recipient}
            kept = [r for r in had if r not in known or r in operators]
            new = list(dict.fromkeys([*kept, *want.values(), *extra]))
            if set(new) == set(had):
                out.append(doc)
                continue
            try:
                out.append(sops.rewrap(doc, identities, new, now=now))
            except sops.SopsError as exc:
                raise click.ClickException(f"{path}: {_ref(doc)}: {exc}") from None
            added, removed = len(set(new) - set(had)), len(set(had) - set(new))
            click.echo(f"{path}: {_ref(doc)}: re-sealed for {len(new)} recipient(s) (+{added} -{removed})", err=True)
            changed = True
        if changed:
            text = dump_documents(out)
            if in_place:
                path.write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
        else:
            click.echo(f"{path}: up to date", err=True)


# -- convoy keys ----------------------------------------------------------------------------------


def keys_rows(summaries: Iterable[Any]) -> list[dict[str, Any]]:
    rows = []
    for c in summaries:
        changed = c.age_recipient_changed.ToDatetime(tzinfo=dt.UTC).isoformat() \
            if c.HasField("age_recipient_changed") else None
        rows.append({"cluster": c.name, "recipient": c.age_recipient or None, "changed": changed})
    return rows


@click.group(invoke_without_command=True)
@click.option("-l", "--selector", default="", help="Label selector, e.g. 'env=prod'.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table", show_default=True)
@hub_command
@click.pass_context
def keys(ctx: click.Context, hub_name: str | None, selector: str, output: str) -> None:
    """The public age key (recipient) of each cluster, made by its spoke in the cluster, and when it changed.

    \b
    Examples:
      convoy keys
      convoy keys -l env=prod -o json
      convoy keys rotate prod-eu-1
    """
    if ctx.invoked_subcommand is not None:
        return
    with _client(hub_name) as client:
        rows = keys_rows(client.list_clusters(selector).clusters)
    if output != "table":
        _emit({"clusters": rows}, output)
        return
    width = max([len("CLUSTER"), *(len(r["cluster"]) for r in rows)])
    click.echo(f"{'CLUSTER':<{width}}  {'RECIPIENT':<62}  CHANGED")
    for r in rows:
        click.echo(f"{r['cluster']:<{width}}  {r['recipient'] or '-':<62}  {r['changed'] or '-'}")



@keys.command("rotate")
@click.argument("name", shell_complete=complete_clusters)
@hub_command
def keys_rotate(hub_name: str | None, name: str) -> None:
    """Ask NAME's spoke to make a new age key (now if connected, else when it next connects).

    The spoke keeps its previous key, so files not yet re-sealed still open there (and the hub still
    renders them for it); re-seal them for the new key with convoy seal --refresh. `convoy keys` shows
    when the key changed.

    \b
    Examples:
      convoy keys rotate prod-eu-1
    """
    with _client(hub_name) as client:
        response = client.rotate_age_key(name)
    when = "now (it is connected)" if response.online else "when it next connects"
    click.echo(f"cluster {name}: age key rotation requested; the spoke makes its new key {when}; then re-seal: "
               "convoy seal --refresh -i FILE...")
