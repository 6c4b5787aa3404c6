"""Fuzz target: the native kustomize engine (``build_layers``) on generated trees.

The input is a packed tree (see ``_support``): ``app/`` is the base, every ``components/<name>/`` an
overlay Component in name order, ``.namespace`` the namespace. The engine must return objects that
encode as a bundle, or refuse with a :class:`~hub.render.errors.RenderError`; any other exception
is a crash. Run it longer with ``.venv/bin/python tests/fuzz/fuzz_kustomize.py -max_total_time=600
/tmp/kustomize-corpus tests/fuzz/corpus/kustomize`` (new inputs go to the first directory).
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports(include=["hub", "protos"]):
    from hub.render import kustomize
    from hub.tree import errors
    from protos import bundle
    from protos.objects import ObjectRef
    from tests.fuzz import _support

# Small bounds keep each run fast; hitting one must still be a clean LimitError.
OPTIONS = kustomize.BuildOptions(max_yaml_bytes=256 * 1024, max_bundle_objects=500, max_build_bytes=1024 * 1024)


def test_one_input(data: bytes) -> None:
    files = _support.unpack_tree(data)
    fs = _support.MemoryFS(files)
    components = [f"components/{name}" for name in fs.list_dir("components")] if fs.is_dir("components") else []
    namespace = files.get(".namespace", b"").decode("utf-8", "replace").strip() or None
    try:
        result = kustomize.build_layers(fs, resources=["app"], components=components, namespace=namespace,
                                        options=OPTIONS)
    except errors.RenderError as exc:
        assert "\n" not in str(exc), str(exc)  # one line, whatever the input said
        return
    # What the pipeline does next with every object: its identity, and its canonical bytes.
    for obj in result.objects:
        str(ObjectRef.of(obj))
    bundle.encode({"objects": result.objects})


if __name__ == "__main__":
    _support.main(test_one_input)
