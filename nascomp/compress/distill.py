"""Distillation: losses, activation taps, and the distillers `--distill` chooses from.

Layout, so further methods slot in without touching the others:

1. **Losses**, one function each, unit-tested against hand-computed values:
   `soft_cross_entropy` (prediction logits), `qkv_relation_loss` (MiniLMv2-style Q/K/V self-attention
   relations), `hidden_relation_loss` (token-token relations of block outputs).
2. **Taps and layer pairs**: `ActivationTap` reads a layer's q/k/v projection and output out of timm
   Swin/ViT blocks with forward hooks (shared MiniViT modules included); `default_layer_pairs` matches
   student to teacher layers.
3. **Distillers**: an `nn.Module` per method turning a batch into a loss, kept in the `DISTILLERS` registry
   (`register_distiller`, `build_distiller`); `distillation_step` adapts one to `nascomp.train.fit`.
   Registered here: ``none`` (ground truth only), ``kd`` (prediction-logit KD), ``minivit`` (MiniViT's
   weight distillation: logits + Q/K/V relations + hidden relations), ``srd`` (SRD: student features
   through a connector and the teacher's classifier must reproduce the teacher's logits; own section at the end).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nascomp.compress.blocks import transformer_blocks, transformer_stages
from nascomp.errors import NascompError

__all__ = [
    "soft_cross_entropy",
    "qkv_relation_loss",
    "hidden_relation_loss",
    "ActivationTap",
    "default_layer_pairs",
    "parse_layer_pairs",
    "Distiller",
    "NoDistillation",
    "LogitDistillation",
    "WeightDistillation",
    "DISTILLERS",
    "register_distiller",
    "build_distiller",
    "distillation_step",
    "srd_loss",
    "PenultimateTap",
    "SRDConnector",
    "SemanticRepresentationDistillation",
]


# --------------------------------------------------------------------------------------------- losses


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


def hidden_relation_loss(student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor], scale: float = 49.0) -> torch.Tensor:
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
            raise NascompError(f"hidden relation loss: student tokens {tuple(s.shape[:-1])} and teacher tokens {tuple(t.shape[:-1])} differ")
        s, t = F.normalize(s.float(), dim=-1), F.normalize(t.float(), dim=-1)
        total = total + scale * (s @ s.transpose(-1, -2) - t @ t.transpose(-1, -2)).pow(2).mean()
    return total / len(student_hidden)


# ----------------------------------------------------------------------------------- taps and pairs


class ActivationTap:
    """Records, during one forward pass, the ``qkv`` projection output and the block output of chosen layers.

    A MiniViT student runs one shared ``qkv`` module in several layers, so a layer's call is identified by
    the module *and* its rank among that module's calls in the pass (layers execute in order).
    """

    def __init__(self, model: nn.Module, qkv_layers: Sequence[int] = (), hidden_layers: Sequence[int] = ()):
        blocks = transformer_blocks(model)
        for layer in (*qkv_layers, *hidden_layers):
            if not 0 <= layer < len(blocks):
                raise NascompError(f"layer {layer} does not exist: the model has layers 0..{len(blocks) - 1}")
        self.qkv: dict[int, torch.Tensor] = {}
        self.hidden: dict[int, torch.Tensor] = {}
        self._active = False
        self._calls: dict[int, int] = {}
        self._handles = []
        callers: dict[int, tuple[nn.Module, list[int]]] = {}
        for layer, block in enumerate(blocks):
            callers.setdefault(id(block.attn.qkv), (block.attn.qkv, []))[1].append(layer)
        wanted_qkv, self._wanted = set(qkv_layers), (set(qkv_layers), set(hidden_layers))
        for key, (module, layers) in callers.items():
            if wanted_qkv.intersection(layers):
                self._handles.append(module.register_forward_hook(self._qkv_hook(key, layers, wanted_qkv)))
        for layer in set(hidden_layers):
            self._handles.append(blocks[layer].register_forward_hook(self._hidden_hook(layer)))

    def _qkv_hook(self, key: int, layers: list[int], wanted: set[int]) -> Callable:
        def hook(module, inputs, output):
            if not self._active:
                return
            rank = self._calls.get(key, 0)
            self._calls[key] = rank + 1
            if rank < len(layers) and layers[rank] in wanted:
                self.qkv[layers[rank]] = output

        return hook

    def _hidden_hook(self, layer: int) -> Callable:
        def hook(module, inputs, output):
            if self._active:  # Swin blocks output NHWC; relations are over all tokens of the stage
                self.hidden[layer] = output.reshape(output.shape[0], -1, output.shape[-1])

        return hook

    @contextlib.contextmanager
    def record(self) -> Iterator["ActivationTap"]:
        self.qkv, self.hidden, self._calls, self._active = {}, {}, {}, True
        try:
            yield self
        finally:
            self._active = False
        missing = (self._wanted[0] - set(self.qkv)) | (self._wanted[1] - set(self.hidden))
        if missing:
            raise RuntimeError(f"layers {sorted(missing)} did not run in the forward pass")

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._wanted = [], (set(), set())


def _shifted(block: nn.Module) -> bool:
    return any(getattr(block, "shift_size", (0,)))


def default_layer_pairs(student: nn.Module, teacher: nn.Module) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs: every second student layer of each stage (the shifted-window
    layers of Swin; a one-block stage's only layer), each with the teacher layer of the same stage that
    ends at the same relative depth and has the same window shift. For Mini-Swin-T <- Swin-B this gives
    MiniViT's lists: student 1,3,5,7,9,11 with teacher 1,3,9,15,21,23."""
    s_stages, t_stages = transformer_stages(student), transformer_stages(teacher)
    if len(s_stages) != len(t_stages):
        raise NascompError(f"student has {len(s_stages)} stages and teacher {len(t_stages)}; pass --layer-pairs S:T,...")
    pairs, s_offset, t_offset = [], 0, 0
    for s_blocks, t_blocks in zip(s_stages, t_stages):
        ds, dt = len(s_blocks), len(t_blocks)
        for p in (range(1, ds, 2) if ds > 1 else [0]):
            q = min(dt - 1, max(0, round((p + 1) * dt / ds) - 1))
            candidates = [c for c in (q, q - 1, q + 1) if 0 <= c < dt and _shifted(t_blocks[c]) == _shifted(s_blocks[p])]
            if candidates:
                pairs.append((s_offset + p, t_offset + candidates[0]))
        s_offset, t_offset = s_offset + ds, t_offset + dt
    return pairs


