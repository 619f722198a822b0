"""The krew archive of ``kubectl sdc``, and its manifest from the repository's ``.krew.yaml``.

    python -m seamless_dask_runtime.launcher.kubectl_plugin.package DIST --tag v0.1.0

writes ``DIST/kubectl-sdc.tar.gz`` (the plugin as one executable zip file that
runs with any ``python3`` >= 3.10 and no packages: it needs only the standard
library and :mod:`seamless_dask_runtime.model.identity`) and ``DIST/sdc.yaml``, the
krew manifest: ``.krew.yaml`` (krew-release-bot's template) with the tag, the
archive's release URL and its sha256 filled in. The archive is byte-for-byte
reproducible, so its sha256 depends on the source only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RUNTIME = PACKAGE.parent.parent
MANIFEST_TEMPLATE = RUNTIME.parent / ".krew.yaml"
ARCHIVE = "kubectl-sdc.tar.gz"
BINARY = "kubectl-sdc"
SOURCES = ("__init__.py", "model/__init__.py", "model/identity.py", "launcher/__init__.py",
           *(f"launcher/kubectl_plugin/{name}.py" for name in ("__init__", "cli", "kubectl", "recipe", "views")))
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same source gives the same bytes


def zipapp_bytes() -> bytes:
    """``kubectl-sdc``: a ``#!/usr/bin/env python3`` line, then a zip whose ``__main__`` runs the plugin."""
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)

        add("__main__.py", b"from seamless_dask_runtime.launcher.kubectl_plugin.cli import run\n\nrun()\n")
        for source in SOURCES:
            add(f"seamless_dask_runtime/{source}", (RUNTIME / source).read_bytes())
    return buffer.getvalue()


def archive_bytes() -> bytes:
    """The tar.gz krew downloads: ``kubectl-sdc``, executable."""
    binary = zipapp_bytes()
    raw = io.BytesIO()
    # gzip without a name or time in its header, so the bytes are reproducible
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(BINARY)
        info.size, info.mode, info.mtime = len(binary), 0o755, 0
        tar.addfile(info, io.BytesIO(binary))
    return raw.getvalue()


_ADD_URI_AND_SHA = re.compile(r'\{\{\s*addURIAndSha\s+"([^"]+)"\s+\.TagName\s*\}\}')
_TAG = re.compile(r"\{\{\s*\.TagName\s*\}\}")


def render_manifest(template: str, tag: str, sha256: str) -> str:
    """krew-release-bot's two template functions: ``{{ .TagName }}`` and ``{{ addURIAndSha "URL" .TagName }}``."""
    def uri_and_sha(match: re.Match[str]) -> str:
        url = _TAG.sub(tag, match.group(1))
        indent = template[:match.start()].rsplit("\n", 1)[-1]
        return f"uri: {url}\n{indent}sha256: {sha256}"

    return _TAG.sub(tag, _ADD_URI_AND_SHA.sub(uri_and_sha, template))


def build(out: Path, tag: str, template: Path = MANIFEST_TEMPLATE) -> tuple[Path, Path]:
    """Write the archive and the manifest for ``tag`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    data = archive_bytes()
    archive = out / ARCHIVE
    archive.write_bytes(data)
    manifest = out / "sdc.yaml"
    manifest.write_text(render_manifest(template.read_text(), tag, hashlib.sha256(data).hexdigest()))
    return archive, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for kubectl-sdc.tar.gz and sdc.yaml")
    parser.add_argument("--tag", required=True, help="the release tag, e.g. v0.1.0")
    parser.add_argument("--template", type=Path, default=MANIFEST_TEMPLATE, help="the .krew.yaml template")
    args = parser.parse_args()
    for path in build(args.out, args.tag, args.template):
        print(path)


if __name__ == "__main__":
    main()
