"""The README's "Every key" block: a config that loads, and that names every key the config accepts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from aggregator.config import (
    DefaultsModel,
    FullContentModel,
    ListingFieldsModel,
    OutputModel,
    PollingModel,
    SiteModel,
    SourceModel,
    load_config,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def _every_key_block() -> str:
    text = README.read_text(encoding="utf-8")
    after = text[text.index("Every key:") :]
    return after.split("```yaml\n", 1)[1].split("```", 1)[0]


def _keys(mappings: list[Any]) -> set[str]:
    return {key for mapping in mappings for key in mapping}


def test_the_every_key_block_loads_and_names_every_key(tmp_path: Path) -> None:
    block = _every_key_block()
    config = tmp_path / "sources.yaml"
    config.write_text(block, encoding="utf-8")
    loaded = load_config(config)
    assert [source.listing is not None for source in loaded.sources] == [False, True]  # a feed, a listing

    raw = yaml.safe_load(block)
    sources = raw["sources"]
    documented: list[tuple[type[BaseModel], set[str]]] = [
        (SiteModel, set(raw["site"])),
        (OutputModel, set(raw["output"])),
        (DefaultsModel, set(raw["defaults"])),
        (PollingModel, set(raw["polling"])),
        (SourceModel, _keys(sources)),
        (FullContentModel, _keys([s["full_content"] for s in sources if "full_content" in s])),
    ]
    for model, keys in documented:
        assert set(model.model_fields) - keys == set(), model.__name__
    assert set(ListingFieldsModel.model_fields) >= _keys([s["fields"] for s in sources if "fields" in s])
