"""Paper figures: style, every figure kind headless, mask similarity, missing-data behaviour."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
import torch
from matplotlib.colors import to_rgb

from transfer_bench.analysis import compare, load_histories, load_results
from transfer_bench.analysis.masks import (
    OVERALL,
    collect_tickets,
    overlap_matrix,
    pair_table,
)
from transfer_bench.analysis.plots import (
    FIGURE_KINDS,
    layer_density_figure,
    make_figure,
    mask_overlap_figure,
    optimizer_transfer_figure,
    plot,
    sparsity_figure,
    training_curves_figure,
    transfer_matrix_figure,
)
from transfer_bench.analysis.style import (
    CONTROL_ORDER,
    StyleMap,
    figure_width,
    new_figure,
    paper_style,
)
from transfer_bench.analysis.style import palette as style_palette
from transfer_bench.errors import ConfigError, TicketError
from transfer_bench.pruning.overlap import expected_random, hamming, jaccard
from transfer_bench.tickets import save_ticket, ticket_from_state

SOURCES = ("digits", "mnist5k", "usps")
TARGETS = ("digits", "usps")
OPTIMIZERS = ("adam", "sgd")
SEEDS = (0, 1, 2)
LEVELS = (0, 1, 2, 3)
TICKET_SEEDS = (0, 1)
TICKET_LEVELS = (0, 1, 2)
MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


def _accuracy(rng: np.random.Generator, control: str, level: int, source: str) -> float:
    base = {"ticket": 0.90, "random_reinit": 0.90 - 0.05 * level, "dense": 0.91, "imp": 0.95}
    bonus = 0.01 if source == "digits" else 0.0
    return float(np.clip(base[control] + bonus + rng.normal(0, 0.004), 0, 1))


def make_records(
    seeds=SEEDS,
    controls=("ticket", "random_reinit", "dense"),
    optimizers=OPTIMIZERS,
    sources=SOURCES,
    levels=LEVELS,
) -> list[dict]:
    """Searches with adam on every source; transfers to every target with every optimizer."""
    rng = np.random.default_rng(7)
    recs: list[dict] = []

    def add(kind, source, target, optimizer, control, level, seed):
        acc = _accuracy(rng, control, level, source or "")
        recs.append(
            {
                "kind": kind,
                "suite": "quick",
                "run_id": f"{kind}-{len(recs):05d}",
                "source": source,
                "target": target,
                "optimizer": optimizer,
                "source_optimizer": None if control == "dense" else "adam",
                "control": control,
                "level": level,
                "density": 1.0 if control == "dense" else 0.8**level,
                "seed": seed,
                "test_accuracy": acc,
                "best_test_accuracy": min(1.0, acc + 0.01),
                "history": [
                    {"iteration": it, "epoch": k + 1, "test_accuracy": acc - 0.1 / (k + 1)}
                    for k, it in enumerate((10, 20, 30))
                ],
            }
        )

    for seed in seeds:
        for src in sources:
            for lv in levels:
                add("search", src, src, "adam", "imp", lv, seed)
        for tgt in TARGETS:
            for opt in optimizers:
                if "dense" in controls:
                    add("transfer", None, tgt, opt, "dense", 0, seed)
                for src in sources:
                    for lv in levels:
                        for control in controls:
                            if control != "dense":
                                add("transfer", src, tgt, opt, control, lv, seed)
    return recs


def write_records(root: Path, recs: list[dict]) -> Path:
    for r in recs:
        d = root / r["run_id"] / f"seed_{r['seed']}" / f"level_{r['level']}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps(r))
    return root


def toy_masks(source: str, seed: int, level: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(SOURCES.index(source) * 100 + seed * 10 + level)
    density = 0.6**level
    return {
        "fc1.weight": torch.rand(6, 8, generator=g) < density,
        "fc.weight": torch.rand(3, 6, generator=g) < min(1.0, 2 * density),
    }


def write_tickets(root: Path, sources=SOURCES, seeds=TICKET_SEEDS) -> Path:
    """Search-run layout: <run_id>/seed_<s>/{config.json, level_<L>/ticket.ticket}."""
    state = {
        "fc1.weight": torch.randn(6, 8),
        "fc1.bias": torch.zeros(6),
        "fc.weight": torch.randn(3, 6),
        "fc.bias": torch.zeros(3),
    }
    for src in sources:
        for seed in seeds:
            seed_dir = root / f"search-{src}" / f"seed_{seed}"
            seed_dir.mkdir(parents=True, exist_ok=True)
            (seed_dir / "config.json").write_text(
                json.dumps({"kind": "search", "dataset": {"name": src}})
            )
            for lv in TICKET_LEVELS:
                meta = {
                    "model": {"name": "toy"},
                    "level": lv,
                    "rewind": 0,
                    "seed": seed,
                    "source": {"dataset": "ignored-config-wins"},
                    "search": {"method": "imp"},
                    "suite": {"name": "quick"},
                    "run_id": f"search-{src}",
                }
                t = ticket_from_state(
                    state,
                    toy_masks(src, seed, lv),
                    ("fc1.weight", "fc.weight"),
                    ("fc.weight", "fc.bias"),
                    meta,
                )
                save_ticket(t, seed_dir / f"level_{lv}" / "ticket.ticket")
    return root


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results") / "quick"
    write_records(root, make_records())
    write_tickets(root)
    return root


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sources, seeds and levels: enough for every figure kind, quick to render."""
    root = tmp_path_factory.mktemp("small") / "quick"
    write_records(root, make_records(seeds=(0, 1), sources=TARGETS, levels=(0, 2)))
    write_tickets(root, sources=TARGETS)
    return root


