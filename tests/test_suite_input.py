"""Suite files are untrusted input: every bad file is one ``ConfigError`` line, never a traceback.

Each corpus entry is a suite file (text or bytes) and what its error must say: the key path (when
the problem has one), a distinctive reason or fix, and for some the YAML line.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from transfer_bench import suite_yaml
from transfer_bench.config import load_suite
from transfer_bench.errors import ConfigError
from transfer_bench.suite_yaml import MAX_SUITE_BYTES

pytestmark = pytest.mark.reliability

REPO = Path(__file__).parents[1]

BASE = """\
name: t
seeds: [0, 1]
model: {name: lenet_300_100}
datasets:
  a: {source: "synthetic:a"}
  b: {source: "synthetic:b"}
optimizers:
  adam: {name: adam, lr: 0.001}
train: {optimizer: adam, epochs: 2}
search:
  sources: [a]
  rate: 0.2
  levels: 2
  early_bird: {window: 3}
transfer:
  targets: [a, b]
  controls: [random_reinit, dense]
analysis: {baseline: random_reinit}
"""


def sub(old: str, new: str) -> str:
    """BASE with one exact substring replaced (fails loudly if the corpus drifts from BASE)."""
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def add(text: str) -> str:
    return BASE + text


def bomb(levels: int = 9, width: int = 10) -> str:
    """'Billion laughs': each level lists ``width`` aliases of the previous one (width**levels)."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return BASE + "\n".join(lines) + "\n"


