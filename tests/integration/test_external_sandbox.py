"""Issue 13 items 1 and 2: a commit cannot use the external kustomize to read the hub's files, reach its
network or run programs.

Every kustomization here uses a field outside the native subset (``buildMetadata``),
so it goes to the external tool (``kubectl kustomize``, the oracle on PATH) — the path that used to
turn every check off.
"""

from __future__ import annotations

import http.server
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
import yaml

from hub.fleet import clusters
from hub.render import pipeline
from hub.render.kustomize import BuildOptions, build, sandboxing
from hub.tree import repofs
from hub.tree.errors import RenderError, RepoPathError, UnsupportedFeatureError
from tests.integration.hub_harness import commit_files

SECRET = "hub-private-3f9c1e"
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {k: v}\n"
NON_NATIVE = "buildMetadata: [managedByLabel]\n"

pytestmark = pytest.mark.kubectl


def _external(kubectl: str, **more: object) -> BuildOptions:
    return BuildOptions(allow_external=True, external_command=(kubectl, "kustomize"), **more)  # type: ignore[arg-type]


def _commit(repo_dir: Path, files: dict[str, str]) -> repofs.GitTreeFS:
    sha = commit_files(repo_dir, files)
    return repofs.GitTreeFS(git.Repo(repo_dir), sha)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A kustomization outside the repository holding a secret (another fleet's, the hub's own files)."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "kustomization.yaml").write_text("resources: [secret.yaml]\n")
    (directory / "secret.yaml").write_text(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: stolen}}\n"
                                           f"stringData: {{token: {SECRET}}}\n")
    (directory / "passwd").write_text(f"root:{SECRET}:0:0\n")
    return directory


def _escapes(outside: Path) -> dict[str, str]:
    up = "../" * 40  # more than any temporary directory is deep: lands at / wherever the copy is
    return {
        "absolute directory": f"resources: [{outside}]\n",
        "relative directory": f"resources: [{up}{str(outside).lstrip('/')}]\n",
        "relative file": f"resources: [{up}{str(outside / 'passwd').lstrip('/')}]\n",
        "etc passwd": "resources: [../../../../etc/passwd]\n",
        "absolute file": f"resources: [{outside / 'passwd'}]\n",
        "generator file": f"configMapGenerator: [{{name: x, files: [{outside / 'passwd'}]}}]\n",
        "patch file": f"patches: [{{path: {up}{str(outside / 'secret.yaml').lstrip('/')}}}]\n",
    }


@pytest.mark.parametrize("case", ["absolute directory", "relative directory", "relative file", "etc passwd",
                                  "absolute file", "generator file", "patch file"])
def test_external_build_cannot_read_outside_the_repository(case: str, outside: Path, tmp_path: Path,
                                                           kubectl: str) -> None:
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": NON_NATIVE + _escapes(outside)[case],
                                     "app/cm.yaml": CM})
    with pytest.raises(RenderError) as info:
        result = build(fs, "app", options=_external(kubectl))
        pytest.fail(f"built: {result.objects}")  # the content of the outside file must never come back
    assert SECRET not in str(info.value)
    assert info.value.file == "app/kustomization.yaml"


def test_external_build_cannot_follow_a_symlink_out(outside: Path, tmp_path: Path, kubectl: str) -> None:
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    (repo_dir / "app").mkdir()
    os.symlink(outside, repo_dir / "app" / "leak")
    os.symlink(outside / "passwd", repo_dir / "app" / "leak.yaml")
    for resources in ("[leak]", "[leak.yaml]"):
        fs = _commit(repo_dir, {"app/kustomization.yaml": NON_NATIVE + f"resources: {resources}\n"})
        with pytest.raises(RepoPathError) as info:
            build(fs, "app", options=_external(kubectl))
        assert "escapes the repository root" in str(info.value) and SECRET not in str(info.value)


def test_every_kustomization_of_the_tree_is_checked_not_only_the_first(outside: Path, tmp_path: Path,
                                                                        kubectl: str) -> None:
    # The field outside the subset is at the top; the escape hides in a base below it.
    fs = _commit(tmp_path / "repo", {
        "app/kustomization.yaml": NON_NATIVE + "resources: [base]\n",
        "app/base/kustomization.yaml": f"resources: [cm.yaml, {outside}]\n",
        "app/base/cm.yaml": CM})
    with pytest.raises(RepoPathError) as info:
        build(fs, "app", options=_external(kubectl))
    assert info.value.file == "app/base/kustomization.yaml"
    assert "absolute path" in str(info.value)


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = CM.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("template", [
    "resources: [{url}/x.yaml]\n",
    "resources: [cm.yaml]\nopenapi: {{path: {url}/schema.json}}\n",
    "resources: [cm.yaml]\npatches: [{{path: {url}/patch.yaml}}]\n",
    "resources: [cm.yaml]\ncomponents: [{url}/component]\n",
])
def test_external_build_fetches_no_url(template: str, web: tuple[str, list[str]], tmp_path: Path,
                                       kubectl: str) -> None:
    url, hits = web
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": NON_NATIVE + template.format(url=url),
                                     "app/cm.yaml": CM})
    error: RenderError | None = None
    try:
        build(fs, "app", options=_external(kubectl))
    except RenderError as exc:
        error = exc
    assert hits == []  # first: the hub made no request on the commit author's behalf
    assert isinstance(error, RepoPathError) and error.file == "app/kustomization.yaml"
    assert "the hub does not fetch URLs" in str(error)


