"""Training plan: SVI with exact enumeration, validation-based selection.

- Loss: ``TraceEnum_ELBO(max_plate_nesting=1)``; unlabelled y is summed out.
- Optimizer: :class:`pyro.optim.ClippedAdam` (gradient norm clipped at
  ``clip_norm``); the learning rate decays geometrically each step from
  ``lr`` to ``lr * final_lr_fraction`` over ``steps``. The class positions
  mu_y of the linear decoder learn ``class_position_lr_factor`` times faster
  (default 20). Adam moves a parameter by about its learning rate per step
  whatever the gradient's size, and mu_y lives on the scale of the latent
  (the prior's sd, 1), not on that of a network weight (about 0.1): at the
  networks' rate it would travel less than one unit in 250 steps and stay
  near its random start, 3 to 4 units from the point where its gradient
  vanishes (the weighted class mean of the encoder's m(x), measured on
  Pei 2020). At 20 times the rate it reaches that point.
  ``leaf_lr_factor`` does the same for the leaf weights of the classifier's
  random partition (``ModelConfig.classifier_trees``).
- Full batch up to :data:`FULL_BATCH_LIMIT` training alloys (Pei 2020's
  thousand fit easily in one step); a larger set, or a pool of unlabelled
  candidates, is fit in mini-batches of :data:`AUTO_BATCH_SIZE` alloys (or
  ``batch_size``). Each mini-batch draws labelled and unlabelled alloys in
  proportion to their numbers, and the model's plates scale each part up to
  its whole set (``AlloyTensors.population``), so the mini-batch ELBO is an
  unbiased estimate of the full-batch one. A candidate pool is read batch by
  batch (``pool.tensors(indices)``) and never held in memory at once.
- Every ``eval_every`` steps the validation split is scored without moving
  any parameter: the negative ELBO with ``SVI.evaluate_loss`` (the same
  Monte Carlo draws at every evaluation, so that evaluations compare the
  parameters and not the noise) and the log-loss of q(y|x) on the validation
  labels. What is kept depends on ``select_on``:

  - ``"per_network"`` (default): the classifier q(y|x) is kept at its best
    validation log-loss, and the encoder, decoder and priors at their best
    validation negative ELBO. The classifier overfits within a few hundred
    steps while reconstruction keeps improving for thousands, so one
    stopping point would cost one or the other.
  - ``"val_log_loss"``: the whole model at the best log-loss of q(y|x).
  - ``"val_loss"``: the whole model at the best negative ELBO plus the
    classification term.

  Training stops after ``patience`` evaluations without any improvement.
- Everything runs inside a fresh Pyro param-store scope, so two models in
  one process never share parameters.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pyro
import torch
from pyro.infer import SVI, TraceEnum_ELBO
from pyro.optim import ClippedAdam
from tqdm.auto import tqdm

from pyro_hea.errors import PyroHeaError
from pyro_hea.model.vae import PhaseVAE
from pyro_hea.model.tensors import AlloyTensors

__all__ = ["TrainConfig", "TrainingError", "TrainingState", "Trainer", "UnlabelledPool", "make_elbo",
           "SELECTION_RULES", "FULL_BATCH_LIMIT", "AUTO_BATCH_SIZE"]

#: What model selection on the validation split can keep (see the module docstring).
SELECTION_RULES = ("per_network", "val_log_loss", "val_loss")

#: Training sets up to this many alloys (labelled, unlabelled and pool) are fit full batch by default.
FULL_BATCH_LIMIT = 4096

#: The linear decoder's class positions mu_y and spreads sigma_y (see ``TrainConfig.class_position_lr_factor``).
CLASS_POSITION_PARAMS = ("decoder.class_shift.weight", "decoder.class_log_scale")
#: The leaf weights of the classifier's random and forest partitions (``ModelConfig.classifier_trees``, ``classifier_forest_trees``).
LEAF_PARAMS = ("classifier.leaf_logits.weight", "classifier.forest_leaf_logits.weight")

#: Alloys per mini-batch when ``batch_size`` is None and the training set is larger than FULL_BATCH_LIMIT.
AUTO_BATCH_SIZE = 1024


@runtime_checkable
class UnlabelledPool(Protocol):
    """Unlabelled alloys read batch by batch: ``len(pool)`` and ``pool.tensors(indices)``.

    ``tensors`` returns :class:`~pyro_hea.model.tensors.AlloyTensors` (labels
    -1) for the given row indices, in their order.
    """

    def __len__(self) -> int: ...

    def tensors(self, indices: np.ndarray) -> AlloyTensors: ...


class TrainingError(PyroHeaError):
    """Training cannot go on (a NaN or infinite loss, bad settings)."""


@dataclass
class TrainConfig:
    """Settings of the training plan (see the module docstring).

    Examples
    --------
    >>> TrainConfig(steps=100).steps
    100
    """

    steps: int = 250
    lr: float = 5e-3
    final_lr_fraction: float = 0.1
    clip_norm: float = 10.0
    classifier_weight_decay: float = 3.0
    class_position_lr_factor: float = 20.0
    leaf_lr_factor: float = 1.0
    batch_size: int | None = None  # None: full batch up to FULL_BATCH_LIMIT alloys, else AUTO_BATCH_SIZE
    eval_every: int = 25
    patience: int = 30
    select_on: str = "per_network"
    seed: int = 0

    def __post_init__(self):
        for name in ("lr", "final_lr_fraction", "clip_norm", "classifier_weight_decay", "class_position_lr_factor",
                     "leaf_lr_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TrainingError(f"{name} must be a number, got {value!r}")
        for name in ("steps", "eval_every", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TrainingError(f"{name} must be an integer, got {value!r}")
        if self.steps < 1 or self.eval_every < 1 or self.patience < 1:
            raise TrainingError("steps, eval_every and patience must be positive integers")
        if not (0 < self.lr < float("inf") and 0 < self.final_lr_fraction <= 1):  # NaN fails too
            raise TrainingError(f"lr must be positive and final_lr_fraction in (0, 1], got {self.lr}, {self.final_lr_fraction}")
        for name in ("class_position_lr_factor", "leaf_lr_factor"):
            if not (0 < getattr(self, name) < float("inf")):
                raise TrainingError(f"{name} must be positive and finite, got {getattr(self, name)}")
        if self.select_on not in SELECTION_RULES:
            raise TrainingError(f"select_on must be one of {SELECTION_RULES}, got {self.select_on!r}")
        if self.batch_size is not None and self.batch_size < 2:
            raise TrainingError(f"batch_size must be at least 2, got {self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingState:
    """Where training is: the step, the history and the best validation scores so far.

    ``best_step`` / ``best_score`` belong to the main selection rule (the
    classifier's log-loss under ``"per_network"``); ``best_elbo_step`` /
    ``best_elbo_loss`` to the encoder, decoder and priors under
    ``"per_network"``.
    """

    step: int = 0
    best_step: int = 0
    best_score: float = math.inf
    best_elbo_step: int = 0
    best_elbo_loss: float = math.inf
    evals_without_improvement: int = 0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {"step": [], "train_loss": [], "val_loss": [], "val_elbo_loss": [],
                                 "val_log_loss": [], "val_accuracy": []}
    )


def make_elbo(strict: bool = True) -> TraceEnum_ELBO:
    """The ELBO pyro-hea trains with: exact enumeration, one plate level.

    ``strict`` warns when no site is enumerated; it is turned off only to
    score labelled alloys alone, which have nothing to enumerate.

    Examples
    --------
    >>> make_elbo().max_plate_nesting
    1
    """
    return TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=strict)


class Trainer:
    """Fit a :class:`~pyro_hea.model.vae.PhaseVAE` with SVI.

    Parameters
    ----------
    vae : PhaseVAE
    config : TrainConfig

    Examples
    --------
    >>> trainer = Trainer(PhaseVAE(["Fe", "Ni"]), TrainConfig(steps=10))
    >>> trainer.state.step
    0
    """

    def __init__(self, vae: PhaseVAE, config: TrainConfig | None = None):
        self.vae = vae
        self.config = config or TrainConfig()
        self.optim = ClippedAdam(self._optim_args)
        self.elbo = make_elbo()
        self.labelled_elbo = make_elbo(strict=False)
        self.state = TrainingState()
        self.best_weights = copy.deepcopy(vae.state_dict())
        self._param_scope: dict | None = None
        self._pending_optimizer_state: dict = {}

    def _optim_args(self, module_name: str, param_name: str) -> dict:
        """Per-parameter Adam settings: L2 weight decay on the classifier q(y|x) only, a faster mu_y."""
        cfg = self.config
        decay = cfg.final_lr_fraction ** (1.0 / cfg.steps)
        wd = cfg.classifier_weight_decay if param_name.startswith("classifier.") else 0.0
        lr = cfg.lr * self._lr_factor(param_name)
        return {"lr": lr, "lrd": decay, "clip_norm": cfg.clip_norm, "weight_decay": wd}

    def _lr_factor(self, param_name: str) -> float:
        """The factor on ``lr`` of one parameter: ``class_position_lr_factor`` for mu_y and sigma_y,
        ``leaf_lr_factor`` for the classifier's leaf weights, else 1."""
        if param_name in CLASS_POSITION_PARAMS:
            return self.config.class_position_lr_factor
        return self.config.leaf_lr_factor if param_name in LEAF_PARAMS else 1.0

    def _svi(self, labelled_only: bool = False) -> SVI:
        elbo = self.labelled_elbo if labelled_only else self.elbo
        return SVI(self.vae.model, self.vae.guide, self.optim, elbo)

    def evaluate_loss(self, labelled: AlloyTensors | None, unlabelled: AlloyTensors | None = None) -> float:
        """Loss (negative ELBO plus the classification term) per alloy, moving no parameter.

        Examples
        --------
        >>> trainer.evaluate_loss(val_alloys)  # needs a trained model  # doctest: +SKIP
        """
        n = sum(len(a) for a in (labelled, unlabelled) if a is not None)
        labelled_only = unlabelled is None or len(unlabelled) == 0
        with pyro.get_param_store().scope(), torch.no_grad():
            return self._svi(labelled_only).evaluate_loss(labelled, unlabelled) / max(n, 1)

    def optimizer_state(self) -> dict:
        """Adam moments per parameter name, to resume training from a checkpoint."""
        with pyro.get_param_store().scope(self._param_scope):
            # Before the first step after a load, the restored state is still waiting in the optimizer.
            return self.optim.get_state() if self.optim.optim_objs else dict(self._pending_optimizer_state)

    def set_optimizer_state(self, state: dict) -> None:
        """Restore what :meth:`optimizer_state` returned; used on the next step."""
        if state:
            self.optim.set_state(state)
            self._pending_optimizer_state = dict(state)

    def batch_size(self, n_train: int) -> int | None:
        """Alloys per mini-batch for a training set of ``n_train`` (None: full batch).

        Examples
        --------
        >>> trainer = Trainer(PhaseVAE(["Fe", "Ni"]))
        >>> trainer.batch_size(900), trainer.batch_size(10_000)
        (None, 1024)
        """
        if self.config.batch_size is not None:
            return self.config.batch_size if self.config.batch_size < n_train else None
        return None if n_train <= FULL_BATCH_LIMIT else AUTO_BATCH_SIZE

    def fit(self, train: AlloyTensors, val: AlloyTensors | None = None, progress: bool = True,
            pool: UnlabelledPool | None = None) -> TrainingState:
        """Train on ``train`` (labels < 0 are unlabelled) and the unlabelled ``pool``; select on ``val``.

        Calling ``fit`` again continues from the current state (resume).
        """
        cfg = self.config
        labelled, unlabelled = train[train.labelled], train[~train.labelled]
        if len(labelled) == 0:
            raise TrainingError("the training split has no labelled alloy")
        if val is not None and not bool(val.labelled.all()):
            raise TrainingError("every validation alloy needs a label")
        if pool is not None and not isinstance(pool, UnlabelledPool):
            raise TrainingError(f"pool must have len() and .tensors(indices), got {type(pool).__name__}")
        pool = pool if pool is not None and len(pool) > 0 else None
        n_train = len(train) + (len(pool) if pool is not None else 0)
        # w = alpha * N_train / N_labelled: alpha * N_train on the mean classification loss
        self.vae.set_label_weight(n_train, len(labelled))
        if pool is not None and self.batch_size(n_train) is None:  # a small pool joins the full batch once
            unlabelled, pool = AlloyTensors.concat([unlabelled, pool.tensors(np.arange(len(pool)))]), None
        pyro.set_rng_seed(cfg.seed + self.state.step)
        generator = np.random.default_rng(cfg.seed + self.state.step)
        bar = tqdm(total=cfg.steps, initial=self.state.step, disable=not progress, desc="SVI", unit="step")
        threads = torch.get_num_threads()
        # Networks this small train fastest on one thread; more threads
        # oversubscribe a busy CPU and were measured 10x slower.
        torch.set_num_threads(1)
        try:
            self._fit_loop(labelled, unlabelled, pool, val, generator, bar)
        finally:
            torch.set_num_threads(threads)
            bar.close()
        if val is not None:
            self.vae.load_state_dict(self.best_weights)
        return self.state

    def _fit_loop(self, labelled, unlabelled, pool, val, generator, bar) -> None:
        cfg = self.config
        with pyro.get_param_store().scope(self._param_scope) as scope:
            # nothing to enumerate without unlabelled rows
            svi = self._svi(labelled_only=len(unlabelled) == 0 and pool is None)
            running = []
            while self.state.step < cfg.steps:
                batch_l, batch_u = self._batch(labelled, unlabelled, pool, generator)
                try:
                    # Pyro's argument checks cost 14% of a step; the inputs were checked when the
                    # tensors were built, and a NaN still stops training (the loss check below).
                    with pyro.validation_enabled(False), warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message="Encountered NaN")  # reported below, in one line
                        loss = svi.step(batch_l, batch_u)
                except ValueError as err:  # a distribution that checks its own arguments (e.g. a custom prior's)
                    if "invalid values" not in str(err):
                        raise
                    loss = float("nan")
                n = batch_l.size + batch_u.size  # the loss is scaled up to the whole training set
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"the training loss became {loss} at step {self.state.step + 1}; lower the "
                        "learning rate, or check the inputs for extreme values"
                    )
                running.append(loss / n)
                self.state.step += 1
                self._floor_learning_rate()
                bar.update(1)
                if self.state.step % cfg.eval_every == 0 or self.state.step == cfg.steps:
                    stop = self._evaluate(svi, float(np.mean(running)), val)
                    running = []
                    bar.set_postfix(train=f"{self.state.history['train_loss'][-1]:.2f}",
                                    val=f"{self.state.history['val_loss'][-1]:.2f}")
                    if stop:
                        break
            self._param_scope = scope

    def _floor_learning_rate(self) -> None:
        """Keep the decayed learning rate at ``lr * final_lr_fraction`` at least (mu_y's at its factor times that).

        The decay per step is fixed when the optimizer is made, so a resumed run
        (``steps`` raised after a load) would otherwise decay past the floor.
        """
        floor = self.config.lr * self.config.final_lr_fraction
        names = {id(param): name for name, param in self.vae.named_parameters()}
        for param, optim in self.optim.optim_objs.items():
            factor = self._lr_factor(names.get(id(param), ""))
            for group in optim.param_groups:
                group["lr"] = max(group["lr"], floor * factor)

    def _batch(self, labelled, unlabelled, pool, generator):
        """One step's alloys: everything (full batch), or a mini-batch of each part.

        Labelled and unlabelled alloys are drawn without replacement in
        proportion to their numbers (at least one of each), and each part is
        marked with the size of its whole set, which the plates scale it up to.
        """
        n_l, n_u = len(labelled), len(unlabelled) + (len(pool) if pool is not None else 0)
        size = self.batch_size(n_l + n_u)
        if size is None:  # (a pool was joined to the unlabelled rows in fit)
            return labelled, unlabelled
        take_l = min(n_l, max(1, round(size * n_l / (n_l + n_u))))
        take_u = min(n_u, max(1, size - take_l)) if n_u else 0
        batch_l = labelled[generator.choice(n_l, size=take_l, replace=False)].as_minibatch(n_l)
        idx_u = np.sort(generator.choice(n_u, size=take_u, replace=False)) if take_u else np.arange(0)
        in_rows = idx_u[idx_u < len(unlabelled)]
        batch_u = unlabelled[in_rows]
        if pool is not None and len(in_rows) < len(idx_u):
            batch_u = AlloyTensors.concat([batch_u, pool.tensors(idx_u[len(in_rows):] - len(unlabelled))])
        return batch_l, batch_u.as_minibatch(n_u) if take_u else batch_u

    def _evaluate(self, svi: SVI, train_loss: float, val: AlloyTensors | None) -> bool:
        st = self.state
        st.history["step"].append(st.step)
        st.history["train_loss"].append(train_loss)
        if val is None:
            for key in ("val_loss", "val_elbo_loss", "val_log_loss", "val_accuracy"):
                st.history.setdefault(key, []).append(float("nan"))
            self.best_weights = copy.deepcopy(self.vae.state_dict())
            st.best_step = st.best_elbo_step = st.step
            return False
        scores = self.validation_scores(val)
        val_loss, elbo_loss, log_loss = scores["val_loss"], scores["val_elbo_loss"], scores["val_log_loss"]
        for key, value in scores.items():
            st.history.setdefault(key, []).append(value)
        if not math.isfinite(val_loss):
            raise TrainingError(f"the validation loss became {val_loss} at step {st.step}")
        rule = self.config.select_on
        score = val_loss if rule == "val_loss" else log_loss
        improved = False
        if score < st.best_score:
            st.best_score, st.best_step, improved = score, st.step, True
            keep = self._classifier_keys() if rule == "per_network" else None
            self._keep_weights(keep)
        if rule == "per_network" and elbo_loss < st.best_elbo_loss:
            st.best_elbo_loss, st.best_elbo_step, improved = elbo_loss, st.step, True
            self._keep_weights(set(self.vae.state_dict()) - self._classifier_keys())
        st.evals_without_improvement = 0 if improved else st.evals_without_improvement + 1
        return st.evals_without_improvement >= self.config.patience

    @torch.no_grad()
    def validation_scores(self, val: AlloyTensors) -> dict[str, float]:
        """The scores model selection uses, per validation alloy; moves no parameter.

        ``val_loss`` (negative ELBO plus the classification term),
        ``val_elbo_loss`` (the negative ELBO alone), ``val_log_loss`` and
        ``val_accuracy`` of q(y|x). The Monte Carlo draw of z is seeded with
        the training seed, so the same weights always score the same.

        Examples
        --------
        >>> trainer.validation_scores(val_alloys)["val_log_loss"]  # needs a trained model  # doctest: +SKIP
        0.21
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)  # common random numbers across evaluations
            val_loss = self.evaluate_loss(val)
        log_q = torch.log_softmax(self.vae.classifier(val.x, val.features), dim=-1)
        log_loss = float(-log_q.gather(-1, val.y[:, None]).mean())
        return {
            "val_loss": val_loss,
            # The guide's factor adds w * log-loss per alloy; what is left is the negative ELBO.
            "val_elbo_loss": val_loss - float(self.vae.label_weight) * log_loss,
            "val_log_loss": log_loss,
            "val_accuracy": float((log_q.argmax(-1) == val.y).float().mean()),
        }

    def _classifier_keys(self) -> set[str]:
        return {k for k in self.vae.state_dict() if k.startswith("classifier.")}

    def _keep_weights(self, keys: set[str] | None) -> None:
        """Copy the current weights of ``keys`` (all when None) into ``best_weights``."""
        current = self.vae.state_dict()
        for key in current if keys is None else keys:
            self.best_weights[key] = current[key].detach().clone()
