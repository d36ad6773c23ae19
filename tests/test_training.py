"""The training plan: evaluation moves nothing, selection on validation, seeds, the NaN guard."""

from __future__ import annotations

import copy
import math

import numpy as np
import pyro
import pytest
import torch

from pyro_hea import ModelConfig, PhaseModel, TrainConfig, Trainer, paper_split
from pyro_hea.infer.training import TrainingError
from pyro_hea.model.tensors import AlloyTensors

SMALL = dict(hidden=[16], latent_dim=2, lr=1e-2, progress=False)



@pytest.fixture(scope="module")
def sub(pei):
    return pei.sample(240, random_state=2).reset_index(drop=True)


@pytest.fixture(scope="module")
def split(sub):
    return paper_split(sub, seed=0)


@pytest.fixture(scope="module")
def trained(sub, split):
    return PhaseModel.fit(sub, split, steps=30, eval_every=5, patience=100, seed=0, **SMALL)


def _parts(model, sub, split):
    t = model.tensors(sub)
    labelled = t[np.flatnonzero((split == "labelled").to_numpy())]
    unlabelled = t[np.flatnonzero((split == "unlabelled").to_numpy())].hide_labels()
    val = t[np.flatnonzero((split == "val").to_numpy())]
    return labelled, unlabelled, val


def _assert_same_tree(a, b, path="state"):
    """Bit-for-bit equality of nested dicts / lists of tensors and numbers."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_same_tree(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, path


# ------------------------------------------------------------------ evaluation is read-only
def test_evaluation_leaves_every_parameter_unchanged(trained, sub, split):
    model, trainer = trained, trained.trainer
    labelled, unlabelled, val = _parts(model, sub, split)
    weights = copy.deepcopy(model.vae.state_dict())
    best = copy.deepcopy(trainer.best_weights)
    optimizer = copy.deepcopy(trainer.optimizer_state())
    state = copy.deepcopy(vars(trainer.state))
    global_store = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    assert optimizer and len(weights) > 0  # there is something to compare

    losses = [trainer.evaluate_loss(val), trainer.evaluate_loss(labelled, unlabelled)]
    metrics = model.evaluate(sub, (split == "val").to_numpy())
    model.predict_proba(sub)

    assert all(math.isfinite(x) for x in losses) and math.isfinite(metrics["elbo"])
    _assert_same_tree(model.vae.state_dict(), weights)
    _assert_same_tree(trainer.best_weights, best)
    _assert_same_tree(trainer.optimizer_state(), optimizer)
    _assert_same_tree(vars(trainer.state), state)
    _assert_same_tree({k: v.detach() for k, v in pyro.get_param_store().items()}, global_store)


def test_reported_elbo_is_reproducible_and_leaves_the_rng_alone(trained, sub, split):
    rows = (split == "val").to_numpy()
    torch.manual_seed(5)
    first = trained.evaluate(sub, rows)
    after_first = torch.rand(3)
    torch.manual_seed(5)
    second = trained.evaluate(sub, rows)
    assert first == second
    assert torch.equal(torch.rand(3), after_first)


# ------------------------------------------------------------ selection and the lr schedule
def test_each_network_is_selected_on_its_own_validation_score(trained, sub, split):
    st, trainer = trained.trainer.state, trained.trainer
    assert trainer.config.select_on == "per_network"
    history = st.history
    assert history["step"] == [5, 10, 15, 20, 25, 30]
    assert st.best_step == history["step"][int(np.argmin(history["val_log_loss"]))]
    assert st.best_elbo_step == history["step"][int(np.argmin(history["val_elbo_loss"]))]
    _assert_same_tree(trained.vae.state_dict(), trainer.best_weights)
    # The weights left in the model give exactly the best validation log-loss of q(y|x)
    # and, separately, the best validation negative ELBO.
    _, _, val = _parts(trained, sub, split)
    scores = trainer.validation_scores(val)
    assert scores["val_log_loss"] == pytest.approx(min(history["val_log_loss"]), rel=1e-5)
    assert scores["val_elbo_loss"] == pytest.approx(min(history["val_elbo_loss"]), rel=1e-5)


def test_per_network_selection_can_combine_different_steps(sub, split):
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[16], latent_dim=4),
                             TrainConfig(steps=12, eval_every=3, patience=100))
    initial = copy.deepcopy(model.vae.state_dict())
    model.trainer.state.best_score = -math.inf  # the classifier can never improve: it stays initial
    model.train(sub, split, progress=False)
    weights = model.vae.state_dict()
    for key, value in weights.items():
        if key.startswith("classifier."):
            assert torch.equal(value, initial[key]), key
    assert any(not torch.equal(weights[k], initial[k]) for k in weights if k.startswith("decoder."))


def test_selection_of_the_whole_model_on_validation_log_loss(sub, split):
    model = PhaseModel.fit(sub, split, steps=12, eval_every=3, patience=100, select_on="val_log_loss", seed=0, **SMALL)
    history, st = model.trainer.state.history, model.trainer.state
    assert st.best_step == history["step"][int(np.argmin(history["val_log_loss"]))]
    _assert_same_tree(model.vae.state_dict(), model.trainer.best_weights)
    _, _, val = _parts(model, sub, split)
    assert model.trainer.validation_scores(val)["val_loss"] == pytest.approx(
        history["val_loss"][int(np.argmin(history["val_log_loss"]))], rel=1e-5)


def test_selection_on_the_validation_loss(sub, split):
    model = PhaseModel.fit(sub, split, steps=12, eval_every=3, patience=100, select_on="val_loss", seed=0, **SMALL)
    history, st = model.trainer.state.history, model.trainer.state
    assert st.best_step == history["step"][int(np.argmin(history["val_loss"]))]
    _assert_same_tree(model.vae.state_dict(), model.trainer.best_weights)


def _rates(trainer):
    """{is the class position mu_y: [learning rates]} over the optimizer's parameters."""
    position = trainer.vae.decoder.class_shift.weight
    rates = {True: [], False: []}
    for param, optim in trainer.optim.optim_objs.items():
        rates[param is position] += [g["lr"] for g in optim.param_groups]
    return rates