def test_the_sandbox_has_no_network_even_for_what_vetting_cannot_see(web: tuple[str, list[str]],
                                                                     tmp_path: Path) -> None:
    # A tool that tries the network itself, ignoring the proxy variables (a stand-in for helm or a plugin
    # the operator allowed): only the network namespace stops it.
    if not sandboxing.isolation_prefix():
        pytest.skip("no network namespace here: loopback is reachable (only the proxies guard other hosts)")
    url, hits = web
    port = int(url.rsplit(":", 1)[1])
    tool = tmp_path / "tool"
    tool.write_text(f"#!/bin/sh\nexec /usr/bin/python3 - <<'EOF'\nimport socket\ntry:\n"
                    f"    with socket.create_connection(('127.0.0.1', {port}), timeout=5) as s:\n"
                    f"        s.sendall(b'GET /from-the-sandbox HTTP/1.0\\r\\n\\r\\n'); s.recv(100)\n"
                    f"except OSError:\n    pass\nEOF\n")
    tool.chmod(0o755)
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": NON_NATIVE + "resources: [cm.yaml]\n",
                                     "app/cm.yaml": CM})
    build(fs, "app", options=BuildOptions(allow_external=True, external_command=(str(tool),)))
    assert hits == []


def test_the_tool_sees_neither_the_hub_environment_nor_its_home(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "hub-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(SECRET)
    for name, value in {"HOME": str(home), "SSH_AUTH_SOCK": "/run/agent.sock", "GIT_ASKPASS": "/bin/echo",
                        "AWS_SECRET_ACCESS_KEY": SECRET, "HTTPS_PROXY": "http://corp:3128"}.items():
        monkeypatch.setenv(name, value)
    # The "tool" reports its environment, its limits and whether the hub's HOME is visible, as a ConfigMap.
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\nexec /usr/bin/python3 - <<'EOF'\nimport json, os, resource\n"
                    "data = {'env': json.dumps(dict(os.environ)), "
                    "'as': str(resource.getrlimit(resource.RLIMIT_AS)[0]), "
                    "'home': json.dumps(sorted(os.listdir(os.environ['HOME'])))}\n"
                    "print(json.dumps({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'env'}, "
                    "'data': data}))\nEOF\n")
    tool.chmod(0o755)
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": NON_NATIVE + "resources: [cm.yaml]\n",
                                     "app/cm.yaml": CM})
    limits = sandboxing.Limits(memory_bytes=1536 * 1024 * 1024)
    result = build(fs, "app", options=BuildOptions(allow_external=True, external_command=(str(tool),),
                                                   external_limits=limits))
    data = result.objects[0]["data"]
    env = yaml.safe_load(data["env"])
    assert SECRET not in data["env"]
    assert env["HOME"] != str(home) and yaml.safe_load(data["home"]) == []
    assert not {"SSH_AUTH_SOCK", "GIT_ASKPASS", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == env["ALL_PROXY"] == sandboxing.BLACKHOLE_PROXY
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert int(data["as"]) == limits.memory_bytes


def _tool(tmp_path: Path, body: str) -> str:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool)


@pytest.mark.parametrize(("body", "limits", "expected"), [
    ("exec sleep 60\n", sandboxing.Limits(timeout_seconds=1), "took longer than 1 s"),
    ("exec yes 'a: b'\n", sandboxing.Limits(output_bytes=1024 * 1024), "wrote more than 1048576 bytes"),
])
def test_time_and_output_limits(body: str, limits: sandboxing.Limits, expected: str, tmp_path: Path) -> None:
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": NON_NATIVE + "resources: [cm.yaml]\n",
                                     "app/cm.yaml": CM})
    with pytest.raises(RenderError, match=expected):
        build(fs, "app", options=BuildOptions(allow_external=True, external_command=(_tool(tmp_path, body),),
                                              external_limits=limits))


# -- item 2: helm and plugins ------------------------------------------------------------------------

@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``helm`` first on PATH that leaves a marker when anything runs it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "helm-ran"
    helm = bin_dir / "helm"
    helm.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 1\n")
    helm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return marker


HELM = "helmCharts:\n- {name: web, repo: 'https://charts.example.com', version: 1.0.0, releaseName: web}\n"


def test_helm_is_refused_by_default_naming_the_file_and_field(fake_helm: Path, tmp_path: Path,
                                                             kubectl: str) -> None:
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": HELM})
    with pytest.raises(UnsupportedFeatureError) as info:
        build(fs, "app", options=_external(kubectl))
    assert info.value.file == "app/kustomization.yaml" and info.value.feature == "helmCharts"
    assert "helmCharts" in str(info.value) and "allow_helm" in str(info.value)
    assert not fake_helm.exists()


