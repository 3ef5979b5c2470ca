"""Distillation losses against values computed by hand or by explicit loops, taps, layer pairs, registry."""

from __future__ import annotations

import copy
import math

import pytest
import timm
import torch
import torch.nn.functional as F

from nascomp.compression.minivit import Multiplexing, multiplex
from nascomp.core.errors import NascompError
from nascomp.distillation import DISTILLERS
from nascomp.distillation.base import build_distiller
from nascomp.distillation.losses import hidden_relation_loss, qkv_relation_loss, soft_cross_entropy
from nascomp.distillation.minivit import default_layer_pairs, parse_layer_pairs
from nascomp.distillation.taps import ActivationTap
from nascomp.models.structure import transformer_blocks
from tests.conftest import TINY_SWIN

# ------------------------------------------------------------------ loop references (no vectorised maths)


def _row_soft_ce(student_row: list[float], teacher_row: list[float], temperature: float = 1.0) -> float:
    zt = [v / temperature for v in teacher_row]
    zs = [v / temperature for v in student_row]
    norm_t = sum(math.exp(v) for v in zt)
    log_norm_s = math.log(sum(math.exp(v) for v in zs))
    return -sum(math.exp(t) / norm_t * (s - log_norm_s) for t, s in zip(zt, zs))


def _loop_relation(x_i: torch.Tensor, x_j: torch.Tensor, b: int, head: int, heads: int) -> list[list[float]]:
    n, c = x_i.shape[1], x_i.shape[2]
    d = c // heads
    return [
        [sum(float(x_i[b, r, head * d + k]) * float(x_j[b, m, head * d + k]) for k in range(d)) / math.sqrt(d) for m in range(n)]
        for r in range(n)
    ]


def _loop_qkv_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], heads: int) -> float:
    total = 0.0
    for s, t in zip(student, teacher):
        B, N = s.shape[0], s.shape[1]
        cs, ct = s.shape[2] // 3, t.shape[2] // 3
        s_parts = [s[..., k * cs : (k + 1) * cs] for k in range(3)]
        t_parts = [t[..., k * ct : (k + 1) * ct] for k in range(3)]
        for i in range(3):
            for j in range(3):
                rows = []
                for b in range(B):
                    for a in range(heads):
                        rs = _loop_relation(s_parts[i], s_parts[j], b, a, heads)
                        rt = _loop_relation(t_parts[i], t_parts[j], b, a, heads)
                        rows += [_row_soft_ce(rs[r], rt[r]) for r in range(N)]
                total += sum(rows) / len(rows)
    return total / (9 * len(student))


def _loop_hidden_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], scale: float) -> float:
    def gram(h, b):
        rows = [[float(v) for v in h[b, r]] for r in range(h.shape[1])]
        rows = [[v / math.sqrt(sum(u * u for u in row)) for v in row] for row in rows]
        return [[sum(p * q for p, q in zip(r1, r2)) for r2 in rows] for r1 in rows]

    total = 0.0
    for s, t in zip(student, teacher):
        sq = [(gs - gt) ** 2 for b in range(s.shape[0]) for row_s, row_t in zip(gram(s, b), gram(t, b)) for gs, gt in zip(row_s, row_t)]
        total += scale * sum(sq) / len(sq)
    return total / len(student)


# ------------------------------------------------------------------------------------------- losses


def test_soft_cross_entropy_hand_example():
    # teacher softmax([0, ln 3]) = [1/4, 3/4]; student softmax([0, 0]) = [1/2, 1/2] -> loss = ln 2
    loss = soft_cross_entropy(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(3.0)]]))
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-6)
    # identical logits: the loss is the teacher's entropy, -(1/4 ln 1/4 + 3/4 ln 3/4)
    same = soft_cross_entropy(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.0, math.log(3.0)]]))
    assert same.item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6)


def test_soft_cross_entropy_matches_loops_with_temperature():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    rows = [_row_soft_ce(s[a, b].tolist(), t[a, b].tolist(), 2.0) for a in range(2) for b in range(3)]
    assert soft_cross_entropy(s, t, temperature=2.0).item() == pytest.approx(sum(rows) / len(rows), rel=1e-5)