def test_learning_rate_decays_geometrically_to_the_final_fraction(trained):
    cfg = trained.trainer.config
    groups = [g for s in trained.trainer.optimizer_state().values() for g in s["param_groups"]]
    assert groups
    rates = _rates(trained.trainer)
    assert len(rates[True]) == 1 and len(rates[False]) == len(groups) - 1
    for rate in rates[False]:
        assert rate == pytest.approx(cfg.lr * cfg.final_lr_fraction, rel=1e-6)
    # the class positions mu_y: the same decay from class_position_lr_factor times the rate
    assert rates[True][0] == pytest.approx(cfg.class_position_lr_factor * cfg.lr * cfg.final_lr_fraction, rel=1e-6)


def _class_positions_and_their_optimum(model, sub, split):
    """mu_y, and where the ELBO's gradient on mu_y vanishes for the N(0, I) prior: the class means of
    the encoder's m(x) over the training alloys (``PhaseVAE.latent_class_means``)."""
    training = split.isin(["labelled", "unlabelled"])
    t = model.tensors(sub[training.to_numpy()])
    t.y = torch.where(torch.as_tensor(split[training].to_numpy() == "labelled"), t.y, torch.full_like(t.y, -1))
    return model.vae.decoder.class_shift.weight.detach().T, model.vae.latent_class_means(t)


