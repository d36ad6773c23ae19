"""The classifier's tree partitions: the random one, the forest one, and the kept leaves of a training tensor."""

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier

from pyro_hea import ModelConfig, PhaseModel, paper_split
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.checkpoint import load_checkpoint
from pyro_hea.model.partition import ForestPartitionEncoding, RandomPartitionEncoding


@pytest.fixture(scope="module")
def sub(pei):
    """A 240-alloy subset of Pei 2020."""
    return pei.sample(240, random_state=0).reset_index(drop=True)


def test_leaf_sum_matches_the_embedding_lookup_bit_for_bit_and_keeps_leaves_only_for_an_unchanged_tensor():
    torch.manual_seed(0)
    part = RandomPartitionEncoding(n_features=4, n_trees=50, depth=3)
    part.fit_thresholds(torch.randn(200, 4))
    f, grad_out = torch.randn(300, 4), torch.randn(300, 2)
    weight = torch.nn.Parameter(torch.randn(part.n_leaves, 2))
    plain = torch.nn.functional.embedding(part(f), weight).sum(-2)
    (expected_grad,) = torch.autograd.grad((plain * grad_out).sum(), weight)
    out = part.leaf_sum(f, weight)
    (grad,) = torch.autograd.grad((out * grad_out).sum(), weight)
    assert torch.equal(out, plain) and torch.equal(grad, expected_grad)
    assert len(part._cache) == 1
    kept = part._cache[0][4]
    part.leaf_sum(f, weight)
    assert len(part._cache) == 1 and part._cache[0][4] is kept  # the same tensor: the leaves are reused
    f.add_(1.0)  # changed in place: computed again, and right
    assert torch.equal(part.leaf_sum(f, weight), torch.nn.functional.embedding(part(f), weight).sum(-2))
    assert part._cache[0][4] is not kept
    part.fit_thresholds(torch.randn(200, 4) + 3.0)  # new splits: nothing kept
    assert part._cache == []
    with torch.no_grad():  # prediction keeps nothing
        part.leaf_sum(torch.randn(10, 4), weight)
    part.eval()
    part.leaf_sum(torch.randn(10, 4), weight)
    assert part._cache == []
    part.train()
    for _ in range(6):
        part.leaf_sum(torch.randn(10, 4), weight)
    assert len(part._cache) == 4  # at most four tensors are kept


def test_forest_partition_groups_the_alloys_as_the_scikit_learn_forest_does():
    torch.manual_seed(0)
    f = torch.randn(120, 5)
    labels = ((f[:, 0] + 0.5 * f[:, 3]) > 0).long()
    labels[::3] = -1  # unlabelled rows are not read
    part = ForestPartitionEncoding(n_features=5, n_trees=20, depth=3)
    assert torch.equal(part(f), part.offsets.expand(120, 20))  # before the fit: leaf 0 of every tree
    part.fit_forest(f, labels, seed=7)
    leaves = part(f)
    rows = (labels >= 0).numpy()
    forest = RandomForestClassifier(20, max_depth=3, max_features="sqrt", random_state=7, n_jobs=1)
    nodes = forest.fit(f[rows].double().numpy(), labels[rows].numpy()).apply(f.numpy())  # (n, T) sklearn leaves
    for t in range(20):
        pairs = set(zip(nodes[:, t].tolist(), leaves[:, t].tolist()))
        assert len(pairs) == len(set(nodes[:, t].tolist())) == len(set(leaves[:, t].tolist()))  # one-to-one
    assert ((leaves >= part.offsets) & (leaves < part.offsets + 8)).all()
    changed = labels.clone()
    changed[::3] = 1 - changed[1::3][: len(changed[::3])].clamp(min=0)  # other labels on the unlabelled rows...
    changed[::3] = -1  # ...marked unlabelled again: the same forest
    again = ForestPartitionEncoding(n_features=5, n_trees=20, depth=3)
    again.fit_forest(f, changed, seed=7)
    assert torch.equal(again.thresholds, part.thresholds)
    with pytest.raises(ValueError, match="at least 2 labelled rows"):
        part.fit_forest(f, torch.full((120,), -1), seed=0)


def test_forest_partition_in_the_model_reads_only_labelled_rows_and_survives_a_checkpoint(sub, tmp_path):
    with pytest.raises(PyroHeaError, match="classifier_forest_trees"):
        ModelConfig(classifier_forest_trees=-1)
    split = paper_split(sub, seed=0)
    config = ModelConfig(hidden=[16], latent_dim=3, classifier_trees=0, classifier_forest_trees=10)
    torch.manual_seed(0)
    model = PhaseModel.build(sub, split, config)
    forest = model.vae.classifier.forest
    assert forest.n_trees == 10 and (forest.thresholds[:, 0] < 1e6).all()  # every root split is fitted
    assert not model.vae.classifier.forest_leaf_logits.weight.any()
    other = sub.copy()
    unlabelled = (split == "unlabelled").to_numpy()
    other.loc[unlabelled, "single_phase"] = 1 - other.loc[unlabelled, "single_phase"]
    torch.manual_seed(0)
    assert torch.equal(PhaseModel.build(other, split, config).vae.classifier.forest.thresholds, forest.thresholds)
    with pytest.warns(UserWarning, match="not fitted: 0 labelled training rows"):
        model.vae.fit_feature_bins(torch.randn(50, 8))  # no labels given
    model.save(tmp_path / "m.pt")
    loaded = PhaseModel.load(tmp_path / "m.pt")
    assert torch.equal(loaded.vae.classifier.forest.thresholds, forest.thresholds)
    t = model.tensors(sub)
    torch.testing.assert_close(loaded.vae.predict_proba(t), model.vae.predict_proba(t))
    assert torch.isfinite(forest.thresholds).all()  # checkpoints refuse infinite values
    assert "classifier.forest.thresholds" in load_checkpoint(tmp_path / "m.pt")["weights"]