# (id, file content, key path or None, distinctive substring, expected line or None)
CASES: list[tuple[str, str | bytes, str | None, str, int | None]] = [
    # unknown keys at several depths, with did-you-mean
    ("unknown-top", add("seed: [3]\n"), "seed", "did you mean 'seeds'?", 19),
    ("unknown-search", sub("  rate: 0.2", "  rat: 0.2"), "search.rat", "did you mean 'rate'?", 12),
    (
        "unknown-early-bird",
        sub("{window: 3}", "{windw: 3}"),
        "search.early_bird.windw",
        "did you mean 'window'?",
        14,
    ),
    (
        "unknown-dataset-field",
        sub('a: {source: "synthetic:a"}', 'a: {sorce: "synthetic:a"}'),
        "datasets.a.sorce",
        "did you mean 'source'?",
        5,
    ),
    (
        "unknown-optimizer-field",
        sub("lr: 0.001}", "lr: 0.001, momentun: 0.9}"),
        "optimizers.adam.momentun",
        "did you mean 'momentum'?",
        8,
    ),
    (
        "unknown-transfer",
        sub("  controls: [", "  control: ["),
        "transfer.control",
        "did you mean 'controls'?",
        17,
    ),
    (
        "unknown-optional-section",
        add("stability: {levels: [0], point: 5}\n"),
        "stability.point",
        "did you mean 'points'?",
        19,
    ),
    (
        "unknown-per-source",
        sub("  levels: 2\n", "  levels: 2\n  per_source: {a: {rat: 0.1}}\n"),
        "search.per_source.a.rat",
        "did you mean 'rate'?",
        None,
    ),
    ("unknown-no-hint", sub("epochs: 2}", "epochs: 2, zzz: 1}"), "train.zzz", "allowed here:", 9),
    (
        "unknown-two-typos",
        sub("  rate: 0.2", "  rat: 0.2\n  levls: 2"),
        "search.rat",
        "did you mean 'rate'? (and 1 more problem)",
        12,
    ),
    ("unknown-long-key", add("x" * 1000 + ": 1\n"), "x" * 37 + "...", "unknown key", 19),
    # wrong types
    ("type-int", sub("epochs: 2}", "epochs: ten}"), "train.epochs", "valid integer", 9),
    ("type-float", sub("rate: 0.2", "rate: high"), "search.rate", "valid number", 12),
    (
        "type-list-for-map",
        sub("train: {optimizer: adam, epochs: 2}", "train: [1, 2]"),
        "train",
        "expected a mapping",
        9,
    ),
    (
        "type-text-for-map",
        sub("model: {name: lenet_300_100}", "model: lenet"),
        "model",
        "expected a mapping",
        3,
    ),
    (
        "type-text-for-list",
        sub("sources: [a]", "sources: a"),
        "search.sources",
        "expected a list",
        11,
    ),
    ("type-map-for-list", sub("seeds: [0, 1]", "seeds: {a: 1}"), "seeds", "expected a list", 2),
    ("type-bool-number", sub("epochs: 2}", "epochs: yes}"), "train.epochs", "boolean true", 9),
    ("type-bool-in-list", sub("seeds: [0, 1]", "seeds: [true, 1]"), "seeds[0]", "boolean", 2),
    ("type-union", sub("  rate: 0.2", "  rewind: [1]"), "search.rewind", "valid integer", 12),
    ("type-int-key", sub("  b: {source", "  1: {source"), "datasets.1", "as a number", 6),
    ("type-bool-key", sub("  b: {source", "  no: {source"), "datasets.no", "as a boolean", 6),
    # out-of-range values
    ("range-rate-high", sub("rate: 0.2", "rate: 1.5"), "search.rate", "less than 1", 12),
    ("range-rate-zero", sub("rate: 0.2", "rate: 0"), "search.rate", "greater than 0", 12),
    ("range-conv-rate", sub("rate: 0.2", "conv_rate: 1.0"), "search.conv_rate", "less than 1", 12),
    (
        "range-head-rate",
        sub("rate: 0.2", "head_rate: -0.1"),
        "search.head_rate",
        "greater than",
        12,
    ),
    (
        "range-density-high",
        sub("  rate: 0.2\n", "  method: snip\n  densities: [0.5, 1.5]\n"),
        "search.densities[1]",
        "less than or equal to 1",
        13,
    ),
    (
        "range-density-zero",
        sub("  rate: 0.2\n", "  method: snip\n  densities: [0.0]\n"),
        "search.densities[0]",
        "greater than 0",
        13,
    ),
    ("range-seed-negative", sub("seeds: [0, 1]", "seeds: [-1]"), "seeds[0]", "greater than or", 2),
    ("range-seed-fraction", sub("seeds: [0, 1]", "seeds: [1.5]"), "seeds[0]", "fractional", 2),
    ("range-seed-huge", sub("seeds: [0, 1]", "seeds: [4294967296]"), "seeds[0]", "less than", 2),
    ("range-data-seed", add("data_seed: -3\n"), "data_seed", "greater than or equal to 0", 19),
    ("range-epochs", sub("epochs: 2}", "epochs: 0}"), "train.epochs", "greater than or equal", 9),
    ("range-batch", sub("epochs: 2}", "batch_size: 0}"), "train.batch_size", "greater than", 9),
    ("range-lr-zero", sub("lr: 0.001", "lr: 0"), "optimizers.adam.lr", "greater than 0", 8),
    ("range-lr-negative", sub("lr: 0.001", "lr: -1"), "optimizers.adam.lr", "greater than", 8),
    ("range-lr-nan", sub("lr: 0.001", "lr: .nan"), "optimizers.adam.lr", "finite number", 8),
    ("range-lr-inf", sub("lr: 0.001", "lr: .inf"), "optimizers.adam.lr", "finite number", 8),
    (
        "range-betas",
        sub("lr: 0.001", "lr: 0.001, betas: [0.9, 1.5]"),
        "optimizers.adam.betas[1]",
        "less than 1",
        8,
    ),
    ("range-window", sub("{window: 3}", "{window: 1}"), "search.early_bird.window", "greater", 14),
    ("range-levels", sub("levels: 2", "levels: 0"), "search.levels", "greater than or equal", 13),
    ("range-rewind", sub("rate: 0.2", "rewind: -1"), "search.rewind", "rewind must be >= 0", 12),
    ("range-rewind-form", sub("rate: 0.2", "rewind: 2 epochs"), "search.rewind", "'<n>ep'", 12),
    ("range-input-size", add("input: {size: 2}\n"), "input.size", "greater than or equal", 19),
    (
        "range-test-fraction",
        sub('{source: "synthetic:b"}', '{source: "synthetic:b", test_fraction: 1.0}'),
        "datasets.b.test_fraction",
        "less than 1",
        6,
    ),
    (
        "range-samples",
        sub('{source: "synthetic:b"}', '{source: "synthetic:b", samples: 1000000000000}'),
        "datasets.b.samples",
        "less than or equal",
        6,
    ),
    (
        "range-alpha",
        sub("baseline: random_reinit}", "baseline: random_reinit, alpha: 2}"),
        "analysis.alpha",
        "less than 1",
        18,
    ),
    (
        "range-stability-points",
        add("stability: {levels: [0], points: 1}\n"),
        "stability.points",
        "greater than or equal to 3",
        19,
    ),
    (
        "range-transfer-level",
        sub("  controls: [", "  levels: [0, 9]\n  controls: ["),
        "transfer.levels[1]",
        "outside 0..2",
        17,
    ),
    (
        "range-stability-level",
        add("stability: {levels: [0, 5]}\n"),
        "stability.levels[1]",
        "outside 0..2",
        19,
    ),
    ("range-name", sub("name: t", "name: ../../etc"), "name", "is not a valid suite name", 1),
    (
        "range-milestones-order",
        sub("epochs: 2}", "epochs: 2, schedule: step, milestones: [5, 3]}"),
        "train.milestones[1]",
        "strictly increasing",
        9,
    ),
    # unknown datasets, models, methods, optimizers
    ("ref-source", sub("sources: [a]", "sources: [c]"), "search.sources[0]", "not a dataset", 11),
    (
        "ref-target",
        sub("targets: [a, b]", "targets: [a, bb]"),
        "transfer.targets[1]",
        "did you mean 'b'?",
        16,
    ),
    (
        "ref-transfer-source",
        sub("  targets:", "  sources: [b]\n  targets:"),
        "transfer.sources[0]",
        "add it to search.sources",
        16,
    ),
    (
        "ref-model",
        sub("lenet_300_100", "lenet_300_10"),
        "model.name",
        "did you mean 'lenet_300_100'?",
        3,
    ),
    ("ref-method", sub("rate: 0.2", "method: imq"), "search.method", "did you mean 'imp'?", 12),
    (
        "ref-optimizer-name",
        sub("{name: adam,", "{name: adamw,"),
        "optimizers.adam.name",
        "did you mean 'adam'?",
        8,
    ),
    (
        "ref-train-optimizer",
        sub("optimizer: adam,", "optimizer: sgd,"),
        "train.optimizer",
        "define it under optimizers",
        9,
    ),
    (
        "ref-search-optimizer",
        sub("rate: 0.2", "optimizer: adm"),
        "search.optimizer",
        "did you mean 'adam'?",
        12,
    ),
    (
        "ref-transfer-optimizers",
        sub("  targets:", "  optimizers: [adam, sgd]\n  targets:"),
        "transfer.optimizers[1]",
        "not an optimizer",
        16,
    ),
    (
        "ref-per-source",
        sub("  levels: 2\n", "  levels: 2\n  per_source: {c: {rate: 0.1}}\n"),
        "search.per_source.c",
        "not in search.sources",
        14,
    ),
    (
        "ref-per-source-optimizer",
        sub("  levels: 2\n", "  levels: 2\n  per_source: {a: {optimizer: sgd}}\n"),
        "search.per_source.a.optimizer",
        "not an optimizer",
        14,
    ),
    (
        "ref-source-prefix",
        sub('"synthetic:a"', '"foo:bar"'),
        "datasets.a.source",
        "unknown dataset source",
        5,
    ),
    (
        "ref-control",
        sub("[random_reinit, dense]", "[random_reinit, densse]"),
        "transfer.controls[1]",
        "did you mean 'dense'?",
        17,
    ),
    (
        "ref-plot",
        sub("baseline: random_reinit}", "baseline: random_reinit, plots: [heatmap]}"),
        "analysis.plots[0]",
        "Input should be",
        18,
    ),
    # duplicates
    (
        "dup-top-key",
        sub("name: t\n", "name: t\nname: u\n"),
        "name",
        "duplicate key 'name' (first at line 1)",
        2,
    ),
    (
        "dup-nested-key",
        sub("  levels: 2\n", "  levels: 2\n  rate: 0.3\n"),
        "search.rate",
        "duplicate key 'rate' (first at line 12)",
        14,
    ),
    (
        "dup-flow-key",
        sub('a: {source: "synthetic:a"}', 'a: {source: "synthetic:a", source: x}'),
        "datasets.a.source",
        "duplicate key",
        5,
    ),
    ("dup-dataset-name", sub("  b: {source", "  a: {source"), "datasets.a", "duplicate key 'a'", 6),
    (
        "dup-seeds",
        sub("seeds: [0, 1]", "seeds: [0, 1, 0]"),
        "seeds[2]",
        "seed 0 is listed twice",
        2,
    ),
    (
        "dup-sources",
        sub("sources: [a]", "sources: [a, a]"),
        "search.sources[1]",
        "listed twice",
        11,
    ),
    (
        "dup-targets",
        sub("targets: [a, b]", "targets: [a, b, a]"),
        "transfer.targets[2]",
        "listed twice",
        16,
    ),
    (
        "dup-controls",
        sub("[random_reinit, dense]", "[dense, random_reinit, dense]"),
        "transfer.controls[2]",
        "'dense' is listed twice",
        17,
    ),
    (
        "dup-levels",
        sub("  controls: [", "  levels: [0, 1, 1]\n  controls: ["),
        "transfer.levels[2]",
        "listed twice",
        17,
    ),
    (
        "dup-densities",
        sub("  rate: 0.2\n", "  method: snip\n  densities: [0.5, 0.5]\n"),
        "search.densities[1]",
        "listed twice",
        13,
    ),
    # controls and settings that need something absent
    (
        "needs-own-ticket-search",
        sub("[random_reinit, dense]", "[random_reinit, own_ticket]"),
        "transfer.controls[1]",
        "own_ticket needs a search on every target",
        17,
    ),
    (
        "needs-baseline-control",
        sub("baseline: random_reinit", "baseline: shuffle_layerwise"),
        "analysis.baseline",
        "not among transfer.controls",
        18,
    ),
    (
        "needs-densities",
        sub("  rate: 0.2\n", "  method: snip\n"),
        "search.densities",
        "prunes at init to a list of densities",
        None,
    ),
    (
        "needs-pai",
        sub("  rate: 0.2\n", "  densities: [0.5]\n"),
        "search.densities",
        "only for pruning at init",
        12,
    ),
    (
        "needs-per-source-densities",
        sub("  levels: 2\n", "  levels: 2\n  per_source: {a: {method: snip}}\n"),
        "search.per_source.a.densities",
        "prunes at init",
        None,
    ),
    (
        "needs-same-levels",
        sub("  levels: 2\n", "  levels: 2\n  per_source: {a: {levels: 3}}\n").replace(
            "sources: [a]", "sources: [a, b]"
        ),
        "search.per_source",
        "same number of levels",
        14,
    ),
    (
        "needs-step-milestones",
        sub("epochs: 2}", "epochs: 2, schedule: step}"),
        "train.milestones",
        "needs milestones",
        None,
    ),
    (
        "needs-step-schedule",
        sub("epochs: 2}", "epochs: 2, milestones: [1]}"),
        "train.milestones",
        "only used by schedule: step",
        9,
    ),
    # YAML aliases: bombs, too many aliases, cycles, nesting
    ("alias-bomb", bomb(), "l4", "alias bomb", 23),
    (
        "alias-count",
        BASE + "x: &x 1\ny: [" + ", ".join(["*x"] * 150) + "]\n",
        "y[100]",
        "more than 100 YAML aliases",
        20,
    ),
    ("alias-cycle", add("x: &x [1, *x]\n"), "x[1]", "refers to a value that contains it", 19),
    (
        "deep-nesting",
        add("x: " + "[" * 100 + "]" * 100 + "\n"),
        "x" + "[0]" * 32,
        "nested deeper than 32 levels",
        19,
    ),
    (
        "alias-deep",
        add("x: &x " + "[" * 20 + "]" * 20 + "\ny: " + "[" * 20 + "*x" + "]" * 20 + "\n"),
        "y" + "[0]" * 20,
        "aliases nest values deeper than 32 levels",
        20,
    ),
    # documents that are not one mapping
    ("doc-list", "- a\n- b\n", None, "the document is a list, not a mapping", 1),
    ("doc-scalar", "hello\n", None, "the document is text, not a mapping", 1),
    ("doc-empty", "", None, "the file is empty", None),
    ("doc-comments-only", "# nothing here\n", None, "the file is empty", None),
    ("doc-null", "---\n...\n", None, "the file is empty", None),
    ("doc-multiple", BASE + "---\nname: u\n", None, "a second YAML document", 19),
    ("syntax-bracket", "name: x\nseeds: [0, 1\n", None, "invalid YAML", 3),
    ("syntax-indent", "name: x\n  seeds: [0]\n bad\n", None, "invalid YAML", 2),
    ("syntax-quote", 'name: "x\nseeds: [0]\n', None, "invalid YAML", 3),
    ("syntax-tab", "name: x\nsearch:\n\trate: 0.2\n", None, "invalid YAML", 3),
    (
        "python-tag",
        "name: !!python/object/apply:os.system [echo hi]\n",
        None,
        "YAML tag not allowed",
        1,
    ),
    ("control-char", "name: a\x07b\n", None, "unacceptable character #x0007", 1),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, "binary file", None),
    ("not-utf8", b"name: t\ndescription: caf\xe9\n", None, "not UTF-8 text (byte 0xe9)", 2),
]


