"""The shipped priors, and a user's own prior plugged in without touching the model."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from torch import nn

from pyro_hea import ModelConfig, PhaseModel, PhaseVAE, paper_split
from pyro_hea.infer.checkpoint import CheckpointError
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.data.families import FAMILIES, family_of
from pyro_hea.model.priors import (
    Y_PRIORS,
    Z_PRIORS,
    AlloyFamilyMixture,
    DescriptorAligned,
    EmpiricalRulesPhase,
    LatentPrior,
    PhasePrior,
    StandardNormal,
    UniformPhase,
    make_prior,
    prior_name,
)
from pyro_hea.model.tensors import AlloyTensors
from pyro_hea.infer.training import make_elbo



@pytest.fixture(scope="module")
def sub(pei):
    return pei.sample(200, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def shell(sub):
    """An untrained K=2 model: its vocabulary, scaler and tensors of ``sub``."""
    model = PhaseModel.build(sub, paper_split(sub, seed=0), ModelConfig(hidden=[8]))
    return model, model.tensors(sub)


def _bound(prior, vocabulary, k=2, latent_dim=3):
    prior.bind(vocabulary, k, latent_dim)
    return prior


def _descriptor_rows(rows: list[dict]) -> AlloyTensors:
    """Alloys with hand-set physical descriptors (the rule prior reads only those)."""
    raw = torch.tensor([[r[name] for name in DESCRIPTOR_NAMES] for r in rows], dtype=torch.float32)
    n = len(rows)
    return AlloyTensors(x=torch.full((n, 1), 100.0), descriptors=raw, features=torch.zeros(n, 8),
                        y=torch.full((n,), -1))


# ------------------------------------------------------------------------ z priors
def test_standard_normal(shell):
    model, t = shell
    d = _bound(StandardNormal(), model.vocabulary)(t)
    assert d.batch_shape == (len(t),) and d.event_shape == (3,)
    assert torch.equal(d.mean, torch.zeros(len(t), 3)) and torch.equal(d.stddev, torch.ones(len(t), 3))


def test_family_mixture_centres_each_alloy_on_its_family(sub, shell):
    model, t = shell
    prior = _bound(AlloyFamilyMixture(radius=2.5, scale=0.4), model.vocabulary, latent_dim=3)
    d = prior(t)
    assert d.event_shape == (3,) and torch.allclose(d.stddev, torch.full((len(t), 3), 0.4))
    # The means sit on a circle of the given radius, one per family, all distinct.
    means = prior.means
    assert means.shape == (len(FAMILIES), 3)
    torch.testing.assert_close(means[:, :2].norm(dim=1), torch.full((len(FAMILIES),), 2.5))
    assert torch.equal(means[:, 2], torch.zeros(len(FAMILIES)))
    assert len({tuple(np.round(m.tolist(), 4)) for m in means}) == len(FAMILIES)
    # The vectorized family assignment agrees with the documented rule, alloy by alloy.
    expected = torch.stack([means[FAMILIES.index(family_of(c))] for c in sub["composition"]])
    torch.testing.assert_close(d.mean, expected)
    seen = {family_of(c) for c in sub["composition"]}
    assert {"3d-transition", "refractory"} <= seen


def test_family_mixture_known_alloys(shell):
    model, _ = shell
    prior = _bound(AlloyFamilyMixture(radius=2.0), model.vocabulary, latent_dim=2)
    loc = prior(model.tensors(["CoCrFeMnNi", "NbMoTaW"])).mean
    torch.testing.assert_close(loc[0], prior.means[FAMILIES.index("3d-transition")])
    torch.testing.assert_close(loc[1], prior.means[FAMILIES.index("refractory")])
    torch.testing.assert_close(loc[0], torch.tensor([2.0, 0.0]))  # family 0 at angle 0


@pytest.mark.parametrize("kwargs", [{"radius": -1.0}, {"scale": 0.0}])
def test_family_mixture_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(PyroHeaError, match="AlloyFamilyMixture"):
        AlloyFamilyMixture(**kwargs)


def test_descriptor_aligned_means_are_the_chosen_standardized_descriptors(shell):
    model, t = shell
    prior = _bound(DescriptorAligned(("VEC", "delta"), scale=0.3), model.vocabulary, latent_dim=3)
    d = prior(t)
    vec, delta = DESCRIPTOR_NAMES.index("VEC"), DESCRIPTOR_NAMES.index("delta")
    torch.testing.assert_close(d.mean[:, 0], t.features[:, vec])
    torch.testing.assert_close(d.mean[:, 1], t.features[:, delta])
    assert torch.equal(d.mean[:, 2], torch.zeros(len(t)))
    torch.testing.assert_close(d.stddev, torch.full((len(t), 3), 0.3))


def test_descriptor_aligned_rejects_bad_settings():
    with pytest.raises(PyroHeaError, match="unknown descriptor"):
        DescriptorAligned(("VEC", "colour"))
    with pytest.raises(PyroHeaError, match="scale"):
        DescriptorAligned(scale=0.0)
    with pytest.raises(PyroHeaError, match="3 descriptors but the latent has 2 axes"):
        PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2), prior_z=DescriptorAligned(("VEC", "delta", "Tm")))


# ------------------------------------------------------------------------ y priors
@pytest.mark.parametrize("k", [2, 4])
def test_uniform_phase(shell, k):
    model, t = shell
    d = _bound(UniformPhase(), model.vocabulary, k=k)(t)
    assert d.batch_shape == (len(t),) and d.has_enumerate_support
    torch.testing.assert_close(d.probs, torch.full((len(t), k), 1.0 / k))


def test_rule_thresholds_are_the_published_ones():
    p = EmpiricalRulesPhase()
    assert (p.omega_threshold, p.delta_threshold) == (1.1, 6.6)  # Yang & Zhang 2012
    assert (p.fcc_vec, p.bcc_vec) == (8.0, 6.87)  # Guo et al. 2011


# Tm in K, dS_mix in J/(mol K), dH_mix in kJ/mol: Omega = Tm dS / (1000 |dH|).
_BASE = {"k": 150.0, "Vm": 8.0, "Tm": 2000.0, "VEC": 9.0, "delta": 3.0, "delta_chi": 0.1,
         "dS_mix": 13.38, "dH_mix": -5.0}  # Omega = 5.35
_CASES = [
    ({}, 1, 1),                                 # solid solution, VEC >= 8 -> FCC
    ({"VEC": 8.0}, 1, 1),                       # boundary: VEC = 8.0 is FCC
    ({"VEC": 5.0}, 1, 0),                       # VEC < 6.87 -> BCC
    ({"VEC": 7.5}, 1, 3),                       # in between: mixed, counted as multi
    ({"delta": 6.6}, 1, 1),                     # delta <= 6.6 % still solid solution
    ({"delta": 6.7}, 0, 3),                     # too large a size mismatch
    ({"dH_mix": -30.0}, 0, 3),                  # Omega = 0.89 < 1.1
    ({"dH_mix": -24.0}, 1, 1),                  # Omega = 1.115 >= 1.1
    ({"dH_mix": 0.0}, 1, 1),                    # Omega infinite
]


@pytest.mark.parametrize("k", [2, 4])
def test_rule_verdicts_by_hand(k):
    prior = EmpiricalRulesPhase(confidence=0.6)
    prior.bind(["Fe"], k, 2)
    alloys = _descriptor_rows([{**_BASE, **change} for change, _, _ in _CASES])
    expected = np.array([two if k == 2 else four for _, two, four in _CASES])
    verdict = prior.verdict(alloys.descriptors)
    np.testing.assert_array_equal(verdict.argmax(-1).numpy(), expected)
    probs = prior(alloys).probs.numpy()
    np.testing.assert_allclose(probs, 0.4 / k + 0.6 * np.eye(k)[expected], atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_rule_verdicts_on_the_table_use_its_units(sub, shell):
    model, t = shell
    prior = _bound(EmpiricalRulesPhase(confidence=0.5), model.vocabulary)
    omega = sub["Tm"] * sub["dS_mix"] / (1000 * sub["dH_mix"].abs())
    solid = ((omega >= 1.1) & (sub["delta"] <= 6.6)).to_numpy()
    got = prior.verdict(t.descriptors).argmax(-1).numpy().astype(bool)
    np.testing.assert_array_equal(got, solid)
    assert 0 < solid.mean() < 1


def test_rule_prior_with_zero_confidence_is_uniform(shell):
    model, t = shell
    probs = _bound(EmpiricalRulesPhase(confidence=0.0), model.vocabulary, k=4)(t).probs
    torch.testing.assert_close(probs, torch.full((len(t), 4), 0.25))


def test_rule_prior_rejects_bad_settings():
    with pytest.raises(PyroHeaError, match="confidence"):
        EmpiricalRulesPhase(confidence=1.0)
    with pytest.raises(PyroHeaError, match="K=2 or K=4"):
        EmpiricalRulesPhase().bind(["Fe"], 3, 2)


# ---------------------------------------------------------------------- registry
def test_registry_builds_every_shipped_prior_by_name():
    for table, kind in ((Z_PRIORS, "z"), (Y_PRIORS, "y")):
        for name, cls in table.items():
            prior = make_prior(kind, name)
            assert type(prior) is cls and prior_name(prior) == name
    assert make_prior("z", "family-mixture", radius=3.0).radius == 3.0
    with pytest.raises(PyroHeaError, match="unknown z prior 'gamma'.*standard-normal"):
        make_prior("z", "gamma")


@pytest.mark.parametrize("z_name", sorted(Z_PRIORS))
@pytest.mark.parametrize("y_name, k", [("uniform", 2), ("empirical-rules", 2), ("empirical-rules", 4)])
def test_every_shipped_prior_drives_the_model(shell, sub, z_name, y_name, k):
    model, _ = shell
    split = paper_split(sub, seed=0, label="single_phase" if k == 2 else "phase")
    built = PhaseModel.build(sub, split, ModelConfig(n_classes=k, hidden=[8]),
                             prior_z=make_prior("z", z_name), prior_y=make_prior("y", y_name))
    vae, t = built.vae, built.tensors(sub)
    labelled, unlabelled = t[t.labelled][:20], t[:15].hide_labels()
    with pyro.get_param_store().scope(), torch.no_grad():
        trace = poutine.trace(vae.model).get_trace(labelled, unlabelled)
        loss = make_elbo().loss(vae.model, vae.guide, labelled, unlabelled)
    torch.testing.assert_close(trace.nodes["z_labelled"]["fn"].mean, vae.prior_z(labelled).mean)
    torch.testing.assert_close(trace.nodes["y_unlabelled"]["fn"].probs, vae.prior_y(unlabelled).probs)
    assert math.isfinite(loss)


# -------------------------------------------------------------------- custom priors
class ShiftedLaplace(LatentPrior):
    """A user's z prior: Laplace around a learnable shift."""

    def __init__(self, scale: float = 0.8):
        super().__init__()
        self.scale = scale
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, alloys):
        loc = self.shift + alloys.x.new_zeros(len(alloys), self.latent_dim)
        return dist.Laplace(loc, self.scale).to_event(1)

    def config(self):
        return {"scale": self.scale}