def test_the_class_spreads_learn_at_the_class_positions_rate(sub, split):
    model = PhaseModel.fit(sub, split, steps=3, eval_every=3, seed=0, class_scale=True, **SMALL)
    cfg, vae = model.trainer.config, model.vae
    fast = {id(vae.decoder.class_shift.weight), id(vae.decoder.class_log_scale)}
    rates = {True: [], False: []}
    for param, optim in model.trainer.optim.optim_objs.items():
        rates[id(param) in fast] += [g["lr"] for g in optim.param_groups]
    assert len(rates[True]) == 2 and rates[False]
    decayed = cfg.lr * cfg.final_lr_fraction ** (3 / cfg.steps)
    assert rates[True] == pytest.approx([cfg.class_position_lr_factor * decayed] * 2, rel=1e-6)
    assert rates[False] == pytest.approx([decayed] * len(rates[False]), rel=1e-6)


def test_the_leaf_weights_learn_at_leaf_lr_factor_times_the_rate_and_nothing_else_does(sub, split):
    model = PhaseModel.fit(sub, split, steps=3, eval_every=3, seed=0, classifier_trees=8, classifier_tree_depth=2,
                           leaf_lr_factor=7.0, **SMALL)
    cfg, vae = model.trainer.config, model.vae
    # the random partition's leaf weights and the forest partition's
    leaves = {id(vae.classifier.leaf_logits.weight), id(vae.classifier.forest_leaf_logits.weight)}
    position = vae.decoder.class_shift.weight
    decayed = cfg.lr * cfg.final_lr_fraction ** (3 / cfg.steps)
    seen, n_leaf_params = set(), 0
    for param, optim in model.trainer.optim.optim_objs.items():
        n_leaf_params += id(param) in leaves
        factor = 7.0 if id(param) in leaves else cfg.class_position_lr_factor if param is position else 1.0
        seen.add(factor)
        assert [g["lr"] for g in optim.param_groups] == pytest.approx([factor * decayed], rel=1e-6)
    assert seen == {7.0, cfg.class_position_lr_factor, 1.0}  # the leaf weights are optimized, at their rate
    assert n_leaf_params == 2


def test_a_bad_leaf_lr_factor_is_refused_in_one_line():
    for bad in (0, -1.0, float("inf"), float("nan"), "fast"):
        with pytest.raises(TrainingError, match="leaf_lr_factor"):
            TrainConfig(leaf_lr_factor=bad)


def test_the_class_positions_reach_the_point_where_their_gradient_vanishes(sub, split):
    # Adam moves each parameter by about its learning rate per step: at the networks' rate mu_y
    # stays near its random start; at class_position_lr_factor times it, it reaches its optimum.
    gaps = {}
    for factor in (1.0, 20.0):
        model = PhaseModel.fit(sub, split, steps=250, seed=0, class_position_lr_factor=factor,
                               hidden=[16], latent_dim=4, progress=False)
        mu, optimum = _class_positions_and_their_optimum(model, sub, split)
        gaps[factor] = float((mu - optimum).norm(dim=1).max() / optimum.norm(dim=1).max())
    assert gaps[20.0] < 0.1 < gaps[1.0], gaps


def test_early_stopping_after_patience_evaluations_without_improvement(sub, split):
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[16]),
                             TrainConfig(steps=60, eval_every=3, patience=2, lr=1e-2))
    initial = copy.deepcopy(model.vae.state_dict())
    model.trainer.state.best_score = -math.inf  # nothing can improve on these
    model.trainer.state.best_elbo_loss = -math.inf
    model.train(sub, split, progress=False)
    assert model.trainer.state.step == 6  # two evaluations, at steps 3 and 6, then stop
    assert model.trainer.state.history["step"] == [3, 6]
    _assert_same_tree(model.vae.state_dict(), initial)  # the best (initial) weights are restored


