"""Distillation losses, one function each: prediction logits, MiniViT's Q/K/V and hidden-state relations, SRD."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nascomp.core.errors import NascompError

__all__ = ["soft_cross_entropy", "qkv_relation_loss", "hidden_relation_loss", "srd_loss"]


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``-sum_k softmax(t/T)_k log softmax(s/T)_k`` over the last axis, averaged over all other axes.

    MiniViT's prediction loss (no T^2 factor); also the per-row loss of the relation losses below.
    """
    target = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return -(target * F.log_softmax(student_logits.float() / temperature, dim=-1)).sum(-1).mean()


def _relations(a: torch.Tensor, b: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, C) x (B, N, C) -> (B, heads, N, N): scaled dot products within each channel group."""
    B, N, C = a.shape
    if C % heads:
        raise NascompError(f"relation heads {heads} must divide the q/k/v width {C}")
    d = C // heads
    a = a.reshape(B, N, heads, d).transpose(1, 2)
    b = b.reshape(B, N, heads, d).transpose(1, 2)
    return a @ b.transpose(-2, -1) / math.sqrt(d)


def qkv_relation_loss(student_qkv: Sequence[torch.Tensor], teacher_qkv: Sequence[torch.Tensor], relation_heads: int = 1) -> torch.Tensor:
    """MiniViT's self-attention distillation (after MiniLMv2), averaged over the 9 (i, j) pairs and layers.

    Each entry is a layer's raw ``qkv`` projection output (B', N, 3C) with B' = batch x windows; it is
    split into X_Q, X_K, X_V. For every (i, j) in {Q,K,V}^2, ``R_ij = X_i X_j^T / sqrt(C / A_r)`` per
    relation head, and the student's rows are matched to the teacher's with `soft_cross_entropy`.
    Widths C may differ between student and teacher; tokens N and windows must match.
    """
    if len(student_qkv) != len(teacher_qkv) or not student_qkv:
        raise ValueError("need the same, non-zero number of student and teacher layers")
    total = student_qkv[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student_qkv, teacher_qkv):
        if s.shape[:-1] != t.shape[:-1]:
            raise NascompError(
                f"Q/K/V relation loss: student tokens {tuple(s.shape[:-1])} and teacher tokens {tuple(t.shape[:-1])} differ "
                "(batch x windows, tokens per window); pair layers with the same window layout (--layer-pairs)"
            )
        s_parts, t_parts = s.float().chunk(3, dim=-1), t.float().chunk(3, dim=-1)
        for i in range(3):
            for j in range(3):
                total = total + soft_cross_entropy(
                    _relations(s_parts[i], s_parts[j], relation_heads), _relations(t_parts[i], t_parts[j], relation_heads)
                )
    return total / (9 * len(student_qkv))


def hidden_relation_loss(
    student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor], scale: float = 49.0
) -> torch.Tensor:
    """MiniViT's hidden-state relation loss, averaged over layers.

    Each entry is a block's output as (B, L, C) over the *whole* stage (not per window). Rows are
    L2-normalised and ``scale * mean((H_s H_s^T - H_t H_t^T)^2)`` compares the token-token cosine
    similarities; ``scale`` is the released code's hard-coded window area (7 x 7 = 49).
    """
    if len(student_hidden) != len(teacher_hidden) or not student_hidden:
        raise ValueError("need the same, non-zero number of student and teacher layers")
    total = student_hidden[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student_hidden, teacher_hidden):
        if s.shape[:-1] != t.shape[:-1]:
            raise NascompError(
                f"hidden relation loss: student tokens {tuple(s.shape[:-1])} and teacher tokens {tuple(t.shape[:-1])} differ"
            )
        s, t = F.normalize(s.float(), dim=-1), F.normalize(t.float(), dim=-1)
        total = total + scale * (s @ s.transpose(-1, -2) - t @ t.transpose(-1, -2)).pow(2).mean()
    return total / len(student_hidden)


def srd_loss(
    cross_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_features: torch.Tensor,
    teacher_features: torch.Tensor,
    feature_weight: float = 1.0,
) -> torch.Tensor:
    """SRD's representation loss: ``MSE(z_{t<-s}, z_t) + feature_weight * mean((f_s - f_t)^2)``.

    ``cross_logits`` are the student's connector-mapped features through the teacher's classifier; both
    MSEs average over batch x classes / channels and use raw logits with no temperature, as in SRD's
    released code (`statm_loss` + logit MSE), where the feature weight is 1 (10 for ShuffleV1).
    """
    logit_term = F.mse_loss(cross_logits.float(), teacher_logits.float())
    feature_term = F.mse_loss(student_features.float(), teacher_features.float())
    return logit_term + feature_weight * feature_term
