"""Mini-batch SVI: the plates scale each part to its whole set, so the ELBO and its gradient are unbiased.

The check is statistical: the full-batch loss and the average of the
mini-batch losses over a partition of the alloys are both Monte Carlo
estimates (z and u are sampled), so their means over many draws are compared
within a few standard errors. The same comparison without the scaling fails
by a wide margin, which shows that the test can fail.
"""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from pyro_hea import ModelConfig, PhaseModel, TrainConfig
from pyro_hea.infer.training import AUTO_BATCH_SIZE, FULL_BATCH_LIMIT, make_elbo
from pyro_hea.model.tensors import AlloyTensors, CandidateTensors

DRAWS = 60
PARTS = 3


@pytest.fixture(scope="module")
def setup(pei):
    sub = pei.sample(60, random_state=5).reset_index(drop=True)
    split = pd_split(sub)
    # no random-partition term: its leaf-weight gradients on labelled rows carry no Monte Carlo noise,
    # so their z-scores measure float rounding, not bias; the plates' scaling is the same without it
    config = ModelConfig(hidden=[8], latent_dim=2, descriptor_hidden=[8], classifier_trees=0)
    model = PhaseModel.build(sub, split, config, TrainConfig(steps=1))
    t = model.tensors(sub)
    labelled = t[np.flatnonzero((split == "labelled").to_numpy())]
    unlabelled = t[np.flatnonzero((split == "unlabelled").to_numpy())].hide_labels()
    model.vae.set_label_weight(len(labelled) + len(unlabelled), len(labelled))
    return model, labelled, unlabelled


def pd_split(sub):
    import pandas as pd

    # 30 labelled and 30 unlabelled alloys: each splits into 3 batches of 10
    return pd.Series(np.where(np.arange(len(sub)) % 2 == 0, "labelled", "unlabelled"), index=sub.index)


def _loss_and_grad(vae, labelled, unlabelled):
    """The loss and its gradient (flattened over the classifier, encoder and decoder) of one MC draw."""
    params = [p for p in vae.parameters() if p.requires_grad]
    with pyro.get_param_store().scope():
        loss = make_elbo().differentiable_loss(vae.model, vae.guide, labelled, unlabelled)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    flat = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])
    return float(loss.detach()), flat


def _draws(vae, batches, scaled: bool):
    """DRAWS estimates of the loss and gradient: the mean over ``batches`` of each batch's estimate."""
    losses, grads = [], []
    for draw in range(DRAWS):
        pyro.set_rng_seed(draw)
        parts = []
        for batch_l, batch_u in batches:
            if scaled and len(batches) > 1:
                batch_l, batch_u = batch_l.as_minibatch(len(batch_l) * len(batches)), \
                    batch_u.as_minibatch(len(batch_u) * len(batches))
            parts.append(_loss_and_grad(vae, batch_l, batch_u))
        losses.append(np.mean([p[0] for p in parts]))
        grads.append(torch.stack([p[1] for p in parts]).mean(0))
    return np.array(losses), torch.stack(grads).numpy()