def test_qkv_relation_loss_hand_example_zero_student_is_log_n():
    # A zero student has all-zero relations -> uniform rows -> every row costs ln(N) whatever the teacher.
    teacher = [torch.randn(2, 5, 12)]
    loss = qkv_relation_loss([torch.zeros(2, 5, 9)], teacher, relation_heads=1)
    assert loss.item() == pytest.approx(math.log(5), abs=1e-5)


@pytest.mark.parametrize("heads", [1, 2])
def test_qkv_relation_loss_matches_loops_with_different_widths(heads):
    g = torch.Generator().manual_seed(1)
    student = [torch.randn(2, 3, 3 * 4, generator=g), torch.randn(2, 3, 3 * 4, generator=g)]  # C_s = 4
    teacher = [torch.randn(2, 3, 3 * 6, generator=g), torch.randn(2, 3, 3 * 6, generator=g)]  # C_t = 6
    expected = _loop_qkv_loss(student, teacher, heads)
    assert qkv_relation_loss(student, teacher, relation_heads=heads).item() == pytest.approx(expected, rel=1e-5)


def test_qkv_relation_loss_rejects_mismatched_windows():
    with pytest.raises(NascompError, match="tokens"):
        qkv_relation_loss([torch.randn(2, 4, 6)], [torch.randn(2, 5, 6)])


def test_hidden_relation_loss_hand_example():
    # student rows e1, e2 -> Gram I; teacher rows e1, e1 -> Gram of ones; diff^2 = [[0,1],[1,0]], mean 1/2
    student = [torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])]
    teacher = [torch.tensor([[[2.0, 0.0], [3.0, 0.0]]])]  # row scale must not matter (L2-normalised)
    assert hidden_relation_loss(student, teacher, scale=1.0).item() == pytest.approx(0.5, abs=1e-6)
    assert hidden_relation_loss(student, teacher).item() == pytest.approx(49 * 0.5, abs=1e-5)


def test_hidden_relation_loss_matches_loops():
    g = torch.Generator().manual_seed(2)
    student = [torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)]
    teacher = [torch.randn(2, 4, 5, generator=g), torch.randn(2, 4, 5, generator=g)]
    assert hidden_relation_loss(student, teacher, scale=7.0).item() == pytest.approx(_loop_hidden_loss(student, teacher, 7.0), rel=1e-5)