def parse_layer_pairs(text: str) -> list[tuple[int, int]]:
    """'1:1,3:3' -> [(1, 1), (3, 3)] (student:teacher global layer indices)."""
    try:
        pairs = [tuple(int(x) for x in item.split(":")) for item in text.split(",") if item.strip()]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 for p in pairs):
        raise NascompError(f"--layer-pairs {text!r}: expected STUDENT:TEACHER layer indices, e.g. 1:1,3:3,11:23")
    return pairs  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- distillers


class Distiller(nn.Module):
    """The loss of one training step of a student, given a frozen teacher.

    An `nn.Module`, so trainable helpers (e.g. feature connectors) are optimised and checkpointed with
    the student: pass the distiller to `nascomp.train.fit` in ``extra_modules``. The teacher is kept out of
    the module tree on purpose: it is neither optimised nor saved. Subclasses implement `forward`.
    """

    name = "base"
    needs_teacher = True

    def __init__(self, student: nn.Module, teacher: nn.Module | None):
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise NascompError(f"distillation {self.name!r} needs a teacher model")
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self.__dict__["teacher"] = teacher

    def forward(self, student: nn.Module, images: torch.Tensor, targets: torch.Tensor, ctx) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    @torch.no_grad()
    def teacher_forward(self, images: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher
        if next(teacher.parameters()).device != images.device:
            teacher.to(images.device)
        return teacher.eval()(images)

    def describe(self) -> dict:
        """The settings, for the run's metrics.json."""
        return {"method": self.name}

    def close(self) -> None:
        """Remove hooks from the student (before exporting or reusing it)."""


DISTILLERS: dict[str, type[Distiller]] = {}


def register_distiller(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    def register(cls: type[Distiller]) -> type[Distiller]:
        cls.name = name
        DISTILLERS[name] = cls
        return cls

    return register


def build_distiller(name: str, student: nn.Module, teacher: nn.Module | None, **options) -> Distiller:
    """Instantiate ``DISTILLERS[name]`` with the options its constructor accepts (others are ignored, so one
    CLI can carry every method's flags); ``None`` values mean "the method's default"."""
    if name not in DISTILLERS:
        raise NascompError(f"unknown distillation {name!r}; choose one of {', '.join(sorted(DISTILLERS))}")
    cls = DISTILLERS[name]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return cls(student, teacher, **kwargs)


@register_distiller("none")
class NoDistillation(Distiller):
    """Ground-truth loss only (the training criterion, label smoothing included): the no-teacher control."""

    needs_teacher = False

    def forward(self, student, images, targets, ctx):
        loss = ctx.criterion(student(images), targets)
        return loss, {"truth": loss.item()}


@register_distiller("kd")
class LogitDistillation(Distiller):
    """``(1 - alpha) * soft_cross_entropy(z_s, z_t, T) + alpha * CE(z_s, y)`` (MiniViT's prediction loss;
    ``alpha = 0``, i.e. no ground truth, and ``T = 1`` are the released Mini-Swin settings)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, alpha: float = 0.0, temperature: float = 1.0):
        super().__init__(student, teacher)
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise NascompError(f"--alpha must be in [0, 1] and --temperature > 0 (got {alpha}, {temperature})")
        self.alpha, self.temperature = alpha, temperature

    def prediction_loss(self, student_logits, teacher_logits, targets, ctx) -> tuple[torch.Tensor, dict[str, float]]:
        soft = soft_cross_entropy(student_logits, teacher_logits, self.temperature)
        loss, parts = (1 - self.alpha) * soft, {"soft": soft.item()}
        if self.alpha > 0:
            truth = ctx.criterion(student_logits, targets)
            loss, parts["truth"] = loss + self.alpha * truth, truth.item()
        return loss, parts

    def forward(self, student, images, targets, ctx):
        return self.prediction_loss(student(images), self.teacher_forward(images), targets, ctx)

    def describe(self) -> dict:
        return {"method": self.name, "alpha": self.alpha, "temperature": self.temperature}


@register_distiller("minivit")
class WeightDistillation(LogitDistillation):
    """MiniViT's weight distillation: ``prediction + qkv_weight * L_attn + hidden_weight * L_hddn``.

    Defaults are the released Mini-Swin commands: alpha 0, T 1, qkv_weight 1, hidden_weight 0.1, one
    relation head, hidden relations scaled by 49; layer pairs from `default_layer_pairs`.
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module | None, alpha: float = 0.0, temperature: float = 1.0, qkv_weight: float = 1.0,
        hidden_weight: float = 0.1, relation_heads: int = 1, hidden_scale: float = 49.0, layer_pairs: Sequence[tuple[int, int]] | None = None,
    ):
        super().__init__(student, teacher, alpha, temperature)
        self.qkv_weight, self.hidden_weight = qkv_weight, hidden_weight
        self.relation_heads, self.hidden_scale = relation_heads, hidden_scale
        self.layer_pairs = [tuple(p) for p in (layer_pairs or default_layer_pairs(student, teacher))]
        if not self.layer_pairs:
            raise NascompError("no layer pairs to distill; pass --layer-pairs S:T,...")
        s_layers, t_layers = [s for s, _ in self.layer_pairs], [t for _, t in self.layer_pairs]
        use_qkv, use_hidden = qkv_weight > 0, hidden_weight > 0
        self._student_tap = ActivationTap(student, s_layers if use_qkv else (), s_layers if use_hidden else ())
        self._teacher_tap = ActivationTap(self.teacher, t_layers if use_qkv else (), t_layers if use_hidden else ())

    def forward(self, student, images, targets, ctx):
        with self._teacher_tap.record() as t_tap:
            teacher_logits = self.teacher_forward(images)
        with self._student_tap.record() as s_tap:
            student_logits = student(images)
        loss, parts = self.prediction_loss(student_logits, teacher_logits, targets, ctx)
        if self.qkv_weight > 0:
            attn = qkv_relation_loss([s_tap.qkv[s] for s, _ in self.layer_pairs], [t_tap.qkv[t] for _, t in self.layer_pairs], self.relation_heads)
            loss, parts["qkv_relation"] = loss + self.qkv_weight * attn, attn.item()
        if self.hidden_weight > 0:
            hidden = hidden_relation_loss(
                [s_tap.hidden[s] for s, _ in self.layer_pairs], [t_tap.hidden[t] for _, t in self.layer_pairs], self.hidden_scale
            )
            loss, parts["hidden_relation"] = loss + self.hidden_weight * hidden, hidden.item()
        return loss, parts

    def describe(self) -> dict:
        return {
            **super().describe(), "qkv_weight": self.qkv_weight, "hidden_weight": self.hidden_weight,
            "relation_heads": self.relation_heads, "hidden_scale": self.hidden_scale, "layer_pairs": [list(p) for p in self.layer_pairs],
        }

    def close(self) -> None:
        self._student_tap.remove()
        self._teacher_tap.remove()


def distillation_step(distiller: Distiller) -> Callable:
    """A `nascomp.train.fit` ``step_fn`` that trains with ``distiller``'s loss."""

    def step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, ctx) -> torch.Tensor:
        with ctx.autocast():
            loss, _ = distiller(model, images, targets, ctx)
        ctx.backward(loss)
        return loss.detach()

    return step