# --------------------------------------------------------------------------- seeds
def test_same_seed_gives_identical_models_and_metrics(trained, sub, split):
    torch.manual_seed(123)  # disturb the global stream: the fit must seed itself
    torch.rand(11)
    again = PhaseModel.fit(sub, split, steps=30, eval_every=5, patience=100, seed=0, **SMALL)
    _assert_same_tree(again.vae.state_dict(), trained.vae.state_dict())
    _assert_same_tree(again.trainer.state.history, trained.trainer.state.history)
    rows = (split == "val").to_numpy()
    assert again.evaluate(sub, rows) == trained.evaluate(sub, rows)


def test_different_seed_gives_different_weights(trained, sub, split):
    other = PhaseModel.fit(sub, split, steps=5, eval_every=5, seed=1, **SMALL)
    first = PhaseModel.fit(sub, split, steps=5, eval_every=5, seed=0, **SMALL)
    w0, w1 = first.vae.state_dict(), other.vae.state_dict()
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)


def test_two_models_in_one_process_do_not_share_parameters(trained, sub, split):
    before = trained.predict_proba(sub)
    other = PhaseModel.fit(sub, split, steps=5, eval_every=5, seed=3, progress=False, hidden=[8], latent_dim=3)
    np.testing.assert_array_equal(trained.predict_proba(sub), before)
    assert other.vae.decoder.latent.in_features == 3
    # Each keeps training in its own parameter scope (a shared store would mix shapes).
    resumed = copy.deepcopy(trained)
    resumed.trainer.config.steps = 35
    resumed.train(sub, split, progress=False)
    assert resumed.trainer.state.step == 35
    other.trainer.config.steps = 8
    other.train(sub, split, progress=False)
    assert other.trainer.state.step == 8


def test_weight_decay_applies_to_the_classifier_only(sub, split):
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[8]), TrainConfig(classifier_weight_decay=0.7))
    args = model.trainer._optim_args
    assert args("phase_vae", "classifier.net.0.weight")["weight_decay"] == 0.7
    for name in ("encoder.net.0.weight", "decoder.latent.weight", "decoder.class_shift.weight",
                 "descriptor_decoder.log_scale"):
        assert args("phase_vae", name)["weight_decay"] == 0.0
    # and it acts: with a large decay the classifier's weights shrink over the same steps
    norms = {}
    for wd in (0.0, 50.0):
        fit = PhaseModel.fit(sub, split, steps=20, eval_every=20, seed=0, classifier_weight_decay=wd, **SMALL)
        norms[wd] = float(sum(p.detach().norm() for p in fit.vae.classifier.parameters()))
    assert norms[50.0] < norms[0.0]


# ------------------------------------------------------------------------ mini-batches
def test_mini_batches(sub, split):
    model = PhaseModel.fit(sub, split, steps=10, eval_every=5, batch_size=32, seed=0, **SMALL)
    assert model.trainer.state.step == 10
    assert all(math.isfinite(x) for x in model.trainer.state.history["train_loss"])


# ------------------------------------------------------------------------- NaN guard
def test_nan_input_stops_training_at_step_one(sub, split):
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[8]), TrainConfig(steps=5, eval_every=100))
    labelled, unlabelled, _ = _parts(model, sub, split)
    labelled.features[3, 0] = float("nan")
    train = labelled  # labelled alloys only are enough
    with pytest.raises(TrainingError, match=r"became nan at step 1\b"):
        model.trainer.fit(train, None, progress=False)


def test_nan_during_training_names_the_step(sub, split, monkeypatch):
    model = PhaseModel.build(sub, split, ModelConfig(hidden=[8]), TrainConfig(steps=20, eval_every=100, lr=1e-2))
    trainer = model.trainer
    decoder_forward = model.vae.decoder.forward

    def poisoned(z, y_onehot):
        logits = decoder_forward(z, y_onehot)
        return logits * float("nan") if trainer.state.step >= 3 else logits  # the 4th step goes wrong

    monkeypatch.setattr(model.vae.decoder, "forward", poisoned)
    labelled, unlabelled, _ = _parts(model, sub, split)
    with pytest.raises(TrainingError, match=r"became nan at step 4\b"):
        trainer.fit(AlloyTensors.concat([labelled, unlabelled]), None, progress=False)
    assert trainer.state.step == 3


