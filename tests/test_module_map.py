"""The README's module map names every module of the package, so a newcomer finds each one there."""

from __future__ import annotations

from tests.conftest import ROOT


def test_every_module_is_in_the_readme_module_map() -> None:
    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "geo").rglob("*.py")
                     if p.name != "__init__.py" or p.parent.name == "formats")
    missing = [m for m in modules if f"`{m}`" not in section]
    assert not missing, f"add these to the README's module map: {missing}"