# ------------------------------------------------------------------------------------------------ SRD


def srd_loss(
    cross_logits: torch.Tensor, teacher_logits: torch.Tensor, student_features: torch.Tensor, teacher_features: torch.Tensor,
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


def _check_timm_head(model: nn.Module, role: str) -> nn.Linear:
    """SRD relies on timm's split ``forward = forward_head(forward_features(x))`` and a Linear classifier."""
    if not all(hasattr(model, a) for a in ("forward_features", "forward_head", "get_classifier")):
        raise NascompError(f"SRD needs a timm-style {role} (forward_features, forward_head, get_classifier); {type(model).__name__} has not")
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise NascompError(f"SRD needs the {role}'s classifier to be a Linear layer, got {type(head).__name__} (a model built with num_classes=0?)")
    return head


class PenultimateTap:
    """Records the input of a timm model's ``forward_head`` (its penultimate features) during forward.

    The model's own ``forward`` (possibly through DDP) stays the only forward pass: the tap shadows the
    bound ``forward_head`` with a recording wrapper on the instance, and `remove` restores it.
    """

    def __init__(self, model: nn.Module):
        _check_timm_head(model, "student")
        self.model, self.features, self._active = model, None, False
        original = model.forward_head

        def forward_head(x, *args, **kwargs):
            if self._active:
                self.features = x
            return original(x, *args, **kwargs)

        self._wrapper = forward_head
        model.forward_head = forward_head

    @contextlib.contextmanager
    def record(self) -> Iterator["PenultimateTap"]:
        self.features, self._active = None, True
        try:
            yield self
        finally:
            self._active = False
        if self.features is None:
            raise RuntimeError("the student's forward_head did not run in the forward pass")

    def remove(self) -> None:
        if self.model.__dict__.get("forward_head") is self._wrapper:
            del self.model.forward_head


class SRDConnector(nn.Module):
    """Maps student features to the teacher's feature width: a Linear on pooled token features, or SRD's
    1x1 conv (no bias, He fan-out init) + BN + ReLU on a CNN feature map followed by global average pooling."""

    def __init__(self, in_features: int, out_features: int, feature_map: bool):
        super().__init__()
        self.feature_map = feature_map
        if feature_map:
            conv = nn.Conv2d(in_features, out_features, kernel_size=1, bias=False)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            self.map = nn.Sequential(conv, nn.BatchNorm2d(out_features), nn.ReLU(inplace=True))
        else:
            self.map = nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_s, H, W) map or (B, C_s) pooled features -> (B, C_t) pooled features."""
        out = self.map(features)
        return out.mean(dim=(2, 3)) if self.feature_map else out


@register_distiller("srd")
class SemanticRepresentationDistillation(Distiller):
    """SRD: the student's penultimate features, through a trainable connector and the frozen teacher classifier,
    give cross-network logits z_{t<-s} that must match the teacher's logits z_t.

    ``loss = truth_weight * CE(z_s, y) + srd_weight * srd_loss + kd_weight * T^2 KL(z_t/T || z_s/T)``; the
    defaults (1, 1, 0; T = 4) are SRD's released CIFAR settings. Works for any timm student/teacher pair:
    student features come from a `PenultimateTap`; CNN students (NCHW feature maps) get the conv connector,
    ViT/Swin students a Linear on their pooled pre-logit features. The teacher's "features" are its pre-logits.
    """

    def __init__(
        self, student: nn.Module, teacher: nn.Module | None, srd_weight: float = 1.0, feature_weight: float = 1.0,
        truth_weight: float = 1.0, kd_weight: float = 0.0, temperature: float = 4.0,
    ):
        super().__init__(student, teacher)
        if min(srd_weight, feature_weight, truth_weight, kd_weight) < 0 or temperature <= 0:
            raise NascompError("SRD weights must be >= 0 and --temperature > 0")
        self.srd_weight, self.feature_weight = srd_weight, feature_weight
        self.truth_weight, self.kd_weight, self.temperature = truth_weight, kd_weight, temperature
        teacher_head = _check_timm_head(self.teacher, "teacher")
        if getattr(student, "num_classes", teacher_head.out_features) != teacher_head.out_features:
            raise NascompError(f"student predicts {student.num_classes} classes but the teacher {teacher_head.out_features}; they must agree")
        feature_map, student_width = self._student_features(student)
        self.connector = SRDConnector(student_width, teacher_head.in_features, feature_map)
        self._tap = PenultimateTap(student)

    @staticmethod
    @torch.no_grad()
    def _student_features(student: nn.Module) -> tuple[bool, int]:
        """(is a CNN feature map, channels the connector takes), from one probe forward at the model's input size."""
        from nascomp.models import model_input_size

        _, resolution = model_input_size(student)
        first = next((m for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
        in_chans = first.in_channels if isinstance(first, nn.Conv2d) else model_input_size(student)[0]
        ref = next(student.parameters())
        was_training = student.training
        student.eval()
        try:
            features = student.forward_features(torch.zeros(1, in_chans, resolution, resolution, device=ref.device, dtype=ref.dtype))
            feature_map = features.ndim == 4 and getattr(student, "output_fmt", "NCHW") == "NCHW"
            width = features.shape[1] if feature_map else student.forward_head(features, pre_logits=True).shape[-1]
        finally:
            student.train(was_training)
        return feature_map, int(width)

    @torch.no_grad()
    def teacher_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pre-logit features) of the frozen teacher."""
        teacher = self.teacher
        if next(teacher.parameters()).device != images.device:
            teacher.to(images.device)
        teacher.eval()
        features = teacher.forward_head(teacher.forward_features(images), pre_logits=True)
        return teacher.get_classifier()(features), features

    def forward(self, student, images, targets, ctx):
        teacher_logits, teacher_features = self.teacher_outputs(images)
        with self._tap.record() as tap:
            student_logits = student(images)
        features = tap.features if self.connector.feature_map else self._tap.model.forward_head(tap.features, pre_logits=True)
        mapped = self.connector(features)
        cross_logits = self.teacher.get_classifier()(mapped)  # frozen, but gradients pass through to the connector
        srd = srd_loss(cross_logits, teacher_logits, mapped, teacher_features, self.feature_weight)
        truth = ctx.criterion(student_logits, targets)
        loss = self.truth_weight * truth + self.srd_weight * srd
        parts = {"truth": truth.item(), "srd": srd.item()}
        if self.kd_weight > 0:
            t = self.temperature
            kl = F.kl_div(F.log_softmax(student_logits.float() / t, -1), F.softmax(teacher_logits.float() / t, -1), reduction="batchmean") * t * t
            loss, parts["kd"] = loss + self.kd_weight * kl, kl.item()
        return loss, parts

    def describe(self) -> dict:
        return {
            "method": self.name, "srd_weight": self.srd_weight, "feature_weight": self.feature_weight, "truth_weight": self.truth_weight,
            "kd_weight": self.kd_weight, "temperature": self.temperature,
            "connector": "conv1x1-bn-relu" if self.connector.feature_map else "linear",
        }

    def close(self) -> None:
        self._tap.remove()