def _z(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """z-scores of the difference of the means of two samples (along axis 0)."""
    se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
    return (a.mean(0) - b.mean(0)) / np.maximum(se, 1e-12)


@pytest.fixture(scope="module")
def estimates(setup):
    model, labelled, unlabelled = setup
    order_l, order_u = np.random.default_rng(0).permutation(len(labelled)), np.random.default_rng(1).permutation(
        len(unlabelled))
    batches = [(labelled[torch.as_tensor(i)], unlabelled[torch.as_tensor(j)])
               for i, j in zip(np.array_split(order_l, PARTS), np.array_split(order_u, PARTS))]
    full = _draws(model.vae, [(labelled, unlabelled)], scaled=True)
    mini = _draws(model.vae, batches, scaled=True)
    unscaled = _draws(model.vae, batches, scaled=False)
    return full, mini, unscaled


def test_mini_batch_loss_is_unbiased(estimates):
    (full, _), (mini, _), (unscaled, _) = estimates
    assert abs(_z(full, mini)) < 4.0, (full.mean(), mini.mean())
    # power: without the N / n scaling the mean batch loss is a third of the full loss
    assert abs(_z(full, unscaled)) > 20.0
    np.testing.assert_allclose(unscaled.mean() * PARTS, full.mean(), rtol=0.05)


def test_mini_batch_gradient_is_unbiased(estimates):
    (_, full), (_, mini), (_, unscaled) = estimates
    # project onto a few fixed random directions (single coordinates are too noisy to test one by one)
    directions = np.random.default_rng(2).standard_normal((full.shape[1], 5))
    z = _z(full @ directions, mini @ directions)
    assert np.all(np.abs(z) < 4.5), z
    assert np.max(np.abs(_z(full @ directions, unscaled @ directions))) > 10.0
    # coordinate by coordinate: hardly any z-score is large, while without the scaling many are
    moving = full.std(0) > 0
    assert moving.sum() > 100
    # a few per cent pass |z| > 4 by chance: 60 draws of heavy-tailed gradients give t-like, not normal, z-scores
    # (CI measured 2.0 %); a biased estimator gives tens of per cent, as the unscaled one shows
    assert np.mean(np.abs(_z(full[:, moving], mini[:, moving])) > 4.0) < 0.05
    assert np.mean(np.abs(_z(full[:, moving], unscaled[:, moving])) > 4.0) > 0.2


class CountingPool:
    """A pool of n copies of two alloys that records the largest batch asked for."""

    def __init__(self, n, vocabulary):
        self.n, self.vocabulary, self.largest, self.calls = n, tuple(vocabulary), 0, 0
        self.rows = np.zeros((2, len(vocabulary)))
        self.rows[0, [vocabulary.index(e) for e in ("Co", "Cr", "Fe", "Ni")]] = 25.0
        self.rows[1, [vocabulary.index(e) for e in ("Nb", "Mo", "Ta", "W")]] = 25.0

    def __len__(self):
        return self.n

    def take(self, idx):
        assert idx.min() >= 0 and idx.max() < self.n
        self.largest, self.calls = max(self.largest, len(idx)), self.calls + 1
        return self.rows[idx % 2]


def test_batch_size_policy():
    from pyro_hea import PhaseVAE, Trainer

    trainer = Trainer(PhaseVAE(["Fe", "Ni"]))
    assert trainer.batch_size(FULL_BATCH_LIMIT) is None
    assert trainer.batch_size(FULL_BATCH_LIMIT + 1) == AUTO_BATCH_SIZE
    assert Trainer(PhaseVAE(["Fe", "Ni"]), TrainConfig(batch_size=64)).batch_size(50) is None


def test_a_million_candidates_are_streamed(pei):
    sub = pei.sample(120, random_state=3).reset_index(drop=True)
    from pyro_hea import paper_split

    split = paper_split(sub, seed=0)
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[8], latent_dim=2, descriptor_hidden=[8]),
                             TrainConfig(steps=4, eval_every=2, batch_size=256))
    pool = CountingPool(10**6, model.vocabulary)
    model.train(sub, split, progress=False, candidates=pool)
    assert model.trainer.state.step == 4
    assert 0 < pool.largest <= 256 and pool.calls == 4
    # w = alpha * N_train / N_labelled counts the pool in N_train
    n_l = int((split == "labelled").sum())
    n_train = int(split.isin(["labelled", "unlabelled"]).sum()) + 10**6
    assert float(model.vae.label_weight) == pytest.approx(model.vae.config.alpha * n_train / n_l)


def test_small_pool_joins_the_full_batch(pei):
    sub = pei.sample(120, random_state=3).reset_index(drop=True)
    from pyro_hea import paper_split

    split = paper_split(sub, seed=0)
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[8], latent_dim=2, descriptor_hidden=[8]),
                             TrainConfig(steps=3, eval_every=3))
    pool = CountingPool(50, model.vocabulary)
    model.train(sub, split, progress=False, candidates=pool)
    assert pool.calls == 1 and pool.largest == 50


def test_candidates_over_another_vocabulary_are_refused(pei):
    from pyro_hea.data.splits import DescriptorScaler
    from pyro_hea.errors import PyroHeaError

    pool = CountingPool(3, ["Co", "Cr", "Fe", "Ni", "Nb", "Mo", "Ta", "W"])
    with pytest.raises(PyroHeaError, match="vocabulary"):
        CandidateTensors(pool, ["Fe", "Ni"], DescriptorScaler(np.zeros(8), np.ones(8)))


def test_minibatch_population_cannot_be_smaller_than_the_batch(setup):
    from pyro_hea.errors import PyroHeaError

    _, labelled, _ = setup
    with pytest.raises(PyroHeaError, match="cannot stand for"):
        labelled.as_minibatch(len(labelled) - 1)
    assert labelled.as_minibatch(len(labelled) * 2).size == 2 * len(labelled)
    assert isinstance(AlloyTensors.concat([labelled, labelled]), AlloyTensors)
