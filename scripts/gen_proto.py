"""Generate the Python stubs in fr_gateway/contract/ from proto/frgateway/v1/.

protoc writes `from frgateway.v1 import x_pb2`, which only resolves when the
generated tree is a top-level package; the stubs live inside fr_gateway, so the
imports are rewritten to relative ones (what the protoletariat tool does, in one
regular expression). `--check` regenerates into a temporary folder and fails
when the checked-in stubs differ: a contract change without `make proto`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PROTO_PACKAGE = Path("frgateway/v1")
CONTRACT = ROOT / "fr_gateway" / "contract"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
ABSOLUTE_IMPORT = re.compile(r"^from frgateway\.v1 import ", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc over every .proto file and return the rewritten stubs in out_dir."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as raw:
        status = protoc.main([
            "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}",
            f"--python_out={raw}", f"--pyi_out={raw}", f"--grpc_python_out={raw}", *protos,
        ])
        if status != 0:
            raise SystemExit(f"protoc failed with status {status}")
        written = []
        for source in sorted((Path(raw) / PROTO_PACKAGE).iterdir()):
            if not source.name.endswith(GENERATED_SUFFIXES):
                continue
            target = out_dir / source.name
            target.write_text(ABSOLUTE_IMPORT.sub("from . import ", source.read_text()))
            written.append(target)
    return written


def stale_files() -> list[str]:
    """Names of stubs that are missing, extra or different from a fresh generation."""
    with tempfile.TemporaryDirectory() as fresh:
        expected = {p.name: p.read_text() for p in generate(Path(fresh))}
    present = {p.name: p.read_text() for p in CONTRACT.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    return sorted(name for name in expected.keys() | present.keys() if expected.get(name) != present.get(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the checked-in stubs are stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("stale generated stubs (run `make proto`): " + ", ".join(stale), file=sys.stderr)
            return 1
        print("generated stubs are current")
        return 0
    for old in CONTRACT.iterdir():
        if old.name.endswith(GENERATED_SUFFIXES):
            old.unlink()
    for path in generate(CONTRACT):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