class LeaningPhase(PhasePrior):
    """A user's y prior: a fixed lean towards the last class."""

    def __init__(self, lean: float = 0.7):
        super().__init__()
        self.lean = lean

    def forward(self, alloys):
        probs = torch.full((self.n_classes,), (1 - self.lean) / (self.n_classes - 1))
        probs[-1] = self.lean
        return dist.Categorical(probs=probs.expand(len(alloys), self.n_classes))


@pytest.fixture(scope="module")
def custom(sub):
    split = paper_split(sub, seed=0)
    model = PhaseModel.fit(sub, split, prior_z=ShiftedLaplace(), prior_y=LeaningPhase(), hidden=[16],
                           latent_dim=2, steps=30, eval_every=10, lr=1e-2, seed=0, progress=False)
    return model, split


def test_custom_priors_train_without_touching_the_model(sub, custom):
    model, _ = custom
    history = model.trainer.state.history
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert model.vae.prior_z.shift.item() != 0.0  # a prior's parameter is trained with the rest
    assert "prior_z.shift" in model.vae.state_dict()
    t = model.tensors(sub)
    labelled, unlabelled = t[t.labelled][:12], t[:9].hide_labels()
    with pyro.get_param_store().scope(), torch.no_grad():
        guide = poutine.trace(poutine.enum(model.vae.guide, first_available_dim=-2)).get_trace(labelled, unlabelled)
        trace = poutine.trace(poutine.replay(model.vae.model, trace=guide)).get_trace(labelled, unlabelled)
    trace.compute_log_prob()
    z_site = trace.nodes["z_labelled"]
    assert isinstance(z_site["fn"].base_dist, dist.Laplace)
    torch.testing.assert_close(z_site["fn"].base_dist.loc, model.vae.prior_z.shift.detach().expand(12, 2))
    own = model.vae.prior_z(labelled).log_prob(z_site["value"])
    torch.testing.assert_close(z_site["log_prob"], own.detach())
    y_site = trace.nodes["y_unlabelled"]
    torch.testing.assert_close(y_site["fn"].probs, torch.tensor([0.3, 0.7]).expand(9, 2))


def test_checkpoint_of_custom_priors_needs_the_instances(sub, custom, tmp_path):
    model, split = custom
    path = tmp_path / "custom.pt"
    model.save(path)
    with pytest.raises(CheckpointError, match=r"custom z prior \(ShiftedLaplace\).*prior_z="):
        PhaseModel.load(path)
    with pytest.raises(CheckpointError, match=r"custom y prior \(LeaningPhase\).*prior_y="):
        PhaseModel.load(path, prior_z=ShiftedLaplace())
    with pytest.raises(CheckpointError, match="ShiftedLaplace, but a StandardNormal was given"):
        PhaseModel.load(path, prior_z=StandardNormal(), prior_y=LeaningPhase())
    loaded = PhaseModel.load(path, prior_z=ShiftedLaplace(), prior_y=LeaningPhase())
    assert loaded.vae.prior_z.shift.item() == model.vae.prior_z.shift.item()  # restored from the file
    np.testing.assert_array_equal(loaded.predict_proba(sub), model.predict_proba(sub))
