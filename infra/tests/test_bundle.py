"""infra/bundle.py, which `make build` runs: the checks folder into the check function's zip and the
plan into the forwarder's, beside the bootstrap, with nothing stale left behind."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bundle import bundle  # noqa: E402


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as z:
        return sorted(z.namelist())


def test_a_folder_goes_in_under_its_name_and_a_deleted_check_leaves_the_zip(tmp_path):
    zip_path = tmp_path / "bootstrap.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        executable = zipfile.ZipInfo("bootstrap")
        executable.external_attr = 0o100755 << 16
        z.writestr(executable, "binary")
    checks = tmp_path / "checks"
    (checks / "schemas").mkdir(parents=True)
    for name, text in {"defaults.toml": "[deploy]\n", "a.toml": "check = 'a'\n", "b.toml": "check = 'b'\n",
                       "schemas/x.json": "{}"}.items():
        (checks / name).write_text(text)
    plan = tmp_path / "plan.json"
    plan.write_text('{"checks": []}')
    bundle(zip_path, [checks, plan])
    assert names(zip_path) == ["bootstrap", "checks/a.toml", "checks/b.toml", "checks/defaults.toml",
                               "checks/schemas/x.json", "plan.json"]
    (checks / "b.toml").unlink()
    (checks / "a.toml").write_text("check = 'a'\n# edited\n")
    bundle(zip_path, [checks])
    assert names(zip_path) == ["bootstrap", "checks/a.toml", "checks/defaults.toml", "checks/schemas/x.json",
                               "plan.json"]
    with zipfile.ZipFile(zip_path) as z:
        assert z.read("checks/a.toml").decode().endswith("# edited\n")
        assert z.read("bootstrap") == b"binary"
        assert z.getinfo("bootstrap").external_attr >> 16 == 0o100755, "Lambda must still be able to run it"