@pytest.fixture(scope="module")
def df(suite_dir: Path) -> pd.DataFrame:
    return load_results(suite_dir)


@pytest.fixture(scope="module")
def histories(suite_dir: Path) -> pd.DataFrame:
    return load_histories(suite_dir)


@pytest.fixture(scope="module")
def tickets(suite_dir: Path) -> pd.DataFrame:
    return collect_tickets(suite_dir)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def title(fig) -> str:
    """Figure and panel titles as one line (titles are wrapped to the figure width)."""
    text = " ".join([fig.get_suptitle(), *(ax.get_title() for ax in fig.axes)])
    return " ".join(text.split())


def rgb(color) -> tuple[float, float, float]:
    return tuple(round(c, 6) for c in to_rgb(color))


# ------------------------------------------------------------------------------------------ style


def test_paper_style_is_scoped() -> None:
    before = dict(mpl.rcParams)
    with paper_style():
        assert mpl.rcParams["font.family"] == ["serif"]
        assert mpl.rcParams["font.size"] <= 9
        fig = new_figure("single", 2.0)
    assert fig.get_figwidth() == pytest.approx(3.25)
    assert dict(mpl.rcParams) == before
    assert figure_width("double") == 6.75 and figure_width(4) == 4.0
    with pytest.raises(ConfigError, match="width"):
        figure_width("triple")


def test_style_map_fixed_assignment(df: pd.DataFrame) -> None:
    sm = StyleMap.from_frame(df)
    assert sm.sources == tuple(sorted(SOURCES))
    assert sm.controls[: len(CONTROL_ORDER)] == CONTROL_ORDER
    palette = [rgb(c) for c in style_palette()]
    assert set(palette) == {rgb(c) for c in sns.color_palette("colorblind", 10)}
    assert rgb(sm.color("digits")) == palette[0]
    assert rgb(sm.color("dense")) == palette[len(SOURCES)]
    assert rgb(sm.color("random_reinit")) == palette[len(SOURCES) + 1]
    looks = {(rgb(sm.color(n)), sm.marker(n)) for n in (*SOURCES, *CONTROL_ORDER)}
    assert len(looks) == len(SOURCES) + len(CONTROL_ORDER)
    # frames of the same suite give the same map; unknown names still get a stable look
    assert StyleMap.from_frame(df.sample(frac=1.0, random_state=0)) == sm
    assert sm.look("never-seen") == sm.look("never-seen")


# ------------------------------------------------------------------------------- sparsity curve


