"""Vendor onnxruntime-web into the upload page: ``python scripts/vendor_web.py`` (needs npm).

The page's "on this device" mode runs the face detector and the detector model in the browser
with onnxruntime-web (WebAssembly). Its files are fetched from the npm registry with ``npm pack``
at build time, checked against the pinned version's integrity (sha512 of the tarball, as npm
publishes it), and copied into ``client/deepfake_client/web/static/vendor/`` with the licence, a
NOTICE and a manifest of sha256 sums. They are not committed (the WebAssembly binary alone is
14 MB); ``.gitignore`` keeps them out, CI and package builds run this script, and the gateway
says the mode is unavailable when they are missing.

``--check`` verifies the vendored files against the manifest (exit 1 if missing or changed).
Nothing outside the vendor folder is written; re-running with the files in place does nothing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

PACKAGE = "onnxruntime-web"
VERSION = "1.30.0"
# npm view onnxruntime-web@1.30.0 dist.integrity
INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
# The WebAssembly-only build (no WebGL/WebGPU): the UMD script, its loader and the SIMD binary.
FILES = ("dist/ort.wasm.min.js", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm")
VENDOR = pathlib.Path(__file__).resolve().parents[1] / "client/deepfake_client/web/static/vendor"
MANIFEST = "manifest.json"
MIT = """MIT License

Copyright (c) Microsoft Corporation.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(folder: pathlib.Path = VENDOR) -> str | None:
    """None if the vendored files are there and match the manifest, else what is wrong."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return f"{folder / MANIFEST}: missing or unreadable (run python scripts/vendor_web.py)"
    if manifest.get("version") != VERSION:
        return f"vendored {PACKAGE} {manifest.get('version')} != pinned {VERSION}"
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file() or sha256(path) != digest:
            return f"{path}: missing or changed"
    return None


def npm_pack(tmp: pathlib.Path) -> pathlib.Path:
    """The package tarball from the npm registry, its integrity checked."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("vendor_web: npm is not installed (apt-get install npm)")
    done = subprocess.run(
        [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(tmp), "--json", "--silent"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode:
        raise SystemExit(f"vendor_web: npm pack failed: {done.stderr.strip().splitlines()[-1:]}")
    tarball = tmp / json.loads(done.stdout)[0]["filename"]
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"vendor_web: {tarball.name} integrity {digest} != pinned {INTEGRITY}")
    return tarball


def vendor(folder: pathlib.Path = VENDOR) -> None:
    if check(folder) is None:
        print(f"vendor_web: {PACKAGE} {VERSION} already in {folder}")
        return
    with tempfile.TemporaryDirectory(prefix="vendor-web-") as tmp:
        tarball = npm_pack(pathlib.Path(tmp))
        staging = pathlib.Path(tempfile.mkdtemp(prefix=".vendor-", dir=folder.parent))
        staging.chmod(0o755)  # served and packaged like the rest of static/
        try:
            with tarfile.open(tarball) as archive:
                for member in FILES:
                    source = archive.extractfile(f"package/{member}")
                    if source is None:
                        raise SystemExit(f"vendor_web: {member} is not in {tarball.name}")
                    (staging / pathlib.Path(member).name).write_bytes(source.read())
                package = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
            (staging / "LICENSE").write_text(MIT)
            files = {p.name: sha256(p) for p in sorted(staging.iterdir())}
            (staging / "NOTICE.md").write_text(
                f"# Vendored: {PACKAGE} {VERSION}\n\n"
                f"From the npm registry (`npm pack {PACKAGE}@{VERSION}`, tarball integrity `{INTEGRITY}`) "
                f"by `scripts/vendor_web.py`. Licence: {package.get('license')} (LICENSE; ONNX Runtime, "
                "Copyright (c) Microsoft Corporation). Files and sha256 sums: manifest.json.\n"
            )
            manifest = {"package": PACKAGE, "version": VERSION, "integrity": INTEGRITY, "files": files}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if folder.exists():  # only ever this script's own output, which check() found stale
                shutil.rmtree(folder)
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    print(f"vendor_web: {PACKAGE} {VERSION} -> {folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vendor_web", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify the vendored files")
    parser.add_argument("--out", type=pathlib.Path, default=VENDOR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problem = check(args.out)
        out = sys.stderr if problem else sys.stdout
        print(problem or f"vendor_web: {PACKAGE} {VERSION} in place", file=out)
        return 1 if problem else 0
    vendor(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
