"""Suite validation: bad YAML gives one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from transfer_bench.config import load_suite, parse_suite
from transfer_bench.errors import ConfigError

BASE = {
    "name": "t",
    "seeds": [0, 1],
    "model": {"name": "lenet_300_100"},
    "datasets": {"a": {"source": "synthetic:a"}, "b": {"source": "synthetic:b"}},
    "search": {"sources": ["a"], "rate": 0.2, "levels": 2},
    "transfer": {"targets": ["a", "b"]},
}


def with_(path: str, value) -> dict:
    import copy

    d = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    cur = d
    for p in parents:
        cur = cur[p]
    cur[last] = value
    return d


def error_of(data) -> str:
    with pytest.raises(ConfigError) as e:
        parse_suite(data, "s.yaml")
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_valid_suite_parses():
    s = parse_suite(BASE)
    assert s.transfer_optimizers == ("adam",)
    assert s.transfer_levels == (0, 1, 2)


def test_unknown_key_named_with_suggestion():
    msg = error_of(with_("search.rat", 0.3))
    assert "search.rat" in msg and "did you mean 'rate'" in msg


def test_unknown_top_level_key():
    msg = error_of(with_("seed", [1]))
    assert "seed" in msg and "did you mean 'seeds'" in msg


def test_wrong_type_named():
    msg = error_of(with_("train", {"epochs": "ten"}))
    assert msg.startswith("s.yaml: train.epochs:")


@pytest.mark.parametrize("rate", [0.0, 1.0, 1.5, -0.1])
def test_rate_outside_open_interval(rate):
    msg = error_of(with_("search.rate", rate))
    assert "search.rate" in msg


def test_reference_to_unknown_dataset():
    msg = error_of(with_("transfer.targets", ["a", "digitz"]))
    assert "transfer.targets[1]" in msg and "'digitz'" in msg


def test_unknown_source_prefix():
    msg = error_of(with_("datasets", {"a": {"source": "foo:bar"}}))
    assert "datasets.a.source" in msg


def test_non_mapping_document(tmp_path: Path):
    p = tmp_path / "s.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_suite(p)


def test_yaml_syntax_error_has_line(tmp_path: Path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nseeds: [0, 1\n")
    with pytest.raises(ConfigError, match="line"):
        load_suite(p)


def test_quickstart_suite_is_valid():
    suite = load_suite(Path(__file__).parents[1] / "suites" / "quickstart.yaml")
    assert len(suite.seeds) >= 3 and suite.search.levels >= 5


def test_rewind_forms():
    s = parse_suite(with_("search.rewind", "2ep"))
    assert s.search.rewind_iterations(50) == 100
    assert parse_suite(with_("search.rewind", "30it")).search.rewind_iterations(50) == 30
    error_of(with_("search.rewind", "2 epochs"))


def test_roundtrip_yaml(tmp_path: Path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(BASE))
    assert load_suite(p).name == "t"


def test_per_source_overrides():
    d = with_(
        "search", {"sources": ["a", "b"], "levels": 2, "per_source": {"b": {"rewind": "1ep"}}}
    )
    s = parse_suite(d)
    assert s.search_for("a").rewind == 0 and s.search_for("b").rewind == "1ep"
    msg = error_of(with_("search", {"sources": ["a"], "per_source": {"a": {"rat": 0.1}}}))
    assert "search.per_source.a" in msg
    msg = error_of(
        with_(
            "search",
            {
                "sources": ["a", "b"],
                "levels": 2,
                "per_source": {"b": {"method": "snip", "densities": [0.5]}},
            },
        )
    )
    assert "same number of levels" in msg


def test_method_specific_fields():
    msg = error_of(with_("search", {"sources": ["a"], "method": "synflow"}))
    assert "search.densities" in msg
    msg = error_of(with_("search", {"sources": ["a"], "densities": [0.5]}))
    assert "only for pruning at init" in msg
    s = parse_suite(with_("search", {"sources": ["a"], "method": "early_bird"}))
    assert s.search.num_levels == 3 and s.transfer_levels == (0, 1, 2, 3)


def test_own_ticket_needs_target_search():
    msg = error_of(with_("transfer", {"targets": ["b"], "controls": ["own_ticket"]}))
    assert "own_ticket" in msg and "search.sources" in msg


def test_scales_override_and_rename(tmp_path: Path):
    d = with_("scales", {"smoke": {"train.epochs": 1, "seeds": [0], "search.levels": 1}})
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    full = load_suite(p)
    smoke = load_suite(p, "smoke")
    assert smoke.name == "t-smoke" and smoke.train.epochs == 1 and smoke.seeds == (0,)
    assert full.name == "t" and full.seeds == (0, 1)
    with pytest.raises(ConfigError, match="'tiny' is not in the suite's scales"):
        load_suite(p, "tiny")
    d["scales"]["bad"] = {"train.epoch": 1}
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match="train.epoch"):
        load_suite(p, "bad")
