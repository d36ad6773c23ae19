"""Benchmark: where one SVI step of the default Pei 2020 fit spends its time.

For the default model on the paper split of seed 0 (full batch: every
labelled and unlabelled training alloy in each step), this prints the median
milliseconds per step, over repeated steps, of

1. ``SVI.step`` with ``TraceEnum_ELBO`` (what ``pyro-hea train`` runs, with
   Pyro's argument checks off as the trainer runs it; once more with them on), cut
   into its stages: running and tracing the model and the guide (with the
   enumeration of y), turning the traces into the ELBO (Pyro's dice-factor
   contraction), the backward pass and the optimizer step;
2. the same ELBO written out in plain torch, with the enumeration of y as an
   explicit sum: the same networks, the same forward and backward pass and a
   torch Adam step, and no Pyro. That is the floor a Pyro program can reach.

The two losses are checked to agree (in expectation over the draws of z and
u) before timing. The steps run one torch thread, as the trainer does, and
the Pyro and torch steps are timed in turn, so that both see the same load
on a shared machine.

Usage::

    python benchmarks/profile_step.py [--repeats 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer.traceenum_elbo import _compute_dice_elbo

from pyro_hea import PhaseModel, load_dataset, paper_split
from pyro_hea.infer.training import make_elbo


def training_tensors(model, df, split):
    t = model.tensors(df)
    rows = split.isin(["labelled", "unlabelled"]).to_numpy()
    train = t[np.flatnonzero(rows)]
    train.y = torch.where(torch.as_tensor(split[rows].to_numpy() == "unlabelled"), -1, train.y)
    return train[train.labelled], train[~train.labelled]


def plain_torch_loss(vae, labelled, unlabelled) -> torch.Tensor:
    """The negative ELBO plus the classification loss, with y enumerated by hand."""
    c, K = vae.config, vae.config.n_classes

    def per_class(alloys, y):  # log p(x, f, y, z, u) - log q(z, u | x, y), one draw, per alloy
        y1h = vae.one_hot(y)
        loc, scale = vae.encoder(alloys.x, alloys.features, y1h)
        q_z = dist.Normal(loc, scale).to_event(1)
        z = q_z.rsample()
        out = vae.prior_y(alloys).log_prob(y) + vae.prior_z(alloys).log_prob(z) - q_z.log_prob(z)
        out = out + dist.Multinomial(int(c.total_count), logits=vae.decoder(z, y1h), validate_args=False).log_prob(
            alloys.x * (c.total_count / 100.0))
        if c.descriptor_latent_dim > 0:
            loc_u, scale_u = vae.descriptor_encoder(alloys.features, y1h)
            q_u = dist.Normal(loc_u, scale_u).to_event(1)
            u = q_u.rsample()
            loc_f, scale_f = vae.descriptor_decoder(u, y1h)
            out = out + dist.Normal(torch.zeros_like(u), 1.0).to_event(1).log_prob(u) - q_u.log_prob(u)
            out = out + dist.Normal(loc_f, scale_f).to_event(1).log_prob(alloys.features)
        return out

    log_q_l = torch.log_softmax(vae.classifier(labelled.x, labelled.features), -1)
    elbo = per_class(labelled, labelled.y).sum()
    classification = vae.label_weight * -log_q_l.gather(-1, labelled.y[:, None]).sum()
    log_q_u = torch.log_softmax(vae.classifier(unlabelled.x, unlabelled.features), -1)  # (n, K)
    y = torch.arange(K)[:, None].expand(K, len(unlabelled))  # every class at once, as Pyro enumerates
    elbo = elbo + (log_q_u.exp().T * (per_class(unlabelled, y) - log_q_u.T)).sum()
    return -elbo + classification


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    df = load_dataset("pei2020")
    split = paper_split(df, seed=args.seed)
    model = PhaseModel.build(df, split)
    vae = model.vae
    labelled, unlabelled = training_tensors(model, df, split)
    vae.set_label_weight(len(labelled) + len(unlabelled), len(labelled))
    elbo = make_elbo()

    # 1. the losses agree in expectation
    with torch.no_grad(), pyro.get_param_store().scope():
        pyro.set_rng_seed(0)
        pyro_loss = np.mean([elbo.loss(vae.model, vae.guide, labelled, unlabelled) for _ in range(20)])
        torch_loss = np.mean([float(plain_torch_loss(vae, labelled, unlabelled)) for _ in range(20)])
    print(f"{len(labelled)} labelled + {len(unlabelled)} unlabelled alloys per step, {len(model.vocabulary)} "
          f"elements, K = {vae.config.n_classes}; torch {torch.__version__}, 1 thread")
    print(f"loss, mean of 20 draws: Pyro {pyro_loss:,.0f}, plain torch {torch_loss:,.0f} "
          f"(relative difference {abs(pyro_loss - torch_loss) / abs(torch_loss):.1e})")

    # 2. Pyro, stage by stage, and the whole SVI.step
    with pyro.get_param_store().scope():
        optim = pyro.optim.ClippedAdam(model.trainer._optim_args)
        svi = pyro.infer.SVI(vae.model, vae.guide, optim, elbo)
        stages = {"trace model and guide": [], "ELBO from the traces": [], "backward": [], "optimizer": []}

        def staged_step():
            t0 = time.perf_counter()
            with pyro.poutine.trace(param_only=True) as param_capture:
                model_trace, guide_trace = next(elbo._get_traces(vae.model, vae.guide, (labelled, unlabelled), {}))
                t1 = time.perf_counter()
                loss = -_compute_dice_elbo(model_trace, guide_trace)
                t2 = time.perf_counter()
                loss.backward()
            t3 = time.perf_counter()
            params = {site["value"].unconstrained() for site in param_capture.trace.nodes.values()}
            optim(params)
            pyro.infer.util.zero_grads(params)
            t4 = time.perf_counter()
            for name, (a, b) in zip(stages, [(t0, t1), (t1, t2), (t2, t3), (t3, t4)]):
                stages[name].append(1000 * (b - a))

        # 3. plain torch, timed in turn with Pyro's step so that both see the same load
        adam = torch.optim.Adam(vae.parameters(), lr=5e-3)

        def torch_step():
            adam.zero_grad()
            plain_torch_loss(vae, labelled, unlabelled).backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 10.0)
            adam.step()

        def torch_forward():
            with torch.no_grad():
                plain_torch_loss(vae, labelled, unlabelled)

        def checked_step():  # with Pyro's argument checks, which the trainer turns off
            with pyro.validation_enabled(True):
                svi.step(labelled, unlabelled)

        timed = {"svi": [], "checked": [], "torch": [], "forward": []}
        with pyro.validation_enabled(False):  # as the trainer runs its steps
            for fn in (staged_step, lambda: svi.step(labelled, unlabelled), checked_step, torch_step, torch_forward):
                fn()  # warm up
            for _ in range(args.repeats):
                staged_step()
                for name, fn in (("svi", lambda: svi.step(labelled, unlabelled)), ("checked", checked_step),
                                 ("torch", torch_step), ("forward", torch_forward)):
                    start = time.perf_counter()
                    fn()
                    timed[name].append(1000 * (time.perf_counter() - start))
        svi_ms, checked_ms, torch_ms, forward_ms = (float(np.median(timed[k]))
                                                    for k in ("svi", "checked", "torch", "forward"))

    print(f"\nmedian ms per step over {args.repeats} steps")
    print(f"  Pyro SVI.step (TraceEnum_ELBO), as trained {svi_ms:4.1f}   (argument checks off)")
    for name, values in stages.items():
        print(f"    {name:<38s}{np.median(values):7.1f}")
    print(f"  the same step with Pyro's argument checks{checked_ms:6.1f}")
    print(f"  plain torch: forward + backward + Adam  {torch_ms:7.1f}   (the floor)")
    print(f"    of which the forward pass alone       {forward_ms:7.1f}   (no grad: the random trees' leaves are"
          " not kept, so computed afresh)")
    print(f"  Pyro / plain torch                      {svi_ms / torch_ms:7.2f}x")


if __name__ == "__main__":
    main()