def test_losses_have_gradients_for_the_student():
    s = torch.randn(2, 3, 6, requires_grad=True)
    (qkv_relation_loss([s], [torch.randn(2, 3, 6)]) + hidden_relation_loss([s], [torch.randn(2, 3, 4)])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ taps and pairs


def _tiny_swin():
    torch.manual_seed(0)
    return timm.create_model("swin_tiny_patch4_window7_224", **TINY_SWIN).eval()


def test_tap_finds_each_layer_of_a_shared_qkv_module():
    student = multiplex(_tiny_swin(), Multiplexing((2, 4)))
    blocks = transformer_blocks(student)
    assert blocks[3].attn.qkv is blocks[5].attn.qkv  # stage 2: one weight set for four layers
    inputs = {}
    for layer in (1, 3, 5):
        blocks[layer].attn.register_forward_pre_hook(lambda m, a, layer=layer: inputs.__setitem__(layer, a[0]))
    tap = ActivationTap(student, qkv_layers=[1, 3, 5], hidden_layers=[5])
    x = torch.randn(2, 1, 32, 32)
    with tap.record():
        out = student(x)
    for layer in (1, 3, 5):
        qkv = blocks[layer].attn.qkv
        assert torch.allclose(tap.qkv[layer], F.linear(inputs[layer], qkv.weight, qkv.bias))
    assert not torch.allclose(tap.qkv[3], tap.qkv[5])
    assert tap.hidden[5].shape == (2, 4 * 4, 32)  # NHWC stage output flattened to (B, L, C)
    tap.remove()
    with tap.record():
        student(x)
    assert tap.qkv == {} and out.shape == (2, 10)


def test_default_layer_pairs_reproduce_minivit_lists():
    """Mini-Swin-T <- Swin-B: the released code distils student 1,3,5,7,9,11 from teacher 1,3,9,15,21,23."""
    with torch.device("meta"):
        student = timm.create_model("swin_tiny_patch4_window7_224")
        teacher = timm.create_model("swin_base_patch4_window7_224")
    assert default_layer_pairs(student, teacher) == [(1, 1), (3, 3), (5, 9), (7, 15), (9, 21), (11, 23)]
    assert default_layer_pairs(student, student) == [(1, 1), (3, 3), (5, 5), (7, 7), (9, 9), (11, 11)]


def test_default_layer_pairs_keep_window_shift_for_shallow_students():
    teacher = _tiny_swin()
    student = timm.create_model("swin_tiny_patch4_window7_224", **{**TINY_SWIN, "depths": (1, 1)})
    pairs = default_layer_pairs(student, teacher)
    blocks_s, blocks_t = transformer_blocks(student), transformer_blocks(teacher)
    assert [s for s, _ in pairs] == [0, 1]
    assert all(any(blocks_s[s].shift_size) == any(blocks_t[t].shift_size) for s, t in pairs)


def test_parse_layer_pairs():
    assert parse_layer_pairs("1:1, 11:23") == [(1, 1), (11, 23)]
    with pytest.raises(NascompError, match="STUDENT:TEACHER"):
        parse_layer_pairs("1-1")


# ---------------------------------------------------------------------------------------- distillers


class _Ctx:
    criterion = torch.nn.CrossEntropyLoss()


def test_registry_and_option_filtering():
    assert {"none", "kd", "minivit"} <= set(DISTILLERS)
    teacher = _tiny_swin()
    kd = build_distiller("kd", copy.deepcopy(teacher), teacher, temperature=2.0, qkv_weight=5.0, layer_pairs=None)
    assert kd.describe() == {"method": "kd", "alpha": 0.0, "temperature": 2.0}
    with pytest.raises(NascompError, match="unknown distillation"):
        build_distiller("nope", teacher, teacher)
    with pytest.raises(NascompError, match="needs a teacher"):
        build_distiller("kd", teacher, None)


def test_weight_distillation_of_an_exact_copy():
    """A student identical to its teacher: hidden relations match exactly; the other terms are entropies."""
    teacher = _tiny_swin()
    student = copy.deepcopy(teacher)
    d = build_distiller("minivit", student, teacher)
    assert d.layer_pairs == [(1, 1), (3, 3), (5, 5)]
    x, y = torch.randn(3, 1, 32, 32), torch.randint(0, 10, (3,))
    loss, parts = d(student, x, y, _Ctx())
    logits = teacher(x)
    entropy = -(F.softmax(logits, -1) * F.log_softmax(logits, -1)).sum(-1).mean().item()
    assert parts["hidden_relation"] == pytest.approx(0.0, abs=1e-6)
    assert parts["soft"] == pytest.approx(entropy, rel=1e-5)
    assert loss.item() == pytest.approx(parts["soft"] + parts["qkv_relation"] + 0.1 * parts["hidden_relation"], rel=1e-6)
    shifted = build_distiller("minivit", student, teacher, layer_pairs=[(3, 5)])
    assert shifted(student, x, y, _Ctx())[1]["hidden_relation"] > 1e-3  # wrong pairing is visible
    d.close()
    shifted.close()


def test_alpha_mixes_in_ground_truth():
    teacher = _tiny_swin()
    student = copy.deepcopy(teacher)
    x, y = torch.randn(3, 1, 32, 32), torch.randint(0, 10, (3,))
    loss, parts = build_distiller("kd", student, teacher, alpha=0.25)(student, x, y, _Ctx())
    assert loss.item() == pytest.approx(0.75 * parts["soft"] + 0.25 * F.cross_entropy(teacher(x), y).item(), rel=1e-5)
    loss, parts = build_distiller("none", student, None)(student, x, y, _Ctx())
    assert parts == {"truth": pytest.approx(F.cross_entropy(teacher(x), y).item(), rel=1e-5)}
