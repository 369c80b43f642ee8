"""Calibration: methods differ sensibly, stratified draws, too-small sets, recipes, cache keys."""

import numpy as np
import pytest
import torch

from edgecn.errors import EdgecnError
from edgecn.quantize.calibration import (CalibrationRecipe, RangeCache, cache_key, check_size, from_dataset,
                                         from_folder, load_recipe, recipes_dir, stratified_indices)
from edgecn.quantize.ranges import METHODS, activation_range


def heavy_tailed(n=200_000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.laplace(0, 1, n)
    x[:4] = 40.0  # a few outliers far out (0.002%, inside the clipped tail)
    return x


def test_methods_differ_sensibly():
    x = heavy_tailed()
    r = {m: activation_range(x, x.min(), x.max(), m) for m in METHODS}
    assert r["minmax"] == (x.min(), x.max())
    # percentile and entropy clip the outliers; min-max keeps them
    assert r["percentile"][1] < 0.5 * r["minmax"][1]
    assert r["entropy"][1] < 0.5 * r["minmax"][1]
    assert r["percentile"] != r["entropy"]
    for lo, hi in r.values():
        assert lo <= 0 <= hi


def test_ranges_always_contain_zero():
    x = np.linspace(1.0, 5.0, 1000)  # post-ReLU-like, strictly positive
    for m in METHODS:
        lo, hi = activation_range(x, 1.0, 5.0, m)
        assert lo == 0.0 and hi > 1.0


def test_entropy_keeps_range_of_uniform_data():
    x = np.random.default_rng(1).uniform(-1, 1, 100_000)
    lo, hi = activation_range(x, -1, 1, "entropy")
    assert hi > 0.9 and lo < -0.9


def test_stratified_draw_covers_every_class_and_is_deterministic():
    y = np.repeat(np.arange(10), [50, 5, 50, 50, 3, 50, 50, 50, 50, 50])
    idx = stratified_indices(y, 40, seed=0)
    assert len(idx) == 40 and len(set(idx)) == 40
    assert set(y[idx]) == set(range(10))
    assert np.array_equal(idx, stratified_indices(y, 40, seed=0))
    assert not np.array_equal(idx, stratified_indices(y, 40, seed=1))


def test_too_small_or_empty_calibration_set():
    x = torch.randn(100, 3, 8, 8)
    y = torch.arange(100) % 10
    ds = torch.utils.data.TensorDataset(x, y)
    recipe = CalibrationRecipe(size=20, min_size=16)
    assert from_dataset(ds, recipe).shape == (20, 3, 8, 8)
    with pytest.raises(EdgecnError, match="has 8 image.*fewer than the 16"):
        from_dataset(ds, recipe, size=8)
    empty = torch.utils.data.TensorDataset(x[:0], y[:0])
    with pytest.raises(EdgecnError, match="has 0 image"):
        from_dataset(empty, recipe)
    with pytest.raises(EdgecnError):
        check_size(torch.zeros(0), 1, "nothing")


def test_calibration_from_folder(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 60 * i, np.uint8)).save(tmp_path / f"{i}.png")
    norm = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    x = from_folder(tmp_path, 8, 3, norm, min_size=3)
    assert x.shape == (3, 3, 8, 8)
    assert torch.allclose(x[0], torch.full((3, 8, 8), -2.0))
    with pytest.raises(EdgecnError, match="fewer than the 4"):
        from_folder(tmp_path, 8, 3, norm, min_size=4)
    with pytest.raises(EdgecnError, match="does not exist"):
        from_folder(tmp_path / "missing", 8, 3, norm, min_size=1)


def test_every_shipped_recipe_loads():
    files = sorted(recipes_dir().glob("*.toml"))
    assert files
    methods = {load_recipe(p.stem).method for p in files}
    assert methods == set(METHODS)


def test_bad_recipe_names_the_field(tmp_path):
    (tmp_path / "r.toml").write_text('method = "median"\n')
    with pytest.raises(EdgecnError, match="unknown calibration method 'median'"):
        load_recipe(str(tmp_path / "r.toml"))
    (tmp_path / "r.toml").write_text('size = "big"\n')
    with pytest.raises(EdgecnError, match="field 'size' must be a int"):
        load_recipe(str(tmp_path / "r.toml"))
    (tmp_path / "r.toml").write_text('speed = 1\n')
    with pytest.raises(EdgecnError, match="unknown key 'speed'"):
        load_recipe(str(tmp_path / "r.toml"))
    with pytest.raises(EdgecnError, match="not found"):
        load_recipe("no-such-recipe")


def test_cache_key_depends_on_weights_data_and_method(tmp_path):
    m = torch.nn.Conv2d(3, 4, 1)
    x = torch.randn(4, 3, 8, 8)
    k = cache_key(m, x, "minmax")
    assert k == cache_key(m, x.clone(), "minmax")
    assert k != cache_key(m, x, "entropy")
    assert k != cache_key(m, x + 1, "minmax")
    with torch.no_grad():
        m.weight[0, 0] += 1
    assert k != cache_key(m, x, "minmax")
    cache = RangeCache(k, tmp_path)
    assert cache.load() is None
    cache.store({"a": [-1.0, 2.0]})
    assert RangeCache(k, tmp_path).load() == {"a": (-1.0, 2.0)}
