"""The model and guide as Pyro programs: enumeration, the observed/enumerated split, K = 2 and 4.

The ELBO checks recompute the loss by hand from the networks, with the same
z draws as Pyro (same RNG seed), so a wrong sign, a missing term or a
sampled instead of enumerated y makes them fail.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Trace_ELBO

from pyro_hea import ModelConfig, PhaseModel, PhaseVAE, paper_split
from pyro_hea.data.datasets import PHASES
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.training import make_elbo

N_LAB, N_UNL = 10, 7



@pytest.fixture(scope="module")
def sub(pei):
    """A 240-alloy subset of Pei 2020, enough for every class of both label sets."""
    return pei.sample(240, random_state=0).reset_index(drop=True)


def _label(k: int) -> str:
    return "single_phase" if k == 2 else "phase"


def _untrained(sub, k: int, alpha: float = 20.0, latent_dim: int = 3):
    split = paper_split(sub, seed=0, label=_label(k))
    torch.manual_seed(0)
    model = PhaseModel.build(sub, split, ModelConfig(n_classes=k, hidden=[16], latent_dim=latent_dim, alpha=alpha))
    t = model.tensors(sub)
    labelled = t[t.labelled][:N_LAB]
    unlabelled = t[N_LAB: N_LAB + N_UNL].hide_labels()
    return model.vae, labelled, unlabelled


def _log_multinomial(x: torch.Tensor, logits: torch.Tensor, total: float) -> torch.Tensor:
    """log Multinomial(counts | total, softmax(logits)) with counts = x * total / 100 (x in at.%),
    continuous in the counts, written out by hand."""
    counts = x * total / 100.0
    return (torch.lgamma(counts.sum(-1) + 1) - torch.lgamma(counts + 1).sum(-1)
            + (counts * torch.log_softmax(logits, -1)).sum(-1))


def _descriptor_terms(vae, alloys, u, y_onehot) -> torch.Tensor:
    """log p(u) + log p(f | u, y) - log q(u | x, y), the descriptor view of the ELBO, by hand."""
    loc_u, scale_u = vae.descriptor_encoder(alloys.features, y_onehot)
    loc_f, scale_f = vae.descriptor_decoder(u, y_onehot)
    return (dist.Normal(0.0, 1.0).log_prob(u).sum(-1) + dist.Normal(loc_f, scale_f).log_prob(alloys.features).sum(-1)
            - dist.Normal(loc_u, scale_u).log_prob(u).sum(-1))


def _sample_sites(trace) -> dict:
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not name.startswith("alloys_")}


# --------------------------------------------------------------------------- enumeration
@pytest.mark.parametrize("k", [2, 4])
def test_unlabelled_y_carries_an_enumeration_dimension_of_size_k(sub, k):
    vae, labelled, unlabelled = _untrained(sub, k)
    with pyro.get_param_store().scope(), torch.no_grad():
        guide = poutine.trace(poutine.enum(vae.guide, first_available_dim=-2)).get_trace(labelled, unlabelled)
    sites = _sample_sites(guide)
    y = sites["y_unlabelled"]
    assert y["infer"]["enumerate"] == "parallel"
    assert y["value"].shape == (k, 1)  # all K values, in the enumeration dim left of the plate
    assert y["value"].flatten().tolist() == list(range(k))
    # The to_event trap: the y site must be batched over the plate, with an enumerable support.
    assert y["fn"].batch_shape == (N_UNL,) and y["fn"].event_shape == ()
    assert y["fn"].has_enumerate_support
    # q(z | x, y) is evaluated for every y: the encoder broadcasts over the enum dim.
    assert sites["z_unlabelled"]["value"].shape == (k, N_UNL, vae.config.latent_dim)
    # Labelled alloys: y is observed, so the guide has no y site for them and z has no enum dim.
    assert "y_labelled" not in sites
    assert sites["z_labelled"]["value"].shape == (N_LAB, vae.config.latent_dim)


@pytest.mark.parametrize("k", [2, 4])
def test_model_observes_labelled_y_and_scores_x_for_every_enumerated_y(sub, k):
    vae, labelled, unlabelled = _untrained(sub, k)
    with pyro.get_param_store().scope(), torch.no_grad():
        guide = poutine.trace(poutine.enum(vae.guide, first_available_dim=-2)).get_trace(labelled, unlabelled)
        model = poutine.trace(poutine.replay(vae.model, trace=guide)).get_trace(labelled, unlabelled)
    model.compute_log_prob()
    sites = _sample_sites(model)
    assert sites["y_labelled"]["is_observed"]
    assert torch.equal(sites["y_labelled"]["value"], labelled.y)
    assert not sites["y_unlabelled"]["is_observed"]
    assert sites["x_labelled"]["is_observed"] and sites["x_unlabelled"]["is_observed"]
    assert sites["x_labelled"]["log_prob"].shape == (N_LAB,)
    assert sites["x_unlabelled"]["log_prob"].shape == (k, N_UNL)  # leading K dim: one score per class
    # The descriptors are the second view, also scored once per class, and they condition on y.
    assert sites["f_labelled"]["is_observed"] and torch.equal(sites["f_labelled"]["value"], labelled.features)
    assert sites["f_unlabelled"]["log_prob"].shape == (k, N_UNL)
    assert not torch.allclose(sites["f_unlabelled"]["log_prob"][0], sites["f_unlabelled"]["log_prob"][1])


def test_trace_enum_elbo_runs_without_enumeration_warnings(sub):
    vae, labelled, unlabelled = _untrained(sub, 2)
    with pyro.get_param_store().scope(), warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Found vars in model but not guide", "no enumerated sites"
        loss = make_elbo().loss(vae.model, vae.guide, labelled, unlabelled)
    assert math.isfinite(loss)


# ------------------------------------------------------------ observed / enumerated split
@pytest.mark.parametrize("k", [2, 4])
def test_labelled_loss_is_minus_elbo_plus_alpha_times_cross_entropy(sub, k):
    vae, labelled, _ = _untrained(sub, k)
    with pyro.get_param_store().scope(), torch.no_grad():
        pyro.set_rng_seed(1)
        nodes = poutine.trace(vae.guide).get_trace(labelled, None).nodes
        z, u = nodes["z_labelled"]["value"], nodes["u_labelled"]["value"]
        onehot = vae.one_hot(labelled.y)
        loc, scale = vae.encoder(labelled.x, labelled.features, onehot)
        elbo = (_log_multinomial(labelled.x, vae.decoder(z, onehot), vae.config.total_count)
                + dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
                - math.log(k)  # uniform p(y)
                - dist.Normal(loc, scale).log_prob(z).sum(-1)
                + _descriptor_terms(vae, labelled, u, onehot)).sum()
        log_q = torch.log_softmax(vae.classifier(labelled.x, labelled.features), -1)
        cross_entropy = -log_q.gather(-1, labelled.y[:, None]).sum()
        losses = {}
        for w in (0.0, 7.5, 30.0):
            vae.label_weight.fill_(w)
            pyro.set_rng_seed(1)  # the same z draw as above
            losses[w] = make_elbo(strict=False).loss(vae.model, vae.guide, labelled, None)
    assert losses[0.0] == pytest.approx(-float(elbo), rel=1e-5)
    for w in (7.5, 30.0):
        # Raising the label weight by d raises the loss by d * CE: the classification term is added.
        assert losses[w] - losses[0.0] == pytest.approx(w * float(cross_entropy), rel=1e-3)
    assert float(cross_entropy) > 0


def test_an_ensemble_classifier_averages_probabilities_and_each_member_carries_its_own_loss(sub):
    split = paper_split(sub, seed=0)
    torch.manual_seed(0)
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=3, classifier_members=3,
                                                     classifier_hidden=[8]))
    vae, t = model.vae, model.tensors(sub)
    labelled = t[t.labelled][:N_LAB]
    with torch.no_grad():
        member = torch.log_softmax(vae.classifier.member_logits(labelled.x, labelled.features), -1)  # (3, n, 2)
        assert member.shape == (3, N_LAB, 2) and vae.classifier.net[0][0].out_features == 8
        # q(y|x) is the mean of the members' probabilities, not of their logits
        torch.testing.assert_close(vae.predict_proba(labelled), member.exp().mean(0))
        assert not torch.allclose(member[0], member[1])  # independently initialized members
        # the labelled loss adds w * the mean over members of each member's cross-entropy
        member_ce = -member.gather(-1, labelled.y[None, :, None].expand(3, -1, 1)).sum((1, 2)).mean()
        mixture_ce = -torch.log(vae.predict_proba(labelled)).gather(-1, labelled.y[:, None]).sum()
        losses = {}
        for w in (0.0, 10.0):
            vae.label_weight.fill_(w)
            pyro.set_rng_seed(1)
            losses[w] = make_elbo(strict=False).loss(vae.model, vae.guide, labelled, None)
    assert losses[10.0] - losses[0.0] == pytest.approx(10.0 * float(member_ce), rel=1e-3)
    assert float(member_ce) != pytest.approx(float(mixture_ce), rel=1e-3)  # the two losses differ here


def test_one_classifier_network_keeps_the_checkpoint_layout():
    assert "classifier.net.0.weight" in PhaseVAE(["Fe", "Ni"], ModelConfig(classifier_members=1)).state_dict()
    assert "classifier.net.2.0.weight" in PhaseVAE(["Fe", "Ni"], ModelConfig(classifier_members=3)).state_dict()


def test_empty_classifier_hidden_gives_a_linear_classifier_and_none_falls_back_to_hidden():
    linear = PhaseVAE(["Fe", "Ni"], ModelConfig(hidden=[16], classifier_hidden=[], classifier_trees=4))
    assert [type(m).__name__ for m in linear.classifier.net] == ["Linear"]
    assert linear.classifier.net[0].in_features == 72  # 8 descriptors, each over 8 bins
    default = PhaseVAE(["Fe", "Ni"], ModelConfig(hidden=[16]))
    assert default.classifier.net[0].out_features == 16


def test_tree_bin_edges_read_only_the_labelled_rows(sub):
    """Target-aware bins come from the labelled alloys' labels; unlabelled rows' hidden labels do not move them."""
    split = paper_split(sub, seed=0, label_fraction=0.5)
    edges = {}
    for how in ("quantile", "tree"):
        model = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=3, classifier_bin_edges=how))
        edges[how] = model.vae.classifier.encoding.edges.clone()
    assert edges["tree"].shape == edges["quantile"].shape
    assert bool((edges["tree"].diff(dim=-1) >= 0).all())  # sorted
    assert not torch.allclose(edges["tree"], edges["quantile"])
    # the outer edges stay the training range
    torch.testing.assert_close(edges["tree"][:, [0, -1]], edges["quantile"][:, [0, -1]])
    flipped = sub.copy()
    hidden = (split == "unlabelled").to_numpy()
    flipped.loc[hidden, "single_phase"] = 1 - flipped.loc[hidden, "single_phase"]
    again = PhaseModel.build(flipped, split, ModelConfig(hidden=[16], latent_dim=3, classifier_bin_edges="tree"))
    torch.testing.assert_close(again.vae.classifier.encoding.edges, edges["tree"], rtol=0, atol=0)


def test_tree_bin_edges_need_labels():
    vae = PhaseVAE(["Fe", "Ni"], ModelConfig(classifier_bin_edges="tree"))
    with pytest.raises(PyroHeaError, match="needs the training labels"):
        vae.fit_feature_bins(torch.randn(20, 8))
    features = torch.randn(20, 8)
    vae.fit_feature_bins(features, torch.full((20,), -1))  # no labels known: quantiles only
    quantile = PhaseVAE(["Fe", "Ni"], ModelConfig())
    quantile.fit_feature_bins(features)
    torch.testing.assert_close(vae.classifier.encoding.edges, quantile.classifier.encoding.edges)


@pytest.mark.parametrize("n_bins", [1, 2, 8])
def test_tree_bin_edges_keep_the_training_range_for_any_bin_count(n_bins):
    from pyro_hea.model.networks import PiecewiseLinearEncoding

    f = torch.linspace(-1.0, 1.0, 41)[:, None]
    enc = PiecewiseLinearEncoding(n_features=1, n_bins=n_bins)
    enc.fit_edges(f, labels=(f[:, 0] > 0.3).long())
    assert enc.edges.shape == (1, n_bins + 1)
    assert float(enc.edges[0, 0]) == -1.0 and float(enc.edges[0, -1]) == 1.0
    assert (n_bins == 1) or bool(torch.isclose(enc.edges[0], torch.tensor(0.325)).any())


def test_random_partition_splits_sit_at_the_quantiles_of_every_training_row_and_index_the_leaves():
    from pyro_hea.model.networks import RandomPartitionEncoding

    torch.manual_seed(0)
    f = torch.randn(101, 3)
    part = RandomPartitionEncoding(n_features=3, n_trees=6, depth=4)
    part.fit_thresholds(f)
    for t, l in [(0, 0), (5, 3), (2, 1)]:
        j, q = int(part.split_feature[t, l]), float(part.split_level[t, l])
        assert float(part.thresholds[t, l]) == pytest.approx(float(torch.quantile(f[:, j], q)), abs=1e-6)
    leaves = part(f)
    bits = (f[:, part.split_feature[2]] > part.thresholds[2]).long()  # tree 2 by hand
    assert torch.equal(leaves[:, 2], 2 * 16 + (bits * torch.tensor([1, 2, 4, 8])).sum(-1))
    assert len(torch.unique(leaves[:, 0])) > 4  # the data are spread over the leaves
    with pytest.raises(ValueError, match="fit_thresholds"):
        part.fit_thresholds(torch.zeros(1, 3))


def test_leaf_logits_start_at_zero_and_their_partition_is_fitted_on_labelled_and_unlabelled_rows(sub):
    split = paper_split(sub, seed=0)
    torch.manual_seed(0)
    plain = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=3))
    torch.manual_seed(0)
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=3, classifier_trees=20, classifier_tree_depth=3))
    clf, t = model.vae.classifier, model.tensors(sub)
    assert clf.leaf_logits.weight.shape == (20 * 8, 2) and not clf.leaf_logits.weight.any()
    clf.net.load_state_dict(plain.vae.classifier.net.state_dict())
    torch.testing.assert_close(clf(t.x, t.features), plain.vae.classifier(t.x, t.features))  # zero leaves: no change
    train = model.tensors(sub[split.isin(["labelled", "unlabelled"]).to_numpy()])
    j, q = int(clf.partition.split_feature[0, 0]), float(clf.partition.split_level[0, 0])
    expected = torch.quantile(train.features[:, j], q)
    assert float(clf.partition.thresholds[0, 0]) == pytest.approx(float(expected), abs=1e-5)
    with torch.no_grad():
        clf.leaf_logits.weight[:, 1] = 1.0
    torch.testing.assert_close(clf.member_logits(t.x, t.features)[0, :, 1] - plain.vae.classifier(t.x, t.features)[:, 1],
                               torch.full((len(sub),), 20 ** 0.5))  # 20 leaves of weight 1, over sqrt(20)


def test_a_table_without_labels_builds_a_model_with_quantile_bins(sub):
    split = paper_split(sub, seed=0)
    PhaseModel.build(sub.drop(columns=["single_phase"]), split, ModelConfig(hidden=[16], latent_dim=3))
    with pytest.raises(PyroHeaError, match="no 'single_phase' column"):
        PhaseModel.build(sub.drop(columns=["single_phase"]), split, ModelConfig(classifier_bin_edges="tree"))


def test_classification_term_adds_exactly_alpha_times_its_gradient(sub):
    """On labelled alloys q(y|x) enters only through alpha * CE: no score-function term.

    A guide-side ``pyro.factor`` with ``has_rsample=False`` would be treated as a
    non-reparameterized site, and the ELBO costs would multiply its gradient (about
    400 times too large a gradient, measured).
    """
    vae, labelled, _ = _untrained(sub, 2)
    vae.label_weight.fill_(20.0)
    head = vae.classifier.net[-1].weight
    with pyro.get_param_store().scope():
        pyro.set_rng_seed(0)
        make_elbo(strict=False).differentiable_loss(vae.model, vae.guide, labelled, None).backward()
    from_loss = head.grad.clone()
    vae.zero_grad()
    log_q = torch.log_softmax(vae.classifier(labelled.x, labelled.features), -1)
    (-20.0 * log_q.gather(-1, labelled.y[:, None]).sum()).backward()
    torch.testing.assert_close(from_loss, head.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [2, 4])
def test_unlabelled_loss_is_the_exact_sum_over_classes(sub, k):
    vae, _, unlabelled = _untrained(sub, k)
    with pyro.get_param_store().scope(), torch.no_grad():
        pyro.set_rng_seed(2)
        guide = poutine.trace(poutine.enum(vae.guide, first_available_dim=-2)).get_trace(None, unlabelled)
        z = guide.nodes["z_unlabelled"]["value"]  # (K, n, d): one z draw per class
        u = guide.nodes["u_unlabelled"]["value"]
        ys = torch.arange(k)[:, None].expand(k, N_UNL)
        loc, scale = vae.encoder(unlabelled.x, unlabelled.features, vae.one_hot(ys))
        log_q_y = torch.log_softmax(vae.classifier(unlabelled.x, unlabelled.features), -1).T  # (K, n)
        inner = (_log_multinomial(unlabelled.x, vae.decoder(z, vae.one_hot(ys)), vae.config.total_count)
                 + dist.Normal(0.0, 1.0).log_prob(z).sum(-1) - math.log(k)
                 - dist.Normal(loc, scale).log_prob(z).sum(-1) - log_q_y
                 + _descriptor_terms(vae, unlabelled, u, vae.one_hot(ys)))
        elbo = (log_q_y.exp() * inner).sum()  # sum_y q(y|x) [log p(x,y,z) - log q(y,z|x)]
        pyro.set_rng_seed(2)
        loss = make_elbo().loss(vae.model, vae.guide, None, unlabelled)
        pyro.set_rng_seed(2)
        again = make_elbo().loss(vae.model, vae.guide, None, unlabelled)
    assert loss == pytest.approx(-float(elbo), rel=1e-5)
    assert loss == again  # y contributes no randomness


def test_enumeration_has_far_lower_variance_than_sampling_y(sub):
    """The published code samples y with Trace_ELBO: a score-function gradient for q(y|x)."""
    vae, _, unlabelled = _untrained(sub, 2)
    head = vae.classifier.net[-1].weight

    def draws(elbo, seeds):
        losses, grads = [], []
        for seed in seeds:
            with pyro.get_param_store().scope():
                pyro.set_rng_seed(seed)
                vae.zero_grad()
                loss = elbo.differentiable_loss(vae.model, vae.guide, None, unlabelled)
                loss.backward()
            losses.append(loss.item())
            grads.append(head.grad.clone())
        return np.var(losses), float(torch.stack(grads).var(0).sum())

    seeds = range(100, 125)
    loss_var_enum, grad_var_enum = draws(make_elbo(), seeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Trace_ELBO warns that it will not enumerate
        loss_var_sampled, grad_var_sampled = draws(Trace_ELBO(), seeds)
    assert loss_var_enum < loss_var_sampled
    # Measured for the classifier head's gradient: 31 to 635 times lower with enumeration, over two
    # initial weights with and without the random partition (e.g. 2.7e7 against 8.4e8).
    assert grad_var_enum * 10 < grad_var_sampled


# --------------------------------------------------------------------------- K = 2 and 4
@pytest.fixture(scope="module")
def fitted(sub):
    """A few SVI steps for K = 2 and K = 4 (about a second each)."""
    out = {}
    for k in (2, 4):
        split = paper_split(sub, seed=0, label=_label(k))
        out[k] = PhaseModel.fit(sub, split, n_classes=k, hidden=[16], latent_dim=2, steps=40, eval_every=10,
                                lr=1e-2, patience=100, seed=0, progress=False), split
    return out


@pytest.mark.parametrize("k", [2, 4])
def test_both_label_sets_train_and_predict(sub, fitted, k):
    model, split = fitted[k]
    history = model.trainer.state.history
    assert model.trainer.state.step == 40
    assert history["train_loss"][-1] < history["train_loss"][0]
    probs = model.predict_proba(sub)
    assert probs.shape == (len(sub), k)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(probs >= 0)
    metrics = model.evaluate(sub, (split == "val").to_numpy())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and math.isfinite(metrics["elbo"])


def test_four_classes_come_from_the_phase_column(sub, fitted):
    model, _ = fitted[4]
    assert model.class_names == PHASES
    y = model.tensors(sub).y.numpy()
    expected = np.array([PHASES.index(p) for p in sub["phase"]])
    np.testing.assert_array_equal(y, expected)
    assert set(np.unique(y)) == {0, 1, 2, 3}
    two = fitted[2][0].tensors(sub).y.numpy()
    np.testing.assert_array_equal(two, sub["single_phase"].astype(int).to_numpy())


def test_decoder_outputs_compositions_and_depends_on_y(fitted):
    model, _ = fitted[2]
    vae = model.vae
    z = torch.randn(5, vae.config.latent_dim)
    single, multi = vae.decode(z, 1), vae.decode(z, 0)
    assert single.shape == (5, len(model.vocabulary))
    torch.testing.assert_close(single.sum(-1), torch.full((5,), 100.0))
    assert not torch.allclose(single, multi)  # flipping y at fixed z changes the alloy
    t = model.tensors(["CoCrFeMnNi", "NbMoTaW"])
    loc, scale = vae.encode(t)
    assert loc.shape == scale.shape == (2, vae.config.latent_dim) and bool((scale > 0).all())
    assert vae.reconstruct(t).shape == (2, len(model.vocabulary))


@pytest.mark.parametrize("bad", [{"n_classes": 1}, {"latent_dim": 0}, {"alpha": -1.0}, {"decoder": "transformer"},
                                 {"classifier_members": 0}, {"classifier_bin_edges": "kmeans"},
                                 {"classifier_trees": -1}, {"classifier_tree_depth": 0}])
def test_model_config_rejects_bad_settings(bad):
    with pytest.raises(PyroHeaError, match=next(iter(bad))):
        ModelConfig(**bad)


def test_model_rejects_a_prior_that_is_not_a_prior_module():
    with pytest.raises(PyroHeaError, match="LatentPrior"):
        PhaseVAE(["Fe", "Ni"], prior_z=torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------- decoders
def test_linear_decoder_logits_are_affine_in_z_and_shift_with_y():
    vae = PhaseVAE(["Al", "Co", "Cr", "Fe", "Ni"], ModelConfig(latent_dim=4))
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 4), torch.randn(3, 4)
    y = vae.one_hot(torch.tensor([0, 1, 1]))
    mix = vae.decoder(0.3 * z1 + 0.7 * z2, y)
    torch.testing.assert_close(mix, 0.3 * vae.decoder(z1, y) + 0.7 * vae.decoder(z2, y))
    # y moves every alloy's logits by the same per-class vector, whatever z is
    shift = vae.decoder(z1, vae.one_hot(torch.ones(3))) - vae.decoder(z1, vae.one_hot(torch.zeros(3)))
    torch.testing.assert_close(shift, shift[:1].expand(3, -1))


def test_class_scale_gives_each_class_its_spread_and_both_classes_still_decode_an_alloy_alike(sub):
    base, labelled, _ = _untrained(sub, 2, latent_dim=4)
    vae = PhaseVAE(base.vocabulary, ModelConfig(latent_dim=4, hidden=[16], class_scale=True))
    torch.manual_seed(0)
    with torch.no_grad():
        vae.decoder.class_log_scale.normal_()
        vae.decoder.class_shift.weight.normal_()
    mu, sigma = vae.decoder.class_shift(torch.eye(2)), torch.exp(vae.decoder.class_log_scale)
    z = torch.randn(3, 4)
    for k in range(2):  # v = mu_y + sigma_y z: the logits are W v + b
        v = mu[k] + sigma[k] * z
        torch.testing.assert_close(vae.decoder(z, vae.one_hot(torch.full((3,), k))), vae.decoder.latent(v))
    # the encoder undoes (mu_y, sigma_y) exactly: both classes decode the same logits, and the scale
    # of q(z | x, y) is the same spread s(x) in the class-conditional latent
    decoded, spread = [], []
    for k in range(2):
        y = torch.full((len(labelled),), k)
        loc, scale = vae.encode(labelled, y)
        decoded.append(vae.decoder(loc, vae.one_hot(y)))
        spread.append(scale * sigma[k])
    torch.testing.assert_close(decoded[0], decoded[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(spread[0], spread[1])
    # the class means of m(x) sit in the class-conditional latent, whatever sigma_y is
    with torch.no_grad():
        vae.decoder.class_log_scale.zero_()
    at_one = vae.latent_class_means(labelled)
    with torch.no_grad():
        vae.decoder.class_log_scale.fill_(1.5)
    torch.testing.assert_close(vae.latent_class_means(labelled), at_one, atol=1e-4, rtol=1e-4)


def test_without_class_scale_the_checkpoint_has_no_spread_parameter():
    assert "decoder.class_log_scale" not in PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2)).state_dict()
    assert "decoder.class_log_scale" in PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2, class_scale=True)).state_dict()
    with pytest.raises(PyroHeaError, match="class_scale need the linear decoder"):
        ModelConfig(decoder="mlp", class_scale=True)


def test_the_published_mlp_decoder_is_an_option():
    vae = PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2, decoder="mlp", hidden=[8]))
    assert vae.decoder.net[0].in_features == 2 + 2
    assert vae.decode(torch.zeros(4, 2), 1).shape == (4, 2)


def _log_joint(vae, alloys, z, y):
    counts = alloys.x * vae.config.total_count / 100.0
    log_px = (counts * torch.log_softmax(vae.decoder(z, vae.one_hot(y)), -1)).sum(-1)
    return log_px + vae.prior_z(alloys).log_prob(z)


def test_posterior_mode_raises_the_log_joint_and_leaves_the_weights_alone(sub):
    vae, labelled, _ = _untrained(sub, 2, latent_dim=6)
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    y = labelled.y
    loc, _ = vae.encode(labelled, y)
    torch.testing.assert_close(vae.posterior_mode(labelled, y, steps=0), loc)
    mode = vae.posterior_mode(labelled, y, steps=30)
    with torch.no_grad():
        gain = _log_joint(vae, labelled, mode, y) - _log_joint(vae, labelled, loc, y)
    assert bool((gain > -1e-3).all()) and float(gain.sum()) > 1.0
    for key, value in vae.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.requires_grad for p in vae.parameters())


def test_posterior_mode_finds_an_alloy_the_decoder_can_express():
    """With a weak prior (many atoms), decoding the mode gives back the alloy itself."""
    from pyro_hea.data.splits import DescriptorScaler
    from pyro_hea.model.tensors import AlloyTensors

    vocabulary = ["Al", "Co", "Cr", "Fe", "Mn", "Ni", "Ti", "V"]
    vae = PhaseVAE(vocabulary, ModelConfig(latent_dim=8, total_count=10**6))
    torch.manual_seed(1)
    with torch.no_grad():
        target = vae.decode(torch.randn(4, 8) * 2.0, 1)  # four alloys the decoder can produce exactly
    alloys = AlloyTensors.from_compositions(target.numpy().astype(float), vocabulary,
                                            DescriptorScaler(np.zeros(8), np.ones(8)))
    mode = vae.posterior_mode(alloys, torch.ones(4, dtype=torch.long), steps=200)
    np.testing.assert_allclose(vae.decode(mode, 1).numpy(), target.numpy(), atol=0.05)
    amortized = vae.decode(vae.encode(alloys, torch.ones(4, dtype=torch.long))[0], 1)
    assert float((amortized - target).abs().max()) > 1.0  # the untrained encoder alone is far off


def test_evaluate_reports_refined_and_amortized_reconstruction(sub, fitted):
    model, split = fitted[2]
    metrics = model.evaluate(sub, (split == "val").to_numpy())
    for key in ("recon_mae", "recon_mae_present", "recon_set_match"):
        assert 0.0 <= metrics[key] and 0.0 <= metrics[f"{key}_amortized"]
    assert metrics["recon_mae_present"] <= metrics["recon_mae_present_amortized"] + 1e-6


def test_classifier_feedback_scales_only_the_unlabelled_gradient_on_q_y_and_not_the_loss(sub):
    """gamma multiplies the unlabelled ELBO's gradient on q(y|x); the loss, the labelled term and the rest
    of the model are untouched (gamma = 0 cuts the generative model's feedback on the classifier)."""
    vae, labelled, unlabelled = _untrained(sub, 2)
    head, decoder = vae.classifier.net[-1].weight, vae.decoder.latent.weight

    def loss_and_grads(gamma, lab, unl):
        vae.config.classifier_feedback = gamma
        with pyro.get_param_store().scope():
            pyro.set_rng_seed(3)
            vae.zero_grad()
            loss = make_elbo().differentiable_loss(vae.model, vae.guide, lab, unl)
            loss.backward()
        return loss.item(), head.grad.clone(), decoder.grad.clone()

    full, half, cut = (loss_and_grads(g, None, unlabelled) for g in (1.0, 0.5, 0.0))
    assert full[0] == half[0] == cut[0]
    assert float(full[1].abs().sum()) > 0 and float(cut[1].abs().sum()) == 0.0
    torch.testing.assert_close(half[1], 0.5 * full[1])
    torch.testing.assert_close(cut[2], full[2])  # the generative model learns as before
    labelled_full, labelled_cut = (loss_and_grads(g, labelled, None) for g in (1.0, 0.0))
    torch.testing.assert_close(labelled_cut[1], labelled_full[1])  # the labels' gradient is kept
    vae.config.classifier_feedback = 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_classifier_feedback_outside_0_1_is_refused(bad):
    with pytest.raises(PyroHeaError, match="classifier_feedback must be in"):
        ModelConfig(classifier_feedback=bad)
