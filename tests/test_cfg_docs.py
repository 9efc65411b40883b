"""docs/CONFIG.md documents every key of every mount type, and is what the generator writes."""

from __future__ import annotations

from pathlib import Path

from storied.backends import registry
from storied.backends._config_docs import render, undocumented

CONFIG_MD = Path(__file__).resolve().parent.parent / "docs" / "CONFIG.md"


def test_every_registry_key_is_documented() -> None:
    assert undocumented() == []


def test_config_md_is_up_to_date() -> None:
    assert CONFIG_MD.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m storied.backends._config_docs > docs/CONFIG.md"
    )


def test_each_type_section_lists_its_keys_and_defaults() -> None:
    text = CONFIG_MD.read_text(encoding="utf-8")
    sections = {part.split("`")[1]: part for part in text.split("\n## ")[1:] if "`" in part}
    for name, spec in registry.TYPES.items():
        section = next(s for title, s in sections.items() if name in s.split("\n")[0])
        assert f"Default `retries`: {spec.retries}." in section
        if spec.extra:
            assert f"pip install 'storied[{spec.extra}]'" in section
        for key in (*spec.required, *spec.optional):
            assert f"| `{key}`" in section, (name, key)
    common = text.split("## Keys of every mount")[1].split("\n## ")[0]
    for key in registry.COMMON_SCHEMA:
        assert f"| `{key}` |" in common, key
