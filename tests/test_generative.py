"""Shared noise across enumerated classes, and the generative posterior diagnostic."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyro_hea import ModelConfig, PhaseModel, paper_split
from pyro_hea.diagnostics.generative import class_elbo_terms, generative_posterior
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.training import make_elbo
from pyro_hea.model.shared_noise import SharedNoiseNormal


def _sub(pei):
    """200 alloys of Pei 2020."""
    return pei.sample(200, random_state=1).reset_index(drop=True)


def _variant(pei, **config):
    """An untrained small model of ``config`` with 12 labelled and 28 unlabelled alloys."""
    sub = _sub(pei)
    split = paper_split(sub, seed=0)
    torch.manual_seed(0)
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=3, **config))
    t = model.tensors(sub)
    return model.vae, t[t.labelled][:12], t[12:40].hide_labels()


@pytest.fixture(scope="module")
def small(pei):
    return {shared: _variant(pei, shared_noise=shared) for shared in (False, True)}


def test_shared_noise_draw_has_the_normal_marginal_and_a_common_noise():
    loc = torch.tensor([[0.0, 1.0], [3.0, -2.0]])[:, None, :].expand(2, 4000, 2)  # (K, n, d)
    scale = torch.tensor([0.5, 2.0]).expand(4000, 2)
    torch.manual_seed(0)
    d = SharedNoiseNormal(loc, scale, SharedNoiseNormal.draw_noise(loc, scale))
    draw = d.rsample()
    assert draw.shape == (2, 4000, 2)
    # each class's draw is Normal(loc_k, scale): mean within 5 SE, sd within 5%
    for k in range(2):
        se = scale[0] / np.sqrt(4000)
        assert torch.all((draw[k].mean(0) - loc[k, 0]).abs() < 5 * se)
        assert torch.allclose(draw[k].std(0), scale[0], rtol=0.05)
    # and the two classes' draws differ by exactly loc_1 - loc_0
    assert torch.allclose(draw[1] - draw[0], loc[1] - loc[0], atol=1e-5)
    assert torch.equal(d.expand(torch.Size([2, 4000, 2])).noise, d.noise)
    assert d.rsample(torch.Size([3])).shape == (3, 2, 4000, 2)  # explicit sample shapes draw afresh


def test_shared_noise_only_changes_the_unlabelled_guide(small):
    vae, labelled, unlabelled = small[True]
    with pyro.get_param_store().scope(), torch.no_grad():
        trace = poutine.trace(poutine.enum(vae.guide, first_available_dim=-2)).get_trace(labelled, unlabelled)
    assert isinstance(trace.nodes["z_unlabelled"]["fn"].base_dist, SharedNoiseNormal)
    assert not isinstance(trace.nodes["z_labelled"]["fn"].base_dist, SharedNoiseNormal)
    z = trace.nodes["z_unlabelled"]["value"]  # (K, n, d)
    shift = vae.decoder.class_shift(torch.eye(2))  # mu_y
    # z_y = m - mu_y + s * eps with one eps: z_0 - z_1 = mu_1 - mu_0 for every alloy
    assert torch.allclose(z[0] - z[1], (shift[1] - shift[0]).expand_as(z[0]), atol=1e-5)


def test_shared_noise_keeps_the_elbo_unbiased(small):
    """At the same weights, the mean loss over draws equals the independent-noise one within 5 SE."""
    means, ses = [], []
    for shared in (False, True):
        vae, labelled, unlabelled = small[shared]
        losses = []
        with pyro.get_param_store().scope(), torch.no_grad():
            for seed in range(300):
                pyro.set_rng_seed(seed)
                losses.append(make_elbo().loss(vae.model, vae.guide, labelled, unlabelled))
        means.append(np.mean(losses))
        ses.append(np.std(losses) / np.sqrt(len(losses)))
    # the two models share their weights (same seed, same config but the flag)
    assert abs(means[0] - means[1]) < 5 * np.hypot(*ses)


def test_shared_noise_lowers_the_variance_of_the_class_gap(small):
    vae, _, unlabelled = small[False]
    gaps = {}
    for shared in (False, True):
        terms = class_elbo_terms(vae, unlabelled, draws=1, seed=3, shared_noise=shared)
        gaps[shared] = {name: (v[1] - v[0]) for name, v in terms.items()}
    # with the exact class shift the composition term is equal for both classes under shared noise
    assert gaps[True]["composition"].abs().max() < 1e-3
    assert gaps[False]["composition"].abs().median() > 1.0
    total = {s: sum(g.values()).abs().median() for s, g in gaps.items()}
    assert total[True] < total[False]


def test_generative_posterior_is_a_distribution_and_names_bad_terms(small):
    vae, _, unlabelled = small[False]
    probs = generative_posterior(vae, unlabelled, draws=2)
    assert probs.shape == (len(unlabelled), 2)
    assert torch.allclose(probs.sum(-1), torch.ones(len(unlabelled)))
    only_f = generative_posterior(vae, unlabelled, terms=("descriptors",), draws=2)
    assert not torch.allclose(only_f, probs)
    with pytest.raises(PyroHeaError, match="unknown terms"):
        generative_posterior(vae, unlabelled, terms=("phase",), draws=2)
    with pytest.raises(PyroHeaError, match="draws"):
        class_elbo_terms(vae, unlabelled, draws=0)


def test_class_elbo_terms_leave_the_rng_and_the_mode_alone(small):
    vae, _, unlabelled = small[False]
    vae.train()
    torch.manual_seed(11)
    expected = torch.rand(1)
    torch.manual_seed(11)
    class_elbo_terms(vae, unlabelled, draws=2)
    assert torch.equal(torch.rand(1), expected)
    assert vae.training


# ------------------------------------------------ the variants the diagnosis compares
def test_gaussian_descriptor_view_is_one_full_covariance_gaussian_per_class(pei):
    vae, labelled, unlabelled = _variant(pei, descriptor_model="gaussian")
    with torch.no_grad():  # give the classes distinct means and correlations
        vae.descriptor_gaussian.loc.normal_()
        vae.descriptor_gaussian.raw_tril.normal_(0, 0.3)
    with pyro.get_param_store().scope(), torch.no_grad():
        model = poutine.trace(poutine.replay(vae.model, trace=poutine.trace(vae.guide).get_trace(labelled, None))
                              ).get_trace(labelled, None)
        assert "u_labelled" not in model.nodes  # no style latent
        f_site = model.nodes["f_labelled"]
        by_hand = torch.stack([
            torch.distributions.MultivariateNormal(
                vae.descriptor_gaussian.loc[y], scale_tril=vae.descriptor_gaussian.scale_tril()[y]
            ).log_prob(f) for f, y in zip(labelled.features, labelled.y)])
        assert torch.allclose(f_site["fn"].log_prob(f_site["value"]), by_hand, atol=1e-4)
        cov = vae.descriptor_gaussian.scale_tril() @ vae.descriptor_gaussian.scale_tril().transpose(-1, -2)
        assert not torch.allclose(cov[0], torch.diag(torch.diagonal(cov[0])))  # correlated, not diagonal
        # enumerated y: the unlabelled ELBO still trains with TraceEnum_ELBO
        assert np.isfinite(make_elbo().loss(vae.model, vae.guide, labelled, unlabelled))


def test_without_class_positions_the_composition_does_not_depend_on_y(pei):
    vae, labelled, unlabelled = _variant(pei, class_position=False)
    z = torch.randn(5, 3)
    assert torch.equal(vae.decode(z, 0), vae.decode(z, 1))
    terms = class_elbo_terms(vae, unlabelled, draws=2)
    for name in ("composition", "latent"):  # both cancel: only the descriptor view has an opinion of y
        assert (terms[name][1] - terms[name][0]).abs().max() < 1e-4
    # a training step leaves the (zero) class positions at zero
    from pyro.optim import Adam
    from pyro.infer import SVI
    with pyro.get_param_store().scope():
        SVI(vae.model, vae.guide, Adam({"lr": 0.1}), make_elbo()).step(labelled, unlabelled)
    assert torch.equal(vae.decode(z, 0), vae.decode(z, 1))


@pytest.mark.parametrize("bad, message", [({"descriptor_model": "flow"}, "descriptor_model"),
                                          ({"class_position": False, "decoder": "mlp"}, "linear decoder")])
def test_bad_variant_settings_are_refused_in_one_line(bad, message):
    with pytest.raises(PyroHeaError, match=message):
        ModelConfig(**bad)


def test_the_variants_save_and_load(pei, tmp_path):
    sub = _sub(pei)
    split = paper_split(sub, seed=0)
    model = PhaseModel.fit(sub, split, progress=False, steps=4, eval_every=2, hidden=[8], latent_dim=2,
                           descriptor_model="gaussian", class_position=False, shared_noise=True)
    model.save(tmp_path / "run")
    back = PhaseModel.load(tmp_path / "run")
    assert back.vae.config.descriptor_model == "gaussian" and not back.vae.config.class_position
    np.testing.assert_array_equal(back.predict_proba(sub.head(5)), model.predict_proba(sub.head(5)))


def test_the_generative_posterior_benchmark_runs_tiny_and_keeps_other_variants(tmp_path, load_benchmark):
    import pandas as pd

    bench = load_benchmark("generative_posterior")
    common = ["--fractions", "0.05", "--seeds", "0", "--steps", "4", "--out-dir", str(tmp_path),
              "--cache-dir", str(tmp_path / "cache")]
    bench.main(common)
    table = bench.main(common + ["--set", "descriptor_model=gaussian", "class_position=false"])
    assert list(table["variant"]) == ["default", "class_position=False, descriptor_model=gaussian"]
    for column in ("q", "generative", "q_times_generative", "latent", "descriptors"):
        assert table[column].between(0, 1).all()
    assert (table["composition"] == 0.5).all()  # equal for both classes under shared noise
    assert table.iloc[1]["latent"] == 0.5  # no class position: the latent term has no opinion of y
    assert table.iloc[0]["gap_independent"] > table.iloc[0]["gap_shared"]
    assert "Variant: class_position=False" in (tmp_path / "generative_posterior.md").read_text()
    assert len(pd.read_csv(tmp_path / "generative_posterior.csv")) == 2
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench.main(common + ["--set", "shared_noise"])


def test_estimated_class_positions_are_the_class_means_of_the_latent_and_stay_out_of_training(pei, tmp_path):
    sub = _sub(pei)
    split = paper_split(sub, seed=0, label_fraction=0.5)
    model = PhaseModel.fit(sub, split, progress=False, steps=6, eval_every=3, hidden=[8], latent_dim=3,
                           class_position=False, estimate_class_position=True)
    vae, shift = model.vae, model.vae.decoder.class_shift
    assert bool(shift.estimated)
    # by hand: labelled alloys count for their class, unlabelled ones with weight q(y|x)
    t = model.tensors(sub)
    rows = np.flatnonzero(split.isin(["labelled", "unlabelled"]).to_numpy())
    train = t[rows]
    train.y = torch.where(torch.tensor((split.iloc[rows] == "unlabelled").to_numpy()), -1, train.y)
    vae.clear_class_positions()
    with torch.no_grad():
        m, _ = vae.encoder(train.x, train.features, vae.one_hot(torch.zeros(len(train), dtype=torch.long)))
        q = vae.predict_proba(train)
    w = torch.where((train.y >= 0)[:, None], torch.nn.functional.one_hot(train.y.clamp(min=0), 2).float(), q)
    expected = (w.T @ m) / w.sum(0)[:, None]
    mu = vae.estimate_class_positions(train)
    assert torch.allclose(mu, expected, atol=1e-5)
    assert torch.allclose(shift.weight.T, expected, atol=1e-5)
    z = torch.randn(4, 3)
    assert not torch.allclose(vae.decode(z, 0), vae.decode(z, 1))  # design can condition on y
    # the positions survive a save and load, and a resumed fit trains without them, then re-estimates
    model.save(tmp_path / "run")
    back = PhaseModel.load(tmp_path / "run")
    assert bool(back.vae.decoder.class_shift.estimated)
    assert torch.allclose(back.vae.decode(z, 1), vae.decode(z, 1))
    seen = []
    hook = back.vae.decoder.class_shift.register_forward_hook(
        lambda module, inputs, out: seen.append(float(out.abs().max())))
    back.trainer.config.steps = 8
    back.train(sub, split, progress=False)
    hook.remove()
    assert seen and max(seen) == 0.0  # every forward pass in training saw mu = 0
    assert bool(back.vae.decoder.class_shift.estimated)


def test_estimating_class_positions_needs_the_option(pei):
    vae, _, unlabelled = _variant(pei)
    with pytest.raises(PyroHeaError, match="estimate_class_position"):
        vae.estimate_class_positions(unlabelled)
    with pytest.raises(PyroHeaError, match="class_position=False"):
        ModelConfig(estimate_class_position=True)


def test_train_command_takes_the_descriptor_model_and_the_class_position(tmp_path, capsys):
    from pyro_hea.cli import main
    from pyro_hea.infer.run import load_run

    out = tmp_path / "run"
    assert main(["train", "--dataset", "pei2020", "--out", str(out), "--epochs", "3", "--quiet",
                 "--descriptor-model", "gaussian", "--class-position", "estimated"]) == 0
    config = load_run(out).model.vae.config
    assert (config.descriptor_model, config.class_position, config.estimate_class_position) == ("gaussian", False, True)
    assert main(["train", "--dataset", "pei2020", "--out", str(tmp_path / "bad"), "--epochs", "3", "--quiet",
                 "--class-position", "none", "--decoder", "mlp"]) != 0
    err = capsys.readouterr().err
    assert "linear decoder" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()


def test_estimating_the_positions_leaves_the_classifier_bit_identical(pei):
    """So the pyro-hea/gaussian-descriptors study rows stand for the estimated-position model too."""
    sub = _sub(pei)
    split = paper_split(sub, seed=0, label_fraction=0.5)
    probs = {}
    for estimate in (False, True):
        model = PhaseModel.fit(sub, split, progress=False, steps=6, eval_every=3, hidden=[8], latent_dim=3, seed=2,
                               descriptor_model="gaussian", class_position=False, estimate_class_position=estimate)
        probs[estimate] = model.predict_proba(sub)
    np.testing.assert_array_equal(probs[False], probs[True])