def test_sparsity_curve_grid_and_lines(df: pd.DataFrame) -> None:
    fig = sparsity_figure(df)
    axes = fig.get_axes()
    assert len(axes) == len(OPTIMIZERS) * len(TARGETS)
    titles = {ax.get_title() for ax in axes}
    assert titles == {f"{t} ({o})" for t in TARGETS for o in OPTIMIZERS}
    for ax in axes:
        labels = [ln.get_label() for ln in ax.lines]
        # one ticket and one random_reinit line per source, plus the dense reference
        assert len(labels) == 2 * len(SOURCES) + 1 == len(set(labels))
        assert "ticket from mnist5k" in labels and "random_reinit (usps)" in labels
        assert "dense" in labels
        assert ax.get_xscale() == "log"
        left, right = ax.get_xlim()
        assert left > right
    assert "95% t-interval over n = 3 seeds" in title(fig)
    assert fig.legends and len(fig.legends[0].get_texts()) == 2 * len(SOURCES) + 1


def test_sparsity_curve_filters(df: pd.DataFrame) -> None:
    fig = sparsity_figure(df, targets="usps", optimizers=["sgd"], sources="digits")
    (ax,) = fig.get_axes()
    assert sorted(ln.get_label() for ln in ax.lines) == [
        "dense",
        "random_reinit (digits)",
        "ticket from digits",
    ]


def test_same_source_same_color_in_different_figures(
    df: pd.DataFrame, histories: pd.DataFrame, tickets: pd.DataFrame
) -> None:
    sm = StyleMap.from_frame(df)
    curve = sparsity_figure(df)
    training = training_curves_figure(histories, target="digits")
    bars = layer_density_figure(tickets)
    for source in SOURCES:
        label = f"ticket from {source}"
        c1 = {
            rgb(ln.get_color()) for ax in curve.axes for ln in ax.lines if ln.get_label() == label
        }
        c2 = {
            rgb(ln.get_color())
            for ax in training.axes
            for ln in ax.lines
            if ln.get_label() == label
        }
        (ax,) = bars.axes
        container = next(
            c for c in ax.containers if getattr(c, "get_label", lambda: "")().startswith(source)
        )
        c3 = {rgb(p.get_facecolor()) for p in container.patches}
        assert c1 == c2 == c3 == {rgb(sm.color(source))}
    # the same holds through the dispatcher, which builds its StyleMap from each kind's own frame
    via = make_figure("sparsity_curve", df)
    line = next(ln for ln in via.axes[0].lines if ln.get_label() == "ticket from usps")
    assert rgb(line.get_color()) == rgb(sm.color("usps"))


# ------------------------------------------------------------------------------------ every kind


