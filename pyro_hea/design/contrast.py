r"""The contrast class's position, fitted after training so that the decoder's y means what q(y | x) means.

With the linear decoder an alloy of class t sits at z = m(x) - mu_t, and the
same z decoded with the contrast class c (multi-phase) gives
decode(m(x) + delta), delta = mu_c - mu_t. Training places mu_c by the ELBO,
where it only has to explain log p(z) of the multi-phase alloys; nothing asks
the contrast decode to be an alloy the classifier calls multi-phase. On split
seeds 0-4 the model itself preferred the y = single-phase decode at a fixed z
only 69-87 % of the time (docs/results/design_all_judge.md, contrast_position=False).

:func:`fit_contrast_position` searches delta, after training, for the
agreement

.. math::

    A(\delta) = \frac{1}{n} \sum_i \mathbb 1\big[\, q(t \mid d_t(z_i)) > q(t \mid d_c(z_i, \delta))
    \text{ and } d_c(z_i, \delta) \text{ meets the rules} \big]

over posterior draws z_i of the training alloys of class t that meet the
composition rules (the latent design's own draws, with another seed), where
d_y is the design decode (palette, realized). A (1 + lambda) evolution
strategy with a 1/5th-success-style step size starts at the trained delta and
keeps a proposal only if it raises A, so A never falls. Only the model's
classifier q(y | x) and the training alloys are read, with the labels the
split keeps (an unlabelled alloy counts as its predicted class): the judge,
every hidden label and every held-out label stay out of it. q(y | x) itself is unchanged, and so are every
prediction, every y = t decode and the amortized reconstruction (the encoder
subtracts mu_y exactly); the contrast decodes, the inversion's moves and
log p(z) of class c move, and with them, a little, the refined reconstruction
of alloys predicted multi-phase (the prior's pull on z).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pyro_hea.errors import PyroHeaError

__all__ = ["ContrastFit", "ensure_contrast_position", "fit_contrast_position", "needs_contrast_position"]

#: Added to the seed of the draws, so that they are not the draws of a latent design with the same seed.
_DRAW_SEED = 7919


@dataclass
class ContrastFit:
    """What :func:`fit_contrast_position` did: the agreement before and after, and the offset's size.

    Attributes
    ----------
    target, contrast : int
        The design target class t and the contrast class c whose position moved.
    agreement_before, agreement_after : float
        A(delta) at the trained and at the fitted offset (fractions).
    offset_before, offset_after : float
        |mu_c - mu_t| before and after.
    evaluations : int
        How many offsets were scored.
    """

    target: int
    contrast: int
    agreement_before: float
    agreement_after: float
    offset_before: float
    offset_after: float
    evaluations: int

    def to_dict(self) -> dict:
        return asdict(self)


def fit_contrast_position(designer, target=1, draws: int = 1000, rounds: int = 15, proposals: int = 6,
                          seed: int = 0) -> ContrastFit:
    """Move the contrast class's position mu_c so that q(y | x) agrees with the decoder at a fixed z.

    Parameters
    ----------
    designer : Designer
        On the trained model; its composition rules define a valid contrast decode.
    target : int or str
        The design target t (single-phase); the contrast is ``designer.default_contrast(t)``.
    draws : int
        Posterior draws of the target class's training alloys.
    rounds, proposals : int
        Rounds of the evolution strategy, and offsets proposed per round.
    seed : int
        Seed of the draws and the proposals (the global random state is left alone).

    Returns
    -------
    ContrastFit
        The model's mu_c is set in place.

    Examples
    --------
    >>> fit = fit_contrast_position(designer, rounds=2)  # needs a Designer on a trained model  # doctest: +SKIP
    >>> fit.agreement_after >= fit.agreement_before  # doctest: +SKIP
    True
    """
    vae = designer.model.vae
    shift = getattr(vae.decoder, "class_shift", None)
    if shift is None or vae.config.class_scale:
        raise PyroHeaError("fit_contrast_position needs the linear decoder with class positions and no class_scale")
    for name, value, low in (("draws", draws, 1), ("rounds", rounds, 0), ("proposals", proposals, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise PyroHeaError(f"{name} must be an integer >= {low}, got {value!r}")
    t = designer.class_index(target)
    c = designer.default_contrast(t)
    weight = shift.weight  # (latent_dim, K): column y is mu_y
    trained = weight.detach().clone()
    z = designer.sample_z(int(draws), seed=seed + _DRAW_SEED, target=t)  # not the design's own draws
    own = designer.score(designer.decode(z, t), t, novelty=False, judged=False)
    p_own = own["p_model"].to_numpy()
    scored = own["scored"].to_numpy(bool)
    n = max(int(scored.sum()), 1)

    def agreement(delta: torch.Tensor) -> float:
        with torch.no_grad():
            weight[:, c] = trained[:, t] + delta
        other = designer.score(designer.decode(z, c), t, novelty=False, judged=False)
        agree = (scored & other["scored"].to_numpy(bool) & other["valid"].to_numpy(bool)
                 & (p_own > other["p_model"].to_numpy()))
        return float(agree.sum()) / n

    start = (trained[:, c] - trained[:, t]).clone()
    best, best_value = start.clone(), agreement(start)
    before = best_value
    generator = torch.Generator().manual_seed(int(seed))
    sigma = 0.3 * float(start.norm()) / start.numel() ** 0.5 or 0.1
    evaluations = 1
    try:
        for _ in range(int(rounds)):
            offsets = [best + sigma * torch.randn(start.shape, generator=generator) for _ in range(int(proposals))]
            values = [agreement(d) for d in offsets]
            evaluations += len(values)
            i = int(np.argmax(values))
            if values[i] > best_value:
                best, best_value, sigma = offsets[i], values[i], sigma * 1.2
            else:
                sigma *= 0.8
    except BaseException:
        with torch.no_grad():
            weight.copy_(trained)  # an interrupted search leaves the trained positions
        raise
    with torch.no_grad():
        weight.copy_(trained)
        weight[:, c] = trained[:, t] + best
    return ContrastFit(t, c, before, best_value, float(start.norm()), float(best.norm()), evaluations)


def needs_contrast_position(model) -> bool:
    """Whether the model asks for a contrast position (``ModelConfig.contrast_position``) and has none yet.

    Two classes, the linear decoder with learned class positions and no
    ``class_scale``; a model that records a fit (or why there is none) in
    ``metadata["contrast_position"]`` needs none.

    Examples
    --------
    >>> needs_contrast_position(model)  # needs a trained model  # doctest: +SKIP
    False
    """
    c = model.vae.config
    return bool(c.contrast_position and c.n_classes == 2 and c.decoder == "linear" and c.class_position
                and not c.class_scale and "contrast_position" not in model.metadata)


def ensure_contrast_position(model, df, split=None) -> ContrastFit | None:
    """Fit the contrast position once, on the training alloys of ``split``, if the model needs one.

    The fit uses the default composition rules whatever a designer's own
    rules are, so that the model does not depend on who designs with it,
    and the model's training seed. It is recorded in
    ``model.metadata["contrast_position"]``, which a checkpoint keeps; where
    no training alloy allows a fit, the reason is recorded instead and the
    trained positions stay, with a warning.

    Parameters
    ----------
    model : PhaseModel
        Trained; its multi-phase position is set in place.
    df : pandas.DataFrame
        The dataset it was trained on.
    split : pandas.Series, optional
        Its split; labels are read only where it says ``labelled`` (all rows when None).

    Returns
    -------
    ContrastFit or None
        None where the model needs no fit (:func:`needs_contrast_position`) or none was possible.

    Examples
    --------
    >>> fit = ensure_contrast_position(model, df, split)  # needs a trained model  # doctest: +SKIP
    >>> ensure_contrast_position(model, df, split) is None  # the second call has nothing to do  # doctest: +SKIP
    True
    """
    from pyro_hea.design.designer import Designer, DesignError

    if not needs_contrast_position(model):
        return None
    mode = model.vae.training
    model.vae.eval()
    try:
        designer = Designer(model, df, split, contrast_position=False)  # default rules; its judge is never asked
        fit = fit_contrast_position(designer, "single-phase", seed=model.trainer.config.seed)
    except DesignError as err:  # e.g. no single-phase training alloy meets the rules
        model.metadata["contrast_position"] = {"skipped": str(err)}
        warnings.warn(f"the multi-phase class position keeps its trained value: {err}", stacklevel=2)
        return None
    finally:
        model.vae.train(mode)
    model.metadata["contrast_position"] = fit.to_dict()
    return fit
