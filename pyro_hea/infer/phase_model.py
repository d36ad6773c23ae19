"""The user-facing model: fit, predict, evaluate, save and load.

:class:`PhaseModel` ties the Pyro module (:class:`~pyro_hea.model.vae.PhaseVAE`),
the training plan (:class:`~pyro_hea.infer.training.Trainer`), the element
vocabulary and the descriptor scaler together.

Examples
--------
>>> from pyro_hea import PhaseModel, load_dataset, paper_split
>>> df = load_dataset("pei2020")
>>> split = paper_split(df, seed=0)
>>> model = PhaseModel.fit(df, split, steps=20, progress=False)
>>> model.predict_proba(["CoCrFeMnNi"]).shape
(1, 2)
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import torch

from pyro_hea import __version__
from pyro_hea.infer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pyro_hea.data.composition import CompositionError, as_composition, to_vector
from pyro_hea.data.datasets import element_vocabulary
from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.infer.metrics import classification_metrics, reconstruction_metrics
from pyro_hea.model.config import FIELDS_ADDED
from pyro_hea.model.vae import ModelConfig, PhaseVAE
from pyro_hea.model.priors import LatentPrior, PhasePrior, make_prior, prior_name
from pyro_hea.data.splits import DescriptorScaler
from pyro_hea.model.tensors import AlloyTensors, CandidateTensors, labels_from_frame
from pyro_hea.infer.training import TrainConfig, Trainer

__all__ = ["PhaseModel", "CLASS_NAMES"]

#: Names of the classes for K = 2 and K = 4.
CLASS_NAMES = {2: ("multi-phase", "single-phase"), 4: ("BCC", "FCC", "HCP", "multi")}


def default_settings() -> dict:
    """The package's default model and training settings, ``{"model": ..., "train": ...}``.

    Benchmarks put it in their cache keys, so that a result cached before a
    default changed is never reused.

    Examples
    --------
    >>> default_settings()["train"]["class_position_lr_factor"]
    20.0
    """
    from dataclasses import asdict

    return {"model": asdict(ModelConfig()), "train": TrainConfig().to_dict()}


def _prior_spec(prior) -> dict:
    return {"name": prior_name(prior), "class": type(prior).__name__, "config": prior.config()}


def _rebuild_prior(kind: str, spec: dict, given):
    if given is not None:
        if type(given).__name__ != spec["class"]:
            raise CheckpointError(
                f"the checkpoint's {kind} prior is {spec['class']}, but a {type(given).__name__} was given"
            )
        return given
    if spec["name"] is None:
        raise CheckpointError(
            f"the checkpoint uses a custom {kind} prior ({spec['class']}); pass an instance of it "
            f"with prior_{kind}=... to load it"
        )
    return make_prior(kind, spec["name"], **spec["config"])


class PhaseModel:
    """A trained pyro-hea model with its vocabulary and descriptor scaler.

    Use :meth:`fit` or :meth:`load` to get one.
    """

    def __init__(self, vae: PhaseVAE, scaler: DescriptorScaler, trainer: Trainer | None = None,
                 metadata: dict | None = None):
        self.vae = vae
        self.scaler = scaler
        self.trainer = trainer or Trainer(vae)
        self.metadata = dict(metadata or {})

    # ------------------------------------------------------------ properties
    @property
    def vocabulary(self) -> tuple[str, ...]:
        return self.vae.vocabulary

    @property
    def n_classes(self) -> int:
        return self.vae.config.n_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES.get(self.n_classes, tuple(str(i) for i in range(self.n_classes)))

    # ------------------------------------------------------------------- fit
    @classmethod
    def build(cls, df: pd.DataFrame, split: pd.Series, model_config: ModelConfig | None = None,
              train_config: TrainConfig | None = None, prior_z: LatentPrior | None = None,
              prior_y: PhasePrior | None = None, **metadata) -> "PhaseModel":
        """An untrained model whose vocabulary and scaler come from ``df``'s training rows."""
        split = pd.Series(split, index=df.index)
        train_rows = split.isin(["labelled", "unlabelled"]).to_numpy()
        if not train_rows.any():
            raise PyroHeaError("the split has no training rows ('labelled' or 'unlabelled')")
        scaler = DescriptorScaler.fit(df.loc[train_rows, list(DESCRIPTOR_NAMES)].to_numpy(dtype=float))
        vae = PhaseVAE(element_vocabulary(df), model_config or ModelConfig(), prior_z, prior_y)
        train_features = scaler.transform(df.loc[train_rows, list(DESCRIPTOR_NAMES)].to_numpy(dtype=float))
        labels = None
        if vae.config.classifier_bin_edges == "tree" or vae.config.classifier_forest_trees > 0:
            # target-aware bins and the forest partition read the labelled rows' labels only
            try:
                labels = labels_from_frame(df.loc[train_rows], vae.config.n_classes)
            except PyroHeaError:
                if vae.config.classifier_bin_edges == "tree":
                    raise
                labels = np.full(int(train_rows.sum()), -1)  # no label column: the forest stays unfitted
            labels[split[train_rows].to_numpy() != "labelled"] = -1
            labels = torch.as_tensor(labels)
        vae.fit_feature_bins(torch.as_tensor(train_features, dtype=torch.float32), labels)
        return cls(vae, scaler, Trainer(vae, train_config or TrainConfig()), metadata)

    @classmethod
    def fit(cls, df: pd.DataFrame, split: pd.Series, model_config: ModelConfig | None = None,
            train_config: TrainConfig | None = None, prior_z: LatentPrior | None = None,
            prior_y: PhasePrior | None = None, progress: bool = True, candidates=None,
            **overrides) -> "PhaseModel":
        """Build a model for ``df`` and train it on its split.

        Parameters
        ----------
        df : DataFrame
            From :func:`~pyro_hea.data.datasets.load_dataset`.
        split : Series
            From :func:`~pyro_hea.data.splits.paper_split`. Labels of ``labelled``
            rows are used; ``unlabelled`` rows are used without labels; ``val``
            selects the model; ``test`` is not touched.
        model_config, train_config : optional
            Settings; keyword ``overrides`` set single fields of either
            (e.g. ``steps=500, latent_dim=4``).
        prior_z, prior_y : optional
            Prior modules (see :mod:`pyro_hea.model.priors`).
        progress : bool
            Show a progress bar.
        candidates : optional
            More unlabelled alloys: anything with ``len()``, ``vocabulary``
            (the model's, :func:`~pyro_hea.data.datasets.element_vocabulary`
            of ``df``) and ``take(indices)`` returning at.% rows, such as a
            candidate pool. Read batch by batch (see
            :mod:`pyro_hea.infer.training`).
        """
        model_config = model_config or ModelConfig()
        train_config = train_config or TrainConfig()
        for key, value in overrides.items():
            target = model_config if hasattr(model_config, key) else train_config if hasattr(train_config, key) else None
            if target is None:
                raise PyroHeaError(f"unknown setting {key!r} for PhaseModel.fit")
            setattr(target, key, value)
        model_config.__post_init__()
        train_config.__post_init__()
        torch.manual_seed(train_config.seed)  # the networks' initial weights
        model = cls.build(df, split, model_config, train_config, prior_z, prior_y)
        model.train(df, split, progress=progress, candidates=candidates)
        return model

    def train(self, df: pd.DataFrame, split: pd.Series, progress: bool = True, candidates=None) -> "PhaseModel":
        """Train (or resume training) on ``df``'s labelled and unlabelled rows (and ``candidates``), selecting on val."""
        split = pd.Series(split, index=df.index)
        tensors = self.tensors(df)
        train_rows = split.isin(["labelled", "unlabelled"]).to_numpy()
        train = tensors[np.flatnonzero(train_rows)]
        hide = torch.tensor(split[train_rows].to_numpy() == "unlabelled")
        train.y = torch.where(hide, torch.full_like(train.y, -1), train.y)
        val_rows = np.flatnonzero((split == "val").to_numpy() & (tensors.y.numpy() >= 0))
        val = tensors[val_rows] if len(val_rows) else None
        classes = sorted(set(train.y[train.y >= 0].tolist()))
        if len(classes) < 2:
            found = "no labelled alloy" if not classes else f"only class {self.class_names[classes[0]]!r}"
            raise PyroHeaError(
                f"the labelled training alloys hold {found}; a classifier needs at least two of the "
                f"{self.n_classes} classes {list(self.class_names)}"
            )
        pool = None if candidates is None else CandidateTensors(candidates, self.vocabulary, self.scaler)
        self.vae.clear_class_positions()  # (estimated ones) training runs without them
        self.trainer.fit(train, val, progress=progress, pool=pool)
        if self.vae.config.estimate_class_position:
            mode = self.vae.training
            self.vae.eval()
            self.vae.estimate_class_positions(train)
            self.vae.train(mode)
        return self

    # ------------------------------------------------------------ prediction
    def tensors(self, alloys) -> AlloyTensors:
        """:class:`AlloyTensors` for a dataset table, or a list of formulas / compositions."""
        if isinstance(alloys, AlloyTensors):
            return alloys
        if isinstance(alloys, pd.DataFrame):
            outside = sorted({el for comp in alloys["composition"] for el in comp} - set(self.vocabulary))
            if outside:
                shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
                hint = ("; was the model trained on another dataset?"
                        if len(outside) > 5 else "")
                raise CompositionError(f"{len(outside)} element(s) ({shown}) are outside the model's vocabulary "
                                       f"of {len(self.vocabulary)} elements{hint}")
            return AlloyTensors.from_frame(alloys, self.vocabulary, self.scaler, self.n_classes)
        if isinstance(alloys, (str, dict)):
            alloys = [alloys]
        x = np.stack([to_vector(as_composition(a), self.vocabulary) for a in alloys])
        return AlloyTensors.from_compositions(x, self.vocabulary, self.scaler)

    def predict_proba(self, alloys) -> np.ndarray:
        """q(y | x) for each alloy, shape (n, K); column 1 is single-phase for K = 2.

        Examples
        --------
        >>> model.predict_proba(["Al0.5CoCrFeNi", "NbMoTaW"]).shape  # needs a trained model  # doctest: +SKIP
        (2, 2)
        """
        self.vae.eval()
        return self.vae.predict_proba(self.tensors(alloys)).numpy().astype(float)

    def evaluate(self, df: pd.DataFrame, rows=None) -> dict[str, float]:
        """Classification, calibration, reconstruction metrics and ELBO on labelled ``rows`` of ``df``."""
        sub = df if rows is None else df[np.asarray(rows)]
        t = self.tensors(sub)
        t = t[t.labelled]
        if len(t) == 0:
            raise PyroHeaError("no labelled alloy to evaluate on")
        out = classification_metrics(t.y.numpy(), self.vae.predict_proba(t).numpy())
        out.update(reconstruction_metrics(t.x.numpy(), self.vae.reconstruct(t).numpy()))
        amortized = reconstruction_metrics(t.x.numpy(), self.vae.reconstruct(t, refine_steps=0).numpy())
        out.update({f"{key}_amortized": value for key, value in amortized.items()})
        # A one-draw Monte Carlo estimate: drawn from a fixed seed in a forked RNG, so the same
        # model always reports the same number and the caller's random stream is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out["elbo"] = -self.trainer.evaluate_loss(t)
        return out

    # ---------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the model to one checkpoint file, atomically."""
        meta = {
            "package_version": __version__,
            "vocabulary": list(self.vocabulary),
            "model_config": self.vae.config.to_dict(),
            "train_config": self.trainer.config.to_dict(),
            "prior_z": _prior_spec(self.vae.prior_z),
            "prior_y": _prior_spec(self.vae.prior_y),
            "scaler_mean": self.scaler.mean.tolist(),
            "scaler_scale": self.scaler.scale.tolist(),
            "training_state": {k: v for k, v in vars(self.trainer.state).items()},
            "metadata": self.metadata,
        }
        save_checkpoint(path, {
            "meta_json": json.dumps(meta),
            "weights": self.vae.state_dict(),
            "best_weights": self.trainer.best_weights,
            "optimizer": self.trainer.optimizer_state(),
        })

    @classmethod
    def load(cls, path: str | os.PathLike, prior_z: LatentPrior | None = None,
             prior_y: PhasePrior | None = None) -> "PhaseModel":
        """Load a checkpoint written by :meth:`save`.

        Pass ``prior_z`` / ``prior_y`` instances when the model was trained
        with custom prior classes.
        """
        data = load_checkpoint(path)
        try:
            meta = json.loads(data["meta_json"])
            model_config = ModelConfig(**{**FIELDS_ADDED, **meta["model_config"]})
            train_config = TrainConfig(**meta["train_config"])
            pz = _rebuild_prior("z", meta["prior_z"], prior_z)
            py = _rebuild_prior("y", meta["prior_y"], prior_y)
            vae = PhaseVAE(meta["vocabulary"], model_config, pz, py)
            vae.load_state_dict(data["weights"])
            scaler = DescriptorScaler(np.array(meta["scaler_mean"], dtype=float),
                                      np.array(meta["scaler_scale"], dtype=float))
            if scaler.mean.shape != scaler.scale.shape or scaler.scale.shape != (len(DESCRIPTOR_NAMES),):
                raise TypeError(f"the descriptor scaler has shape {scaler.scale.shape}, not ({len(DESCRIPTOR_NAMES)},)")
            if not (np.isfinite(scaler.mean).all() and np.isfinite(scaler.scale).all() and (scaler.scale > 0).all()):
                raise CheckpointError(f"checkpoint {str(path)!r} has a descriptor scaler with a zero, negative or "
                                      "non-finite scale; it cannot be used")
            trainer = Trainer(vae, train_config)
            for key, value in meta["training_state"].items():
                if not hasattr(trainer.state, key):
                    raise KeyError(f"unknown training state {key!r}")
                setattr(trainer.state, key, value)
            trainer.best_weights = data.get("best_weights", vae.state_dict())
            expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
            if {k: tuple(v.shape) for k, v in trainer.best_weights.items()} != expected:
                raise RuntimeError("its best weights do not match the network's parameters")
            trainer.set_optimizer_state(data.get("optimizer", {}))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            if isinstance(err, CheckpointError):
                raise
            detail = " ".join(str(err).split())  # one line: load_state_dict lists mismatches on many
            raise CheckpointError(f"checkpoint {str(path)!r} does not fit this version of pyro-hea: {detail[:300]}") from None
        return cls(vae, scaler, trainer, meta.get("metadata", {}))
