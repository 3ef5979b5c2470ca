"""The ``--distill`` option group, shared by `nascomp train` and `nascomp compress`."""

from __future__ import annotations

import argparse

from nascomp.distillation.registry import DISTILLERS

__all__ = ["add_distill_args", "distill_options"]

_KEYS = (
    "alpha",
    "temperature",
    "qkv_weight",
    "hidden_weight",
    "relation_heads",
    "hidden_scale",
    "layer_pairs",
    "srd_weight",
    "feature_weight",
    "kd_weight",
)


def add_distill_args(p: argparse.ArgumentParser, default: str = "minivit") -> None:
    g = p.add_argument_group("distillation")
    g.add_argument(
        "--distill",
        choices=DISTILLERS.names(),
        default=default,
        help="minivit: logits + Q/K/V relations + hidden relations (MiniViT's weight distillation); "
        "kd: logits only; srd: student features through the teacher's classifier (SRD); "
        "none: ground truth only (default: %(default)s)",
    )
    g.add_argument("--alpha", type=float, help="weight of the ground-truth loss; 1 - alpha weighs the logit loss (default 0)")
    g.add_argument("--temperature", type=float, help="logit distillation temperature (default 1)")
    g.add_argument("--qkv-weight", type=float, help="weight of the Q/K/V relation loss (default 1)")
    g.add_argument("--hidden-weight", type=float, help="weight of the hidden-state relation loss (default 0.1)")
    g.add_argument("--relation-heads", type=int, help="relation heads A_r of the Q/K/V loss (default 1)")
    g.add_argument("--hidden-scale", type=float, help="factor of the hidden relation loss (default 49, MiniViT's 7x7)")
    g.add_argument(
        "--layer-pairs",
        metavar="S:T,...",
        help="student:teacher global layer indices (default: every second student layer, same relative depth and shift)",
    )
    g.add_argument("--srd-weight", type=float, help="srd: weight of the SRD loss (logit MSE + feature term; default 1)")
    g.add_argument("--feature-weight", type=float, help="srd: weight of the pooled-feature MSE inside the SRD loss (default 1)")
    g.add_argument(
        "--kd-weight", type=float, help="srd: weight of an extra T^2-scaled KL to the teacher (default 0; T from --temperature, default 4)"
    )


def distill_options(args: argparse.Namespace) -> dict:
    """The method settings given on the command line (the method ignores those it does not take)."""
    return {k: getattr(args, k) for k in _KEYS if getattr(args, k, None) is not None}