def error_of(path: Path, scale: str | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        load_suite(path, scale)
    return str(e.value)


def check_message(msg: str, path: Path, key: str | None, reason: str, line: int | None) -> None:
    assert "\n" not in msg and "\r" not in msg, msg
    assert len(msg) < 600, msg
    assert msg.startswith(str(path)), msg
    assert path.name in msg
    if key is not None:
        assert f": {key}: " in msg, msg
    assert reason in msg, msg
    if line is not None:
        assert f": line {line}:" in msg or f": line {line}," in msg, msg
    for internal in ("Value error,", "instance of", "pydantic", "Traceback", "For further info"):
        assert internal not in msg, msg


@pytest.mark.parametrize(
    ("content", "key", "reason", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_suite_is_one_clear_line(tmp_path: Path, content, key, reason, line):
    p = tmp_path / "suite.yaml"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    check_message(error_of(p), p, key, reason, line)


def test_base_is_valid(tmp_path: Path):
    p = tmp_path / "suite.yaml"
    p.write_text(BASE)
    assert load_suite(p).transfer_levels == (0, 1, 2)


def test_missing_path_and_directory(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    check_message(error_of(missing), missing, None, "no such suite file; check the path", None)
    check_message(error_of(tmp_path), tmp_path, None, "is a directory", None)


def test_oversized_file_is_rejected_without_parsing(tmp_path: Path):
    p = tmp_path / "big.yaml"
    p.write_text(BASE + ("# padding padding padding padding padding padding\n" * 25_000))
    assert p.stat().st_size > MAX_SUITE_BYTES
    t0 = time.perf_counter()
    check_message(error_of(p), p, None, "over the 1,000,000-byte limit", None)
    assert time.perf_counter() - t0 < 0.5


def test_alias_bomb_is_fast_and_small(tmp_path: Path):
    p = tmp_path / "bomb.yaml"
    p.write_text(bomb(levels=9, width=10))  # 10**9 'lol's if expanded, 90 aliases
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        msg = error_of(p)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 20 * 2**20
    assert "alias bomb" in msg


def test_too_many_values(tmp_path: Path, monkeypatch):
    # the real limit (MAX_YAML_NODES) is hit the same way, only slower to parse in a test
    monkeypatch.setattr(suite_yaml, "MAX_YAML_NODES", 2000)
    p = tmp_path / "suite.yaml"
    p.write_text(add("x: [" + "0, " * 3000 + "0]\n"))
    msg = error_of(p)
    check_message(msg, p, None, "more than 2000 YAML values", 19)
    assert ": x[" in msg


def test_modest_aliases_and_merge_keys_still_work(tmp_path: Path):
    p = tmp_path / "suite.yaml"
    p.write_text(
        sub(
            "  adam: {name: adam, lr: 0.001}\n",
            "  adam: &adam {name: adam, lr: 0.001}\n  slow: {<<: *adam, lr: 0.0001}\n",
        ).replace("  targets: [a, b]\n", "  targets: [a, b]\n  optimizers: [adam, slow]\n")
    )
    suite = load_suite(p)
    assert suite.optimizers["slow"].name == "adam" and suite.optimizers["slow"].lr == 0.0001
    assert suite.transfer_optimizers == ("adam", "slow")


def test_scale_errors_point_at_the_override(tmp_path: Path):
    p = tmp_path / "suite.yaml"
    p.write_text(BASE + "scales:\n  smoke:\n    train.epochs: 0\n    train.epoch: 1\n")
    load_suite(p)  # the full-scale suite is fine
    msg = error_of(p, "smoke")
    check_message(msg, p, "train.epoch", "did you mean 'epochs'?", 22)
    p.write_text(BASE + "scales:\n  smoke:\n    train: {epochs: 0}\n")
    check_message(error_of(p, "smoke"), p, "train.epochs", "greater than or equal to 1", 21)
    check_message(error_of(p, "tiny"), p, None, "'tiny' is not in the suite's scales", None)


def test_every_shipped_suite_loads_at_every_scale():
    paths = sorted((REPO / "suites").rglob("*.yaml"))
    assert paths
    for path in paths:
        suite = load_suite(path)
        for scale in suite.scales:
            assert load_suite(path, scale).name == f"{suite.name}-{scale}"


def test_cli_prints_one_error_line_and_exits_2(tmp_path: Path):
    files = {
        "dup.yaml": sub("name: t\n", "name: t\nname: u\n"),
        "typo.yaml": sub("  rate: 0.2", "  rat: 0.2"),
    }
    procs = {}
    for name, text in files.items():  # both at once: each pays the torch import
        (tmp_path / name).write_text(text)
        cmd = [sys.executable, "-m", "transfer_bench.cli", "plan", str(tmp_path / name)]
        procs[name] = subprocess.Popen(
            [*cmd, "--no-estimate"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    expected = {"dup.yaml": "duplicate key 'name'", "typo.yaml": "did you mean 'rate'?"}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        assert err.startswith("error:") and "Traceback" not in err, err
        assert name in err and expected[name] in err
        assert len(err.strip().splitlines()) == 1, err
