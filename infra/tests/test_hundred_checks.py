"""A hundred checks from files alone (issue 22): 100 check files generated into a temporary
checks folder are validated by `synthetic validate` (what `make journeys` runs), the template is
regenerated from them the way `make plan` does, and the result passes cfn-lint and the SAM
transform within CloudFormation's limits. Nothing in infra/ is edited by hand.

Cost in CI: about 10 s on a 2-core machine (most of it cfn-lint and the transform).

Run: .venv/bin/python -m pytest infra/tests/test_hundred_checks.py -q
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from test_template import CHECKS_DIR, SYNTHETIC, check_blocks, generated_template, load_sam, plan, to_cloudformation

REPO = Path(__file__).resolve().parents[2]
CFN_LINT = REPO / ".venv" / "bin" / "cfn-lint"
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
MAX_RESOURCES = 500
MAX_TEMPLATE_BYTES_S3 = 1_000_000
MAX_TEMPLATE_BYTES_DIRECT = 51_200
MAX_PARAMETERS = 200
MAX_OUTPUTS = 200
CHECKS = 100


def hundred_checks(folder: Path) -> None:
    """The shipped folder plus generated checks up to 100: a mix of GETs and signed-in journeys,
    schedules, regions, tags and dependencies on health."""
    shutil.copytree(CHECKS_DIR, folder)
    shipped = len(list(folder.glob("*.toml"))) - 1
    for i in range(CHECKS - shipped):
        name = f"generated-{i:03d}"
        schedule = [1, 2, 5, 10, 15][i % 5]
        regions = '["eu-west-1"]' if i % 10 == 0 else "[]"
        login = i % 3 == 0
        steps = (
            '[[steps]]\nname = "login"\nrole = "login"\nmethod = "POST"\npath = "/api/auth/token"\n'
            'json = { email = "{{secret.email}}", password = "{{secret.password}}" }\n'
            'capture = { token = { json = "/access_token" } }\n\n'
            '[[steps]]\nname = "read"\npath = "/api/products"\nbearer = "{{token}}"\n'
            if login else
            f'[[steps]]\nname = "page"\npath = "/pages/{i}"\nexpect_status = 200\n'
        )
        (folder / f"{name}.toml").write_text(
            f'check = "{name}"\ndescription = "generated check {i}"\n\n'
            f'[deploy]\nschedule_minutes = {schedule}\nregions = {regions}\ntags = ["generated", "team-{i % 7}"]\n'
            f'depends_on = ["health"]\n\n{steps}'
        )


def test_a_hundred_check_files_make_a_valid_template_within_cloudformations_limits(tmp_path):
    folder = tmp_path / "checks"
    hundred_checks(folder)
    # make journeys: the folder validates as a whole (defaults, dependencies)
    validated = subprocess.run([str(SYNTHETIC), "validate", str(folder)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.count(": ok (") == CHECKS
    planned = plan(folder)
    assert len(planned) == CHECKS
    # make plan, into a copy of infra/: the only change a new check brings
    template = generated_template(tmp_path, folder)
    assert sorted(check_blocks(load_sam(template))) == sorted(planned)
    lint = subprocess.run([str(CFN_LINT), str(template), str(template.parent / "check.yaml")],
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    cfn = to_cloudformation(path=template)
    # a nested stack counts as one resource in the parent, whatever it holds
    assert len(cfn["Resources"]) <= MAX_RESOURCES, len(cfn["Resources"])
    assert len(cfn["Parameters"]) <= MAX_PARAMETERS
    assert len(cfn.get("Outputs", {})) <= MAX_OUTPUTS
    size = len(json.dumps(cfn).encode())
    # sam deploy uploads templates over 51,200 bytes to S3 first; 1 MB is the limit through S3
    assert size <= MAX_TEMPLATE_BYTES_S3, size
    print(f"100 checks: {len(cfn['Resources'])} resources in the parent, {size} bytes of CloudFormation JSON "
          f"(direct upload limit {MAX_TEMPLATE_BYTES_DIRECT}: {'within' if size <= MAX_TEMPLATE_BYTES_DIRECT else 'via S3'})")
    child = to_cloudformation(path=template.parent / "check.yaml")
    assert len(child["Resources"]) <= MAX_RESOURCES
    # a check limited to a region is deployed there only
    eu_only = [name for name, c in planned.items() if c["regions"] == ["eu-west-1"]]
    blocks = check_blocks(load_sam(template))
    assert eu_only and all(blocks[name]["Condition"] for name in eu_only)