def test_helm_runs_only_when_the_operator_allows_it(fake_helm: Path, tmp_path: Path, kubectl: str) -> None:
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": HELM})
    with pytest.raises(RenderError):  # the fake helm fails; what matters is that it was run
        build(fs, "app", options=_external(kubectl, allow_helm=True))
    assert fake_helm.exists()


@pytest.mark.parametrize(("kustomization", "extra", "field"), [
    ("generators: [gen.yaml]\n", {"app/gen.yaml": (
        "apiVersion: example.com/v1\nkind: Run\nmetadata:\n  name: x\n  annotations:\n"
        "    config.kubernetes.io/function: |\n      exec:\n        path: ./run.sh\n")}, "generators"),
    ("transformers:\n- |\n  apiVersion: someteam.example.com/v1\n  kind: ChartInflator\n  metadata: {name: x}\n",
     {}, "transformers"),
    ("generators:\n- |\n  apiVersion: builtin\n  kind: HelmChartInflationGenerator\n  metadata: {name: x}\n"
     "  name: web\n  repo: https://charts.example.com\n", {}, "generators"),
])
def test_plugins_and_functions_are_refused_naming_the_file_and_field(
        kustomization: str, extra: dict[str, str], field: str, fake_helm: Path, tmp_path: Path,
        kubectl: str) -> None:
    fs = _commit(tmp_path / "repo", {"app/kustomization.yaml": "resources: [cm.yaml]\n" + kustomization,
                                     "app/cm.yaml": CM, **extra})
    with pytest.raises(UnsupportedFeatureError) as info:
        build(fs, "app", options=_external(kubectl))
    assert info.value.feature == field and str(info.value).startswith(f"{info.value.file}: {field}")
    assert info.value.file in {"app/kustomization.yaml", "app/gen.yaml"}
    assert not fake_helm.exists()


# -- the fleet's choice ------------------------------------------------------------------------------

FLEET = """\
apiVersion: convoy.dev/v1alpha1
kind: Fleet
apps:
  - name: plain
    path: apps/plain
  - name: fancy
    path: apps/fancy
    targets: {matchLabels: {env: prod}}
"""
FLEET_FILES = {
    "apps/plain/kustomization.yaml": "resources: [cm.yaml]\n",
    "apps/plain/cm.yaml": CM.replace("name: app", "name: plain"),
    "apps/fancy/kustomization.yaml": "resources: [cm.yaml]\nbuildMetadata: [managedByLabel]\nreplacements:\n"
                                     "- source: {kind: ConfigMap, name: fancy, fieldPath: data.k}\n"
                                     "  targets: [{select: {kind: ConfigMap, name: fancy}, fieldPaths: [data.copy]}]\n",
    "apps/fancy/cm.yaml": CM.replace("name: app", "name: fancy").replace("{k: v}", "{k: v, copy: x}"),
    "clusters/dev-1/cluster.yaml": "labels: {env: dev}\n",
    "clusters/prod-1/cluster.yaml": "labels: {env: prod}\n",
}


def _render_fleet(fs: repofs.RepoFS, renderer: pipeline.Renderer) -> pipeline.FleetRender:
    return renderer.render_fleet(fs, clusters.all_clusters(clusters.declared_clusters(fs)))


def test_a_fleet_refuses_external_builds_unless_its_fleet_yaml_allows_them(tmp_path: Path, kubectl: str) -> None:
    renderer = pipeline.Renderer()
    repo_dir = tmp_path / "fleet"
    denied = _render_fleet(_commit(repo_dir, {"fleet.yaml": FLEET, **FLEET_FILES}), renderer)
    assert denied.clusters["dev-1"].ok
    prod = denied.clusters["prod-1"]
    assert prod.bundle is None
    assert [str(error) for error in prod.errors] == [
        "cluster prod-1: app fancy: apps/fancy/kustomization.yaml: buildMetadata is outside the native kustomize "
        "subset and external builds are not allowed (a fleet allows them with render: {external: allow} in "
        "fleet.yaml)"]

    allowed = _render_fleet(_commit(repo_dir, {"fleet.yaml": FLEET + "render: {external: allow}\n"}), renderer)
    prod = allowed.clusters["prod-1"]
    assert prod.ok, prod.errors
    assert prod.external == ("fancy: buildMetadata in apps/fancy/kustomization.yaml",)
    fancy = next(obj for obj in prod.bundle["objects"] if obj["metadata"]["name"] == "fancy")  # type: ignore[index]
    assert fancy["data"] == {"k": "v", "copy": "v"}

    # Back to deny: the cached external build must not be served.
    again = _render_fleet(_commit(repo_dir, {"fleet.yaml": FLEET}), renderer)
    assert not again.clusters["prod-1"].ok and again.clusters["dev-1"].ok
