"""Adds files to a Lambda zip beside its bootstrap: `bundle.py ZIP PATH...`.

A folder goes in whole under its own name (checks/ -> checks/<file>), a file at the zip's root.
Used by `make build`: the checks folder into the one check function's zip (CHECK_NAME selects a
journey there, verified against CHECK_JOURNEY_SHA256), the plan into the forwarder's
(CHECK_PLAN_FILE=/var/task/plan.json). Entries already in the zip are replaced, so a rebuild never
leaves a deleted check behind.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def entries(paths: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                out[f"{path.name}/{file.relative_to(path).as_posix()}"] = file
        else:
            out[path.name] = path
    return out


def bundle(zip_path: Path, paths: list[Path]) -> None:
    added = entries(paths)
    folders = tuple(f"{p.name}/" for p in paths if p.is_dir())
    with zipfile.ZipFile(zip_path) as old:
        kept = [(info, old.read(info)) for info in old.infolist()
                if info.filename not in added and not info.filename.startswith(folders)]
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as new:
        for info, data in kept:
            new.writestr(info, data)
        for name, file in added.items():
            new.write(file, name)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: bundle.py ZIP PATH...")
    bundle(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