# ------------------------------------------------------------------------ bad settings
@pytest.mark.parametrize("bad", [{"steps": 0}, {"lr": 0.0}, {"final_lr_fraction": 1.5}, {"batch_size": 1},
                                 {"select_on": "test_accuracy"}, {"class_position_lr_factor": 0.0},
                                 {"class_position_lr_factor": -1.0}, {"class_position_lr_factor": float("nan")},
                                 {"class_position_lr_factor": float("inf")}, {"lr": "fast"},
                                 {"class_position_lr_factor": True}, {"steps": 2.5}, {"patience": "10"}])
def test_train_config_rejects_bad_settings(bad):
    with pytest.raises(TrainingError):
        TrainConfig(**bad)


def test_fit_needs_labelled_training_alloys_and_labelled_validation(trained, sub, split):
    labelled, unlabelled, val = _parts(trained, sub, split)
    trainer = Trainer(trained.vae, TrainConfig(steps=1))
    with pytest.raises(TrainingError, match="no labelled alloy"):
        trainer.fit(unlabelled, None, progress=False)
    with pytest.raises(TrainingError, match="every validation alloy needs a label"):
        trainer.fit(labelled, val.hide_labels(), progress=False)


def test_unknown_fit_setting_is_refused(sub, split):
    with pytest.raises(Exception, match="unknown setting 'epochz'"):
        PhaseModel.fit(sub, split, epochz=3, progress=False)


def test_progress_bar_only_when_asked(sub, split, capsys):
    PhaseModel.fit(sub, split, steps=2, eval_every=2, seed=0, **SMALL)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    PhaseModel.fit(sub, split, steps=2, eval_every=2, seed=0, **{**SMALL, "progress": True})
    assert "SVI" in capsys.readouterr().err


# ------------------------------------------------------------------------- honest protocol
def test_the_training_loss_is_trace_enum_elbo_with_one_plate(trained):
    """Training must sum y out exactly: the SVI objective is TraceEnum_ELBO, never a sampling ELBO."""
    from pyro.infer import TraceEnum_ELBO

    trainer = trained.trainer
    assert type(trainer.elbo) is TraceEnum_ELBO and trainer.elbo.max_plate_nesting == 1
    svi = trainer._svi()
    assert svi.loss.__self__ is trainer.elbo and svi.loss.__func__ is TraceEnum_ELBO.loss
    assert svi.loss_and_grads.__func__ is TraceEnum_ELBO.loss_and_grads


def test_flipping_the_hidden_labels_of_unlabelled_rows_leaves_the_weights_bit_identical(sub, split):
    """The labels of the unlabelled rows are never read: flip them all and training is the same."""
    flipped = sub.copy()
    hidden = (split == "unlabelled").to_numpy() & flipped["single_phase"].notna().to_numpy()
    assert hidden.sum() > 10
    flipped.loc[hidden, "single_phase"] = 1 - flipped.loc[hidden, "single_phase"]
    flipped.loc[hidden, "phase"] = np.where(flipped.loc[hidden, "phase"] == "multi", "FCC", "multi")
    a = PhaseModel.fit(sub, split, steps=12, eval_every=4, seed=3, **SMALL)
    b = PhaseModel.fit(flipped, split, steps=12, eval_every=4, seed=3, **SMALL)
    sa, sb = a.vae.state_dict(), b.vae.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert a.trainer.state.history == b.trainer.state.history


def test_the_label_weight_is_alpha_times_n_train_on_the_mean_loss(trained, split):
    n_train = int(split.isin(["labelled", "unlabelled"]).sum())
    n_labelled = int((split == "labelled").sum())
    w = float(trained.vae.label_weight)
    assert w == pytest.approx(trained.vae.config.alpha * n_train / n_labelled)