@pytest.mark.parametrize(
    "kind", sorted(k for k in FIGURE_KINDS if k != "stability")
)  # the stability figure needs stability runs: rendered in tests/test_methods.py
def test_every_kind_renders_all_formats(kind: str, small_dir: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complete data: no warnings expected
        paths = plot(kind, small_dir, tmp_path / "fig" / kind, width="single", dpi=72)
    assert [p.suffix for p in paths] == [".png", ".pdf", ".svg"]
    for p in paths:
        assert p.read_bytes()[: len(MAGIC[p.suffix])] == MAGIC[p.suffix] and p.stat().st_size > 500
    assert not list(tmp_path.rglob("*.tmp"))


def test_plot_errors(suite_dir: Path, df: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown figure kind 'heatmap'.*sparsity_curve"):
        plot("heatmap", suite_dir, tmp_path / "x")
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        plot("sparsity_curve", suite_dir, tmp_path / "x", colour="red")
    with pytest.raises(ConfigError, match="format"):
        plot("sparsity_curve", suite_dir, tmp_path / "x", formats=("jpg",))
    with pytest.raises(ConfigError, match="no such results directory"):
        plot("sparsity_curve", tmp_path / "missing", tmp_path / "x")
    with pytest.raises(ConfigError, match="metric"):
        sparsity_figure(df, metric="accuracy")


# ------------------------------------------------------------------------------- transfer matrix


def _cell_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_transfer_matrix_own_ticket_reference(df: pd.DataFrame) -> None:
    fig = transfer_matrix_figure(df, optimizer="adam")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == sorted(SOURCES)
    assert [t.get_text() for t in ax.get_xticklabels()] == sorted(TARGETS)
    texts = _cell_texts(ax)
    assert len(texts) == len(SOURCES) * len(TARGETS)
    assert sum(t.startswith("ref") for t in texts) == 2  # digits->digits, usps->usps
    assert "level 3" in title(fig)  # lowest density every cell has
    assert "own ticket" in title(fig) and "n = 3 seeds" in title(fig)
    # ticket from mnist5k vs digits' own ticket: the synthetic digits source has a 1-point bonus
    image = ax.images[0].get_array()
    assert image[sorted(SOURCES).index("mnist5k"), 0] == pytest.approx(-1.0, abs=0.6)


def test_transfer_matrix_stars_from_comparison(df: pd.DataFrame) -> None:
    cmp = quiet(compare, df)
    # a comparison_table also holds other treatment arms ("control"); only ticket rows count
    other = cmp.assign(control="shuffle_layerwise", p_adj=1.0)
    cmp = pd.concat([other, cmp.assign(control="ticket")], ignore_index=True)
    fig = transfer_matrix_figure(df, comparison=cmp, reference="random_reinit", level=3)
    assert len(fig.axes) == len(OPTIMIZERS) + 1  # panels + colorbar
    texts = _cell_texts(fig.axes[0])
    assert all(t.split("\n")[0].startswith("+1") and "*" in t for t in texts)
    assert "adjusted p < .05" in title(fig)
    # without an explicit reference the matrix shows what the comparison tested
    fig = transfer_matrix_figure(df, comparison=cmp, level=3)
    assert "random_reinit" in title(fig) and "*" in _cell_texts(fig.axes[0])[0]
    # a comparison against another baseline gives no stars, with a warning
    with pytest.warns(UserWarning, match="no significance stars"):
        fig = transfer_matrix_figure(df, comparison=cmp, reference="dense", level=3)
    assert not any("*" in t for t in _cell_texts(fig.axes[0]))


def test_transfer_matrix_density_and_integrated(df: pd.DataFrame) -> None:
    fig = transfer_matrix_figure(df, density=0.62, optimizer="sgd", reference="random_reinit")
    assert "level 2" in title(fig)
    fig = transfer_matrix_figure(df, integrated=True, reference="random_reinit", annotate="diff")
    assert "integrated" in title(fig)
    assert all(t.startswith("+") for t in _cell_texts(fig.axes[0]))
    with pytest.raises(ConfigError, match="density"):
        transfer_matrix_figure(df, density=10)


# ---------------------------------------------------------------------------- optimizer transfer


def test_optimizer_transfer_panels(df: pd.DataFrame) -> None:
    fig = optimizer_transfer_figure(df)
    axes = fig.axes
    assert len(axes) == len(TARGETS) * len(OPTIMIZERS)
    sgd = [ax for ax in axes if ax.get_title().endswith("trained with sgd")]
    adam = [ax for ax in axes if ax.get_title().endswith("trained with adam")]
    assert len(sgd) == len(adam) == len(TARGETS)
    sgd_labels = {ln.get_label() for ln in sgd[0].lines}
    assert "ticket from digits, found with adam" in sgd_labels and "dense" in sgd_labels
    assert "ticket from digits, same optimizer" in {ln.get_label() for ln in adam[0].lines}
    assert "n = 3 seeds" in title(fig)


def test_optimizer_transfer_without_cross_runs_warns(df: pd.DataFrame) -> None:
    with pytest.warns(UserWarning, match="no cross-optimizer"):
        fig = optimizer_transfer_figure(df[df["optimizer"] == "adam"])
    assert "no cross-optimizer" in fig.axes[0].texts[0].get_text()


# -------------------------------------------------------------------------------- mask similarity


def test_jaccard_hamming_known_values() -> None:
    a = torch.tensor([True, True, False, False])
    b = torch.tensor([True, False, True, False])
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert hamming(a, b) == pytest.approx(0.5)
    assert jaccard(a, a) == 1.0 and hamming(a, a) == 0.0
    assert hamming(a, ~a) == 1.0 and jaccard(a, ~a) == 0.0
    empty = torch.zeros(3, dtype=torch.bool)
    assert jaccard(empty, empty) == 1.0
    da = {"x": a, "y": torch.ones(2, 2, dtype=torch.bool)}
    db = {"x": b, "y": torch.tensor([[True, True], [False, False]])}
    # pooled: intersections 1 + 2 over unions 3 + 4; equal bits 2 + 2 of 8
    assert jaccard(da, db) == pytest.approx(3 / 7)
    assert hamming(da, db) == pytest.approx(0.5)
    assert jaccard(np.array([True, False]), np.array([True, True])) == pytest.approx(0.5)
    assert expected_random("jaccard", 0.5, 0.5) == pytest.approx(1 / 3)
    assert expected_random("hamming", 0.5, 0.5) == pytest.approx(0.5)
    with pytest.raises(TicketError, match="shape"):
        jaccard(a, torch.ones(5, dtype=torch.bool))
    with pytest.raises(TicketError, match="bool"):
        hamming(a.float(), b.float())
    with pytest.raises(TicketError, match="only one of"):
        jaccard(da, {"x": b})


def test_collect_tickets(tickets: pd.DataFrame) -> None:
    assert list(tickets.columns[:6]) == ["path", "run_id", "source", "seed", "level", "density"]
    assert len(tickets) == len(SOURCES) * len(TICKET_SEEDS) * len(TICKET_LEVELS)
    assert set(tickets["source"]) == set(SOURCES)  # from config.json, not the ticket meta
    assert set(tickets["seed"]) == set(TICKET_SEEDS)
    assert set(tickets["level"]) == set(TICKET_LEVELS)
    assert (tickets.loc[tickets["level"] == 0, "density"] == 1.0).all()
    assert set(tickets["run_id"]) == {f"search-{s}" for s in SOURCES}
    row = tickets.iloc[-1]
    masks = toy_masks(row["source"], int(row["seed"]), int(row["level"]))
    kept = sum(int(m.sum()) for m in masks.values())
    assert row["density"] == pytest.approx(kept / 66)
    assert set(row["layer_density"]) == {"fc1.weight", "fc.weight"}


def test_overlap_matrix(tickets: pd.DataFrame) -> None:
    deep = tickets[tickets["level"] == 2]
    mat = overlap_matrix(deep, "jaccard")
    labels = [f"{s}/{seed}" for s in sorted(SOURCES) for seed in TICKET_SEEDS]
    assert list(mat.index) == list(mat.columns) == labels
    np.testing.assert_allclose(np.diag(mat), 1.0)
    np.testing.assert_allclose(mat.to_numpy(), mat.to_numpy().T)
    a = toy_masks("digits", 0, 2)
    b = toy_masks("usps", 1, 2)
    assert mat.loc["digits/0", "usps/1"] == pytest.approx(jaccard(a, b))
    ham = overlap_matrix(deep, "hamming", layer="fc.weight")
    assert ham.loc["digits/0", "usps/1"] == pytest.approx(hamming(a["fc.weight"], b["fc.weight"]))
    np.testing.assert_allclose(np.diag(ham), 0.0)
    pairs = pair_table({"a": a, "b": b}, "jaccard")
    assert set(pairs["layer"]) == {"fc1.weight", "fc.weight", OVERALL}
    assert len(pairs) == 3 * 3  # (a,a), (a,b), (b,b) x (2 layers + pooled)
    with pytest.raises(ConfigError, match="metric"):
        overlap_matrix(deep, "cosine")
    with pytest.raises(ConfigError, match="layer"):
        overlap_matrix(deep, "jaccard", layer="conv.weight")


def test_overlap_skips_incompatible_layers() -> None:
    a = {
        "fc1.weight": torch.ones(4, dtype=torch.bool),
        "fc.weight": torch.ones(3, dtype=torch.bool),
    }
    b = {
        "fc1.weight": torch.ones(4, dtype=torch.bool),
        "fc.weight": torch.ones(5, dtype=torch.bool),
    }
    with pytest.warns(UserWarning, match="fc.weight"):
        mat = overlap_matrix({"a": a, "b": b}, "hamming")
    assert mat.loc["a", "b"] == 0.0  # pooled over the shared, same-shape layer only


def test_mask_overlap_figure(tickets: pd.DataFrame) -> None:
    fig = mask_overlap_figure(tickets)
    heat, bars = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in heat.get_yticklabels()]
    assert labels == [f"{s}/{seed}" for s in sorted(SOURCES) for seed in TICKET_SEEDS]
    sm = StyleMap.from_frame(tickets)
    assert rgb(heat.get_yticklabels()[0].get_color()) == rgb(sm.color("digits"))
    assert [t.get_text() for t in bars.get_xticklabels()] == ["fc1", "fc", OVERALL]
    assert "level 2" in title(fig) and "n = 2 seeds per source" in title(fig)
    fig = mask_overlap_figure(tickets, metric="hamming", level=1)
    assert "Hamming" in title(fig)


# ------------------------------------------------------------------------------- missing data


def test_single_seed_warns_not_crashes(tmp_path: Path) -> None:
    recs = make_records(seeds=(0,), sources=TARGETS, levels=(0, 2))
    one = load_results(write_records(tmp_path / "one", recs))
    with pytest.warns(UserWarning, match="one seed"):
        fig = sparsity_figure(one)
    assert "n = 1 seed (no interval)" in title(fig)
    assert all(not ax.collections for ax in fig.axes)  # no bands
    with pytest.warns(UserWarning, match="one seed"):
        transfer_matrix_figure(one, reference="random_reinit")
    with pytest.warns(UserWarning, match="one seed"):
        training_curves_figure(load_histories(tmp_path / "one"))
    one_tickets = collect_tickets(write_tickets(tmp_path / "t1", seeds=(0,)))
    with pytest.warns(UserWarning, match="one seed per source"):
        mask_overlap_figure(one_tickets)
    with pytest.warns(UserWarning, match="one seed"):
        layer_density_figure(one_tickets)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pytest.warns still sees them all
def test_missing_baseline_warns_not_crashes(df: pd.DataFrame, tmp_path: Path) -> None:
    no_ctrl = df[~df["control"].isin(["random_reinit", "dense"])]
    with pytest.warns(UserWarning, match="no control runs"):
        fig = sparsity_figure(no_ctrl)
    assert all(len(ax.lines) == len(SOURCES) for ax in fig.axes)
    with pytest.warns(UserWarning, match="no dense reference"):
        sparsity_figure(df[df["control"] != "dense"])
    with pytest.warns(UserWarning, match="no random_reinit"):
        fig = transfer_matrix_figure(no_ctrl, reference="random_reinit")
    assert "no random_reinit runs" in title(fig)
    off_diagonal = df[~((df["control"] == "ticket") & (df["source"] == df["target"]))]
    with pytest.warns(UserWarning, match="no own_ticket reference"):
        transfer_matrix_figure(off_diagonal, reference="own_ticket")


def test_no_data_gives_message_figures(tmp_path: Path) -> None:
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    for kind in sorted(FIGURE_KINDS):
        with pytest.warns(UserWarning, match=kind):
            paths = plot(kind, empty_dir, tmp_path / kind, formats=("png",))
        assert paths[0].stat().st_size > 0
    one = collect_tickets(write_tickets(tmp_path / "t", sources=("digits",), seeds=(0,)))
    with pytest.warns(UserWarning, match="fewer than two"):
        mask_overlap_figure(one)
    with pytest.warns(UserWarning, match="no histories match"):
        training_curves_figure(_histories_one(), target="nowhere")


def _histories_one() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": ["transfer"],
            "control": ["ticket"],
            "source": ["digits"],
            "target": ["usps"],
            "optimizer": ["adam"],
            "level": [1],
            "seed": [0],
            "iteration": [10],
            "test_accuracy": [0.5],
        }
    )


def test_training_curves_filters(histories: pd.DataFrame) -> None:
    fig = training_curves_figure(
        histories, target="usps", optimizer="sgd", control=["ticket", "dense"], level=[1, 3]
    )
    (ax,) = fig.axes
    labels = {ln.get_label() for ln in ax.lines}
    assert "ticket from digits, level 1" in labels and "ticket from digits, level 3" in labels
    assert "dense" in labels and len(labels) == 2 * len(SOURCES) + 1
    assert ax.get_xlabel() == "iteration"
    assert "n = 3 seeds" in title(fig)
    search = training_curves_figure(histories, kind="search")
    assert any("IMP search on" in ln.get_label() for ax in search.axes for ln in ax.lines)
