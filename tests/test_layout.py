"""The package's layout keeps the simulated cloud apart: no lab module shares a product module's name
(the import rules themselves are import-linter contracts in setup.cfg, run by `tox -e lint`)."""

import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "csaudit"


def test_no_lab_module_shares_a_product_module_name():
    lab = {p.stem for p in (PACKAGE / "lab").glob("*.py") if p.stem != "__init__"}
    product = {p.stem for p in PACKAGE.rglob("*.py") if "lab" not in p.relative_to(PACKAGE).parts[:1] and p.stem != "__init__"}
    product |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in ("lab", "__pycache__")}
    assert lab and product and lab & product == set()
