"""The README's demo table is the one bench/readme_demo.py makes from the recorded demo run."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("readme_demo", ROOT / "bench" / "readme_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_readme_demo_table_is_made_from_the_demo_record():
    demo = _module()
    readme = (ROOT / "README.md").read_text()
    record = json.loads(demo.RECORD.read_text())
    assert demo.replace_block(readme, demo.block(record)) == readme, "run: python bench/readme_demo.py"
    # and the record is a real demo run: every artifact of the manifest was profiled with top-1
    profiled = {r["name"] for r in record["profile"]["results"] if r.get("accuracy")}
    assert profiled == {a["path"] for a in record["manifest"]["artifacts"]}
