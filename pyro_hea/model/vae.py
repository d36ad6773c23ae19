r"""The semi-supervised VAE (Kingma et al. 2014, "M2") as Pyro programs, with two views of each alloy.

Generative model, for each alloy n with composition :math:`x_n` in at.% and
standardized physics descriptors :math:`f_n = f(x_n)` (size mismatch, VEC,
mixing enthalpy, ...):

.. math::

    y_n &\sim p(y \mid \text{alloy}_n)          &&\text{phase prior over K classes}\\
    z_n &\sim p(z \mid \text{alloy}_n)          &&\text{composition latent, e.g. } \mathcal N(0, I)\\
    x_n &\sim \text{Multinomial}\big(N,\ \text{softmax}(W (z_n + \mu_{y_n}) + b)\big)
        &&\text{the composition, as } N \text{ atoms}\\
    u_n &\sim \mathcal N(0, I_2)                &&\text{descriptor style}\\
    f_n &\sim \mathcal N\big(g(u_n, y_n),\ \text{diag}\,\sigma^2\big)
        &&\text{the descriptors, class-conditional}

- **Composition.** The linear decoder is multinomial logistic PCA: element
  loadings :math:`W`, and each class y sits at its own place :math:`\mu_y` of
  the latent space, so that :math:`z + \mu_y` is a class-conditional latent
  (the characteristic-capturing VAE of Joy et al., ICLR 2021).
  ``decode(z, y)`` at a fixed z and the two values of y gives the same
  alloy's single- and multi-phase versions. ``class_scale`` gives each class
  its own spread too, :math:`\mu_y + \sigma_y \odot z` (an option, not the
  default). ``decoder="mlp"`` gives the published MLP on :math:`[z, y]`.
- **Descriptors.** Whether an alloy forms one phase depends on how its
  elements combine (size mismatch, mixing enthalpy, VEC), not on which
  elements it has. The second likelihood puts the phase where it lives: a
  Gaussian over the 8 standardized descriptors given y and a 2-D style
  :math:`u` (``descriptor_latent_dim``; 0 removes this view). The descriptors
  are a deterministic function of x, so the two views are two likelihoods
  of one alloy (a product of experts), a modelling choice.

Recognition model (guide):

.. math::

    q(y_n \mid x_n) &= \text{Categorical}\big(\text{softmax}(\text{classifier}(f_n))\big)\\
    q(z_n \mid x_n, y_n) &= \mathcal N\big(m(x_n, f_n) - \mu_{y_n},\ \text{diag}\,s^2(x_n, f_n)\big)\\
    q(u_n \mid x_n, y_n) &= \mathcal N\big(h(f_n, y_n),\ \text{diag}\,t^2(f_n, y_n)\big)

The encoder places an alloy at :math:`m(x)` in the class-conditional latent
and subtracts the class position exactly, so that both values of y
reconstruct the composition equally well: the composition alone cannot make
y a composition-cluster bit (with a free per-class shift it did, by tens of
nats per alloy). What y must explain is :math:`\log p(z \mid \ldots)` at
:math:`m(x) - \mu_y` and the descriptor likelihood.

- **Labelled alloys**: y is observed in the model and in the guide, and the
  guide adds the auxiliary classification loss
  :math:`w \cdot -\log q(y_n \mid x_n)` with :math:`w = \alpha N_\text{train} / N_\text{labelled}`,
  that is :math:`\alpha N_\text{train}` times the *mean* loss over labels
  (Kingma et al. put :math:`0.1 N` on the mean). It adapts to the number of
  labels; :meth:`PhaseVAE.set_label_weight` sets it from the training set.
- **Unlabelled alloys**: y is enumerated exactly (parallel enumeration over
  the K classes, ``TraceEnum_ELBO``), so the ELBO sums
  :math:`q(y \mid x)\,[\ldots]` over y instead of sampling it.

The composition enters as :math:`N` atoms, counts :math:`x_n N / 100` with
:math:`N` = ``total_count``. They are not integers; the Multinomial
log-density is evaluated as a continuous relaxation (``validate_args=False``),
which is :math:`N` times the cross-entropy between the composition and the decoder's
element probabilities, plus a term that does not depend on the parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_hea.data.descriptors import DESCRIPTOR_NAMES
from pyro_hea.errors import PyroHeaError
from pyro_hea.model.config import ModelConfig
from pyro_hea.model.networks import (ClassGaussianDescriptors, CompositionDecoder, DescriptorDecoder,
                                     DescriptorEncoder, LatentEncoder, LinearCompositionDecoder,
                                     PhaseClassifier, scale_gradient)
from pyro_hea.model.shared_noise import SharedNoiseNormal
from pyro_hea.model.priors import LatentPrior, PhasePrior, StandardNormal, UniformPhase
from pyro_hea.model.tensors import AlloyTensors, alloy_plate

__all__ = ["ModelConfig", "PhaseVAE", "alloy_plate"]


class PhaseVAE(nn.Module):
    """The generative model p(x, f, y, z, u) and the guide q(y, z, u | x) of pyro-hea.

    Parameters
    ----------
    vocabulary : sequence of str
        Element symbols of the composition vector.
    config : ModelConfig
        Sizes and weights.
    prior_z : LatentPrior, optional
        Prior on z; :class:`~pyro_hea.model.priors.StandardNormal` by default.
    prior_y : PhasePrior, optional
        Prior on y; :class:`~pyro_hea.model.priors.UniformPhase` by default.

    Examples
    --------
    >>> vae = PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2))
    >>> vae.classifier.net[0].in_features  # 8 descriptors, each also over 8 bins
    72
    """

    def __init__(self, vocabulary: Sequence[str], config: ModelConfig | None = None,
                 prior_z: LatentPrior | None = None, prior_y: PhasePrior | None = None):
        super().__init__()
        self.vocabulary = tuple(vocabulary)
        self.config = config or ModelConfig()
        c, n_el, n_f = self.config, len(self.vocabulary), len(DESCRIPTOR_NAMES)
        self.prior_z = prior_z if prior_z is not None else StandardNormal()
        self.prior_y = prior_y if prior_y is not None else UniformPhase()
        if not isinstance(self.prior_z, LatentPrior) or not isinstance(self.prior_y, PhasePrior):
            raise PyroHeaError("prior_z must be a LatentPrior and prior_y a PhasePrior (see pyro_hea.model.priors)")
        self.prior_z.bind(self.vocabulary, c.n_classes, c.latent_dim)
        self.prior_y.bind(self.vocabulary, c.n_classes, c.latent_dim)
        self.decoder = (LinearCompositionDecoder(c.latent_dim, c.n_classes, n_el, class_position=c.class_position,
                                                 class_scale=c.class_scale)
                        if c.decoder == "linear" else CompositionDecoder(c.latent_dim, c.n_classes, n_el, c.hidden))
        widths = c.hidden if c.classifier_hidden is None else c.classifier_hidden
        self.classifier = PhaseClassifier(n_f, n_el, c.n_classes, widths, c.classifier_uses_composition,
                                          c.classifier_bins, c.classifier_members, c.classifier_trees,
                                          c.classifier_tree_depth, c.classifier_forest_trees,
                                          c.classifier_forest_depth)
        # With the linear decoder the encoder undoes the decoder's class positions (and spreads) exactly.
        self.encoder = LatentEncoder(n_el, n_f, c.n_classes, c.latent_dim, c.hidden,
                                     class_latent=self.decoder if c.decoder == "linear" else None)
        if c.descriptor_model == "gaussian":
            self.descriptor_gaussian = ClassGaussianDescriptors(c.n_classes, n_f)
        elif c.descriptor_latent_dim > 0:
            self.descriptor_decoder = DescriptorDecoder(c.descriptor_latent_dim, c.n_classes, n_f,
                                                        c.descriptor_hidden)
            self.descriptor_encoder = DescriptorEncoder(n_f, c.n_classes, c.descriptor_latent_dim,
                                                        c.descriptor_hidden)
        # w, the weight of each label's classification loss; saved with the weights
        self.register_buffer("label_weight", torch.tensor(float(c.alpha)))

    def set_label_weight(self, n_train: int, n_labelled: int) -> float:
        """Set w = alpha * n_train / n_labelled (alpha times n_train on the mean loss); returns w.

        Examples
        --------
        >>> PhaseVAE(["Fe", "Ni"], ModelConfig(alpha=3.0)).set_label_weight(900, 30)
        90.0
        """
        if n_labelled < 1 or n_train < n_labelled:
            raise PyroHeaError(f"need 1 <= n_labelled <= n_train, got {n_labelled}, {n_train}")
        self.label_weight.fill_(self.config.alpha * n_train / n_labelled)
        return float(self.label_weight)

    # ----------------------------------------------------------------- model
    def model(self, labelled: AlloyTensors | None = None, unlabelled: AlloyTensors | None = None):
        """p(x, f, y, z, u): y observed for ``labelled`` alloys, enumerated for ``unlabelled`` ones."""
        pyro.module("phase_vae", self)
        c = self.config
        for part, alloys in (("labelled", labelled), ("unlabelled", unlabelled)):
            if alloys is None or len(alloys) == 0:
                continue
            observed_y = alloys.y if part == "labelled" else None
            with alloy_plate(f"alloys_{part}", alloys):
                y = pyro.sample(f"y_{part}", self.prior_y(alloys), obs=observed_y)
                z = pyro.sample(f"z_{part}", self.prior_z(alloys))
                pyro.sample(
                    f"x_{part}",
                    dist.Multinomial(int(c.total_count), logits=self.decoder(z, self.one_hot(y)),
                                     validate_args=False),
                    obs=alloys.x * (c.total_count / 100.0),
                )
                if c.descriptor_model == "gaussian":
                    loc, tril = self.descriptor_gaussian(self.one_hot(y))
                    pyro.sample(f"f_{part}", dist.MultivariateNormal(loc, scale_tril=tril), obs=alloys.features)
                elif c.descriptor_latent_dim > 0:
                    u = pyro.sample(f"u_{part}", dist.Normal(alloys.x.new_zeros(len(alloys), c.descriptor_latent_dim),
                                                             1.0).to_event(1))
                    loc, scale = self.descriptor_decoder(u, self.one_hot(y))
                    pyro.sample(f"f_{part}", dist.Normal(loc, scale).to_event(1), obs=alloys.features)

    # ----------------------------------------------------------------- guide
    def guide(self, labelled: AlloyTensors | None = None, unlabelled: AlloyTensors | None = None):
        """q(y | x) q(z | x, y) q(u | x, y), with the auxiliary classification loss on labelled alloys."""
        pyro.module("phase_vae", self)
        for part, alloys in (("labelled", labelled), ("unlabelled", unlabelled)):
            if alloys is None or len(alloys) == 0:
                continue
            with alloy_plate(f"alloys_{part}", alloys):
                logits = self.classifier(alloys.x, alloys.features)
                q_y = dist.Categorical(logits=logits if part == "labelled" else
                                       scale_gradient(logits, self.config.classifier_feedback))
                if part == "labelled":
                    y = alloys.y
                    # A guide-side factor enters the loss with a plus sign:
                    # loss += w * -log q(y | x). has_rsample=True: it is a plain loss
                    # term; with False the ELBO would treat it as a non-reparameterized
                    # site and add a score-function term (cost * grad log-factor).
                    pyro.factor("classification_loss", -self.label_weight * self._label_log_prob(alloys, q_y),
                                has_rsample=True)
                else:
                    y = pyro.sample(f"y_{part}", q_y, infer={"enumerate": "parallel"})
                y_onehot = self.one_hot(y)
                loc, scale = self.encoder(alloys.x, alloys.features, y_onehot)
                pyro.sample(f"z_{part}", self._posterior(loc, scale, part))
                if self.config.descriptor_model == "style" and self.config.descriptor_latent_dim > 0:
                    loc_u, scale_u = self.descriptor_encoder(alloys.features, y_onehot)
                    pyro.sample(f"u_{part}", self._posterior(loc_u, scale_u, part))

    def _label_log_prob(self, alloys: AlloyTensors, q_y: dist.Categorical) -> torch.Tensor:
        """log q(y | x) of the labels; for an ensemble the mean over members of log q_m(y | x)."""
        if self.classifier.n_members == 1:
            return q_y.log_prob(alloys.y)
        log_q = torch.log_softmax(self.classifier.member_logits(alloys.x, alloys.features), dim=-1)
        return log_q.gather(-1, alloys.y.long().expand(log_q.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(0)

    def _posterior(self, loc, scale, part: str):
        """A diagonal Normal; for unlabelled alloys with ``shared_noise``, one noise for every enumerated y."""
        if part == "unlabelled" and self.config.shared_noise:
            return SharedNoiseNormal(loc, scale, SharedNoiseNormal.draw_noise(loc, scale)).to_event(1)
        return dist.Normal(loc, scale).to_event(1)

    # ------------------------------------------------------------ utilities
    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(y.long(), self.config.n_classes).float()

    @torch.no_grad()
    def predict_proba(self, alloys: AlloyTensors) -> torch.Tensor:
        """q(y | x) for each alloy, shape (n, K).

        Examples
        --------
        >>> import numpy as np
        >>> from pyro_hea.data.splits import DescriptorScaler
        >>> vae = PhaseVAE(["Fe", "Ni"])
        >>> a = AlloyTensors.from_compositions(np.array([[50., 50.]]), ["Fe", "Ni"],
        ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
        >>> vae.predict_proba(a).shape
        torch.Size([1, 2])
        """
        return torch.softmax(self.classifier(alloys.x, alloys.features), dim=-1)

    @torch.no_grad()
    def encode(self, alloys: AlloyTensors, y: torch.Tensor | None = None):
        """Loc and scale of q(z | x, y); y defaults to the label, else the most probable class."""
        if y is None:
            y = torch.where(alloys.y >= 0, alloys.y, self.predict_proba(alloys).argmax(-1))
        return self.encoder(alloys.x, alloys.features, self.one_hot(y))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
        """Expected composition in at.% for latent z and class y, shape (..., elements)."""
        y = torch.as_tensor(y, dtype=torch.long).expand(z.shape[:-1])
        return 100.0 * torch.softmax(self.decoder(z, self.one_hot(y)), dim=-1)

    @torch.no_grad()
    def estimate_class_positions(self, alloys: AlloyTensors) -> torch.Tensor:
        """Set mu_y to :meth:`latent_class_means` of ``alloys``; returns mu, shape (K, latent_dim).

        Only for ``class_position=False`` with ``estimate_class_position=True``;
        the positions are zero again while the model trains (:meth:`clear_class_positions`).

        Examples
        --------
        >>> import numpy as np
        >>> from pyro_hea.data.splits import DescriptorScaler
        >>> _ = torch.manual_seed(0)
        >>> vae = PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2, class_position=False,
        ...                                          estimate_class_position=True))
        >>> a = AlloyTensors.from_compositions(np.array([[50., 50.], [10., 90.]]), ["Fe", "Ni"],
        ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
        >>> a.y = torch.tensor([0, 1])
        >>> mu = vae.estimate_class_positions(a)
        >>> bool(torch.equal(vae.decoder.class_shift.weight, mu.T))  # the decoder's mu_y are set
        True
        >>> bool(torch.allclose(mu[0], mu[1]))  # one position per class
        False
        """
        if not self.config.estimate_class_position:
            raise PyroHeaError("estimate_class_positions needs ModelConfig(class_position=False, "
                               "estimate_class_position=True)")
        if len(alloys) == 0:
            raise PyroHeaError("estimate_class_positions needs at least one alloy")
        self.clear_class_positions()
        mu = self.latent_class_means(alloys)
        shift = self.decoder.class_shift
        shift.weight.copy_(mu.T)
        shift.estimated.fill_(True)
        return mu

    @torch.no_grad()
    def latent_class_means(self, alloys: AlloyTensors) -> torch.Tensor:
        """Per class, the mean of m(x) = mu_y + sigma_y * loc of q(z | x, y): mu_y's ELBO optimum under N(0, I).

        Labelled alloys weigh 1 for their class, unlabelled ones q(y | x). Linear decoder only.

        Examples
        --------
        >>> import numpy as np
        >>> from pyro_hea.data.splits import DescriptorScaler
        >>> vae = PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=2))
        >>> a = AlloyTensors.from_compositions(np.array([[50., 50.], [10., 90.]]), ["Fe", "Ni"],
        ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
        >>> a.y = torch.tensor([0, 1])
        >>> vae.latent_class_means(a).shape
        torch.Size([2, 2])
        """
        shift = self.encoder.class_shift
        if shift is None:
            raise PyroHeaError("latent_class_means needs the linear decoder (its class positions mu_y)")
        weights = torch.where((alloys.y >= 0)[:, None], self.one_hot(alloys.y.clamp(min=0)), self.predict_proba(alloys))
        missing = [k for k in range(self.config.n_classes) if float(weights[:, k].sum()) <= 0]
        if missing:
            raise PyroHeaError(f"no training alloy of class(es) {missing} to place the class position at")
        y0 = self.one_hot(torch.zeros(len(alloys), dtype=torch.long))
        loc, _ = self.encoder(alloys.x, alloys.features, y0)  # (m(x) - mu_0) / sigma_0
        m = loc * self.decoder.class_scale(y0) + shift(y0)
        return (weights.T @ m) / weights.sum(0)[:, None]

    @torch.no_grad()
    def clear_class_positions(self) -> None:
        """Zero the estimated class positions (training runs without them)."""
        shift = getattr(self.decoder, "class_shift", None)  # the MLP decoder has none
        if shift is not None and hasattr(shift, "estimated"):
            shift.weight.zero_()
            shift.estimated.fill_(False)

    def fit_feature_bins(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Place the classifier's descriptor bins from the training ``features`` (standardized).

        With ``classifier_bin_edges="tree"`` the ``labels`` of the rows (-1
        where unlabelled) place them (see
        :meth:`~pyro_hea.model.networks.PiecewiseLinearEncoding.fit_edges`);
        otherwise they sit at quantiles. With ``classifier_forest_trees > 0`` the
        labelled rows also fit the forest partition (without 2 of them it stays
        unfitted, with a warning). Otherwise ``labels`` is not read.

        Examples
        --------
        >>> vae = PhaseVAE(["Fe", "Ni"], ModelConfig(classifier_bins=4))
        >>> vae.fit_feature_bins(torch.randn(100, 8), labels=torch.randint(0, 2, (100,)))
        >>> vae.classifier.encoding.edges.shape
        torch.Size([8, 5])
        """
        if self.classifier.partition is not None:  # quantiles of every training row; no label is read
            self.classifier.partition.fit_thresholds(torch.as_tensor(features, dtype=torch.float32))
        if self.classifier.forest is not None:  # the supervised partition: labelled rows only
            labels_f = (torch.full((len(features),), -1) if labels is None
                        else torch.as_tensor(labels, dtype=torch.long))
            seed = int(torch.randint(0, 2 ** 31 - 1, ()))  # from torch's seed, so a seeded build is reproducible
            if int((labels_f >= 0).sum()) >= 2:
                self.classifier.forest.fit_forest(torch.as_tensor(features, dtype=torch.float32), labels_f, seed)
            else:
                warnings.warn(f"the forest partition of q(y|x) is not fitted: {int((labels_f >= 0).sum())} labelled "
                              "training rows (it needs 2), so its term stays constant", stacklevel=2)
        if self.classifier.encoding is None:
            return
        if self.config.classifier_bin_edges == "tree":
            if labels is None:
                raise PyroHeaError("classifier_bin_edges='tree' needs the training labels to place the bins")
            labels = torch.as_tensor(labels, dtype=torch.long)
        else:
            labels = None
        self.classifier.encoding.fit_edges(torch.as_tensor(features, dtype=torch.float32), labels)

    def posterior_mode(self, alloys: AlloyTensors, y: torch.Tensor | None = None, steps: int = 50) -> torch.Tensor:
        """The mode of p(z | x, y): maximize log p(x | z, y) + log p(z) from q(z | x, y)'s mean.

        The encoder's mean is a fast first guess, which can be far from the best z on element
        combinations unseen in training; a few L-BFGS iterations over all alloys at once close
        that "amortization gap" (concave in z for the linear decoder and a Gaussian prior).
        ``steps=0`` returns the encoder's mean.

        Returns
        -------
        Tensor (n, latent_dim)

        Examples
        --------
        >>> import numpy as np
        >>> from pyro_hea.data.splits import DescriptorScaler
        >>> vae = PhaseVAE(["Fe", "Ni"], ModelConfig(latent_dim=3))
        >>> a = AlloyTensors.from_compositions(np.array([[50., 50.]]), ["Fe", "Ni"],
        ...                                    DescriptorScaler(np.zeros(8), np.ones(8)))
        >>> vae.posterior_mode(a, steps=5).shape
        torch.Size([1, 3])
        """
        if y is None:
            y = self.predict_proba(alloys).argmax(-1)
        loc, _ = self.encode(alloys, y)
        with torch.no_grad():
            prior = self.prior_z(alloys)
        if steps <= 0 or len(alloys) == 0:
            return loc
        z = loc.clone().requires_grad_(True)
        y_onehot = self.one_hot(y)
        total = float(self.config.total_count)
        weights = [p.requires_grad for p in self.parameters()]
        for p in self.parameters():
            p.requires_grad_(False)
        try:
            optimizer = torch.optim.LBFGS([z], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

            def closure():
                optimizer.zero_grad()
                log_px = (alloys.x * torch.log_softmax(self.decoder(z, y_onehot), -1)).sum() * (total / 100.0)
                loss = -(log_px + prior.log_prob(z).sum())
                loss.backward()
                return loss

            with torch.enable_grad():
                optimizer.step(closure)
        finally:
            for p, flag in zip(self.parameters(), weights):
                p.requires_grad_(flag)
        return z.detach()

    @torch.no_grad()
    def reconstruct(self, alloys: AlloyTensors, refine_steps: int = 50) -> torch.Tensor:
        """Decode the posterior mode of z at the predicted class (labels not used), in at.%.

        ``refine_steps=0`` decodes the encoder's mean instead (the purely
        amortized reconstruction). See :meth:`posterior_mode`.
        """
        y = self.predict_proba(alloys).argmax(-1)
        return self.decode(self.posterior_mode(alloys, y, refine_steps), y)
