"""The settings of the model, :class:`ModelConfig` (sizes, weights and switches of :mod:`pyro_hea.model.vae`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pyro_hea.errors import PyroHeaError

__all__ = ["ModelConfig", "DECODERS", "DESCRIPTOR_MODELS", "BIN_EDGES"]

DECODERS = ("linear", "mlp")
DESCRIPTOR_MODELS = ("style", "gaussian")
BIN_EDGES = ("quantile", "tree")


@dataclass
class ModelConfig:
    """Sizes and weights of the model.

    Attributes
    ----------
    n_classes : int
        K = 2 (single- vs multi-phase) or 4 (BCC / FCC / HCP / multi).
    latent_dim : int
        Dimension of z, the composition latent.
    hidden : list of int
        Hidden layer widths of the classifier and the composition encoder
        (and of the MLP decoder).
    alpha : float
        Weight of the auxiliary classification loss: the loss adds
        ``alpha * N_train`` times the mean cross-entropy over the labelled
        alloys, that is ``alpha * N_train / N_labelled`` per label.
    total_count : int
        N, the number of atoms an alloy's composition counts as in the
        Multinomial likelihood: the weight of reconstruction against the
        KL terms (100 treats at.% as counts).
    classifier_uses_composition : bool
        Feed q(y|x) the composition as well as the descriptors.
    classifier_bins : int
        Bins of the piecewise-linear encoding of each descriptor in q(y|x)
        (0: the raw standardized descriptors only). Edges are set from the
        training descriptors by :meth:`PhaseVAE.fit_feature_bins` (see
        ``classifier_bin_edges``).
    classifier_bin_edges : {"quantile", "tree"}
        Where those edges go: ``"quantile"``, the quantiles of all training
        descriptors (labelled and unlabelled); ``"tree"``, the thresholds of a
        decision tree on each descriptor of the labelled alloys (target-aware
        bins), topped up with quantiles.
    classifier_members : int
        M, the networks of q(y|x): with M > 1 a deep ensemble whose members
        each carry their own classification loss and whose probabilities are
        averaged (Lakshminarayanan et al., NeurIPS 2017).
    classifier_trees, classifier_tree_depth : int
        T random oblivious trees of depth d on the descriptors, split at quantiles of all training
        rows, whose leaves add a linear term to q(y|x) (``RandomPartitionEncoding``; default
        1,000 of depth 5, chosen on validation in session 24; T = 0: none, the default until then).
    classifier_forest_trees, classifier_forest_depth : int
        T random-forest trees of depth at most d, fitted on the labelled training alloys, whose
        leaves add another linear term to q(y|x) (``ForestPartitionEncoding``, a supervised
        partition; default 500 of depth 3, chosen on validation in session 28; 0: none, the default
        until then).
    classifier_hidden : list of int or None
        Hidden widths of each classifier network (None: ``hidden``; ``[]``: linear).
    decoder : {"linear", "mlp"}
        ``"linear"``: element logits ``W (z + mu_y) + b``, which reconstructs
        element combinations never seen in training; ``"mlp"``: the
        published MLP decoder on ``[z, y]``.
    descriptor_latent_dim : int
        Dimension of u, the style latent of the descriptor likelihood
        p(f | y, u); 0 drops the descriptor view (composition likelihood only).
    descriptor_hidden : list of int
        Hidden widths of the descriptor decoder g(u, y) and its encoder.
    descriptor_model : {"style", "gaussian"}
        ``"style"``: p(f | y, u), an MLP of a ``descriptor_latent_dim``-D
        style u; ``"gaussian"``: p(f | y) = N(m_y, Sigma_y), one
        full-covariance Gaussian per class (quadratic discriminant analysis),
        no u.
    class_position : bool
        With the linear decoder, give each class its place mu_y in the
        latent (the default); ``False`` makes the composition independent
        of y (mu_y = 0) in training, so that only the descriptor view
        carries the phase.
    estimate_class_position : bool
        With ``class_position=False``: after training, set mu_y to the mean
        of the encoder's latent over the training alloys of class y
        (:meth:`PhaseVAE.estimate_class_positions`), so that a decode can be
        conditioned on y without the class position taking part in the
        inference of y (cutting its feedback).
    shared_noise : bool
        Draw z and u of an unlabelled alloy with one noise for every
        enumerated y (common random numbers, :mod:`pyro_hea.model.shared_noise`).
    class_scale : bool
        With the linear decoder, give each class its own spread sigma_y per
        latent axis as well as its place: v = mu_y + sigma_y z, so that
        v | y ~ N(mu_y, diag sigma_y^2) (see ``LinearCompositionDecoder``).
    classifier_feedback : float
        gamma in [0, 1], the share of the unlabelled ELBO's gradient that reaches q(y|x) (its value
        is unchanged); 0 cuts the generative model's feedback on the classifier (Plummer 2015).
    contrast_position : bool
        Before the first design, move the multi-phase class's position mu_0 so that at a fixed z the
        model's own q(y | x) prefers the y = single-phase decode to the y = multi-phase one, and the
        latter still meets the default composition rules
        (:func:`pyro_hea.design.contrast.ensure_contrast_position`; ``pyro-hea train`` does it
        before it saves the model, a :class:`~pyro_hea.design.designer.Designer` when it is built).
        It reads the training alloys' labels only where the split says ``labelled``, and changes no
        prediction: only the multi-phase decodes. Two classes and the linear decoder with learned
        positions only; otherwise it is skipped.
    """

    n_classes: int = 2
    latent_dim: int = 16
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    alpha: float = 30.0
    total_count: int = 1000
    classifier_uses_composition: bool = False
    classifier_bins: int = 8
    classifier_bin_edges: str = "quantile"
    classifier_members: int = 1
    classifier_trees: int = 1000
    classifier_tree_depth: int = 5
    classifier_forest_trees: int = 500
    classifier_forest_depth: int = 3
    classifier_hidden: list[int] | None = None
    decoder: str = "linear"
    descriptor_latent_dim: int = 2
    descriptor_hidden: list[int] = field(default_factory=lambda: [64, 64])
    descriptor_model: str = "style"
    class_position: bool = True
    estimate_class_position: bool = False
    shared_noise: bool = False
    class_scale: bool = False
    classifier_feedback: float = 1.0
    contrast_position: bool = True

    def __post_init__(self):
        if self.n_classes < 2:
            raise PyroHeaError(f"n_classes must be at least 2, got {self.n_classes}")
        if self.latent_dim < 1:
            raise PyroHeaError(f"latent_dim must be at least 1, got {self.latent_dim}")
        if not 0 <= self.alpha < float("inf"):  # NaN fails too
            raise PyroHeaError(f"alpha must be non-negative, got {self.alpha}")
        if self.total_count < 1:
            raise PyroHeaError(f"total_count must be a positive number of atoms, got {self.total_count}")
        if self.classifier_bins < 0:
            raise PyroHeaError(f"classifier_bins must be 0 or more, got {self.classifier_bins}")
        if self.classifier_bin_edges not in BIN_EDGES:
            raise PyroHeaError(f"classifier_bin_edges must be one of {list(BIN_EDGES)}, got {self.classifier_bin_edges!r}")
        if self.classifier_members < 1:
            raise PyroHeaError(f"classifier_members must be 1 or more, got {self.classifier_members}")
        if self.classifier_trees < 0 or not 1 <= self.classifier_tree_depth <= 12:
            raise PyroHeaError(f"classifier_trees must be 0 or more and classifier_tree_depth in 1..12, got "
                               f"{self.classifier_trees} and {self.classifier_tree_depth}")
        if self.classifier_forest_trees < 0 or not 1 <= self.classifier_forest_depth <= 12:
            raise PyroHeaError(f"classifier_forest_trees must be 0 or more and classifier_forest_depth in 1..12, "
                               f"got {self.classifier_forest_trees} and {self.classifier_forest_depth}")
        if self.decoder not in DECODERS:
            raise PyroHeaError(f"decoder must be one of {list(DECODERS)}, got {self.decoder!r}")
        if self.descriptor_latent_dim < 0:
            raise PyroHeaError(f"descriptor_latent_dim must be 0 or more, got {self.descriptor_latent_dim}")
        if self.descriptor_model not in DESCRIPTOR_MODELS:
            raise PyroHeaError(f"descriptor_model must be one of {list(DESCRIPTOR_MODELS)}, got {self.descriptor_model!r}")
        if not 0 <= self.classifier_feedback <= 1:  # NaN fails too
            raise PyroHeaError(f"classifier_feedback must be in [0, 1], got {self.classifier_feedback}")
        if self.estimate_class_position and self.class_position:
            raise PyroHeaError("estimate_class_position needs class_position=False (the positions are then "
                               "estimated after training instead of learned)")
        if (not self.class_position or self.class_scale) and self.decoder != "linear":
            raise PyroHeaError("class_position=False and class_scale need the linear decoder "
                               "(the MLP decoder reads y directly)")
        self.hidden = [int(h) for h in self.hidden]
        if self.classifier_hidden is not None:
            self.classifier_hidden = [int(h) for h in self.classifier_hidden]
        self.descriptor_hidden = [int(h) for h in self.descriptor_hidden]

    def to_dict(self) -> dict:
        return asdict(self)


#: Fields added after checkpoints were first written, with the value that an older checkpoint's
#: model had (it predates the field): a checkpoint without ``classifier_forest_trees`` had no forest.
FIELDS_ADDED = {"classifier_forest_trees": 0, "contrast_position": False}