def test_a_checkpoint_from_before_the_forest_loads_without_one(sub, tmp_path):
    import json

    from pyro_hea.infer.checkpoint import save_checkpoint

    split = paper_split(sub, seed=0)
    torch.manual_seed(0)
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=3, classifier_trees=0,
                                                     classifier_forest_trees=0))
    model.save(tmp_path / "new.pt")
    data = load_checkpoint(tmp_path / "new.pt")
    meta = json.loads(data["meta_json"])
    del meta["model_config"]["classifier_forest_trees"]  # as written before session 28
    data["meta_json"] = json.dumps(meta)
    save_checkpoint(tmp_path / "old.pt", {k: v for k, v in data.items() if k not in ("format", "format_version")})
    loaded = PhaseModel.load(tmp_path / "old.pt")
    assert loaded.vae.classifier.forest is None and loaded.vae.config.classifier_forest_trees == 0


def test_a_table_with_fewer_than_two_labels_leaves_the_forest_unfitted_and_says_so(sub):
    split = paper_split(sub, seed=0)
    unlabelled = sub.copy()
    unlabelled["single_phase"] = np.nan
    with pytest.warns(UserWarning, match="forest partition of q\\(y\\|x\\) is not fitted: 0 labelled"):
        model = PhaseModel.build(unlabelled, split, ModelConfig(hidden=[16], latent_dim=3, classifier_forest_trees=5))
    assert (model.vae.classifier.forest.thresholds == model.vae.classifier.forest.thresholds.max()).all()


def test_leaves_outside_training_are_computed_in_blocks_with_the_same_result(monkeypatch):
    import pyro_hea.model.partition as partition

    torch.manual_seed(0)
    f, labels = torch.randn(50, 4), torch.randint(0, 2, (50,))
    random_part = RandomPartitionEncoding(n_features=4, n_trees=30, depth=3)
    random_part.fit_thresholds(f)
    forest_part = ForestPartitionEncoding(n_features=4, n_trees=30, depth=3)
    forest_part.fit_forest(f, labels, seed=0)
    weight = torch.randn(random_part.n_leaves, 2)
    whole = [(p(f), p.leaf_sum(f, weight)) for p in (random_part, forest_part)]
    monkeypatch.setattr(partition, "BLOCK_ROWS", 7)  # 50 rows: 8 blocks, the last one short
    for part, (leaves, sums) in zip((random_part, forest_part), whole):
        part.eval()
        assert torch.equal(part(f), leaves) and torch.equal(part.leaf_sum(f, weight), sums)
        assert part(f.reshape(5, 10, 4)).shape == (5, 10, 30)  # leading dims kept
        assert part(f[:0]).shape == (0, 30) and part.leaf_sum(f[:0], weight).shape == (0, 2)


@pytest.mark.parametrize("depth", [3, 4, 6])  # 6: past the lookup table, the forest walks its trees
def test_leaves_found_per_descriptor_equal_a_split_by_split_comparison_ties_included(depth):
    torch.manual_seed(depth)
    train = torch.randn(200, 5)
    random_part = RandomPartitionEncoding(n_features=5, n_trees=40, depth=depth)
    random_part.fit_thresholds(train)
    forest_part = ForestPartitionEncoding(n_features=5, n_trees=20, depth=depth)
    forest_part.fit_forest(train, (train[:, 0] + train[:, 1] > 0).long(), seed=0)
    # rows of fresh draws, the training rows, and rows sitting exactly on a threshold
    f = torch.cat([torch.randn(500, 5), train, random_part.thresholds[:, :1].expand(-1, 5),
                   forest_part.thresholds[:, :1].clamp(max=5.0).expand(-1, 5)])
    right = f.index_select(-1, random_part.split_feature.reshape(-1)) > random_part.thresholds.reshape(-1)
    by_split = (right.view(len(f), 40, depth).long() * 2 ** torch.arange(depth)).sum(-1) + random_part.offsets
    assert torch.equal(random_part(f), by_split)
    node = torch.zeros(len(f), 20, dtype=torch.long)
    for _ in range(depth):
        go_right = f.gather(1, forest_part.split_feature[forest_part.trees, node]) > \
            forest_part.thresholds[forest_part.trees, node]
        node = 2 * node + 1 + go_right.long()
    assert torch.equal(forest_part(f), node - (2 ** depth - 1) + forest_part.offsets)
    random_part.fit_thresholds(train + 1.0)  # refitted: the per-descriptor tables follow
    right = f.index_select(-1, random_part.split_feature.reshape(-1)) > random_part.thresholds.reshape(-1)
    assert torch.equal(random_part(f), (right.view(len(f), 40, depth).long() * 2 ** torch.arange(depth)).sum(-1)
                       + random_part.offsets)
