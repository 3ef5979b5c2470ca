"""Budget strings and constraints: parsing, units, the cheapest-member error, latency/energy through the predictor."""

from __future__ import annotations

import pytest

from nascomp.core.errors import NascompError
from nascomp.cost.arch_cost import arch_cost
from nascomp.nas import check_feasible, make_constraint, parse_budget
from nascomp.spaces import SearchSpace, load_arch

S3_VIT = SearchSpace.load("s3-vit")


@pytest.mark.parametrize(
    "text, metric, limit, target",
    [
        ("4gflops", "macs", 4e9, None),  # papers' FLOPs are MACs
        ("4GFLOPs", "macs", 4e9, None),
        ("4e9macs", "macs", 4e9, None),
        ("4.5gmacs", "macs", 4.5e9, None),
        ("450 MMACs", "macs", 450e6, None),
        ("25mparams", "params", 25e6, None),
        ("25ms@mobile-cpu", "latency", 25.0, "mobile-cpu"),
        ("50mj@cuda", "energy", 50.0, "cuda"),
        ("7.5ms@android:R58M", "latency", 7.5, "android:R58M"),
    ],
)
def test_budget_forms(text, metric, limit, target):
    b = parse_budget(text)
    assert (b.metric, b.target) == (metric, target)
    assert b.limit == pytest.approx(limit)


@pytest.mark.parametrize("text", ["4", "four gflops", "4gb", "-4gflops", "0gflops", "25ms", "4 gflops per image", "25xparams"])
def test_unparsable_budget_lists_the_accepted_forms(text):
    with pytest.raises(NascompError) as e:
        parse_budget(text)
    msg = str(e.value)
    if "positive" not in msg:
        for form in ("4gflops", "4e9macs", "25mparams", "25ms@mobile-cpu"):
            assert form in msg


def test_macs_constraint_is_the_analytic_cost_at_224():
    swin_t = load_arch("swin-t")
    c = make_constraint(parse_budget("4gflops"), S3_VIT, in_chans=3, num_classes=1000)
    assert c.cost(swin_t) == arch_cost(swin_t, 224).macs
    assert 4.48e9 < c.cost(swin_t) < 4.50e9  # Swin-T: 4.49 G MACs (timm's count; the Swin paper rounds it to 4.5 G FLOPs)
    assert not c(swin_t)
    assert make_constraint(parse_budget("4.5gflops"), S3_VIT)(swin_t)
    params = make_constraint(parse_budget("28mparams"), S3_VIT)
    assert 28.2e6 < params.cost(swin_t) < 28.4e6 and not params(swin_t)  # Swin-T: 28.29 M params


def test_budget_below_the_cheapest_member_names_the_minimum():
    c = make_constraint(parse_budget("1gflops"), S3_VIT)
    with pytest.raises(NascompError, match=r"below the cheapest member.*1\.60\d G MACs"):
        check_feasible(c, S3_VIT)  # s3-vit's smallest member: 1.60 G MACs (search_spaces/s3-vit.yaml)
    assert check_feasible(make_constraint(parse_budget("4gflops"), S3_VIT), S3_VIT) == pytest.approx(1.60e9, rel=0.01)


def test_latency_budget_without_a_lookup_table_names_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NASCOMP_LUT_DIR", str(tmp_path))
    with pytest.raises(NascompError, match="nascomp profile --build-lut"):
        make_constraint(parse_budget("25ms@mobile-cpu"), S3_VIT)


class _FakeLatency:
    """Stands in for the profiler's predictor: 1 ms per block, and a table that lacks heads > 32."""

    def predict(self, arch):
        return float(sum(s.depth for s in arch.stages))

    def describe(self):
        return "fake predictor"

    def missing(self, space):
        return [f"block:heads={h}" for s in space.stages for h in s.heads if h > 32]


def test_latency_constraint_goes_through_the_predictor(monkeypatch):
    import nascomp.profiling.predictor as predictor

    calls = []

    def fake_budget_predictor(unit, target, space, lut=None, runtime=None):
        calls.append((unit, target, space.name, lut))
        return _FakeLatency()

    monkeypatch.setattr(predictor, "budget_predictor", fake_budget_predictor)
    c = make_constraint(parse_budget("10ms@mobile-cpu"), S3_VIT, lut="table.json")
    assert calls == [("ms", "mobile-cpu", "s3-vit", "table.json")]
    arch = load_arch("swin-t")  # 12 blocks -> 12 "ms"
    assert c.cost(arch) == 12.0 and not c(arch)
    assert c.supports(S3_VIT) is None
    wider = S3_VIT.with_choices({(3, "heads"): [24, 32, 40]})
    assert "lacks 1" in c.supports(wider)
    assert check_feasible(c, S3_VIT) == 7.0  # smallest: depths 1+1+4+1


def test_a_cost_is_spoken_in_the_budget_s_own_unit():
    """ "7.72 GFLOPs" next to a "4gflops" budget reads as a violation; the summary says "3.86 G of the 4 G budget"."""
    b = parse_budget("4gflops")
    assert b.share(3.86e9) == "3.86 G of the 4 G budget (4gflops; papers' FLOPs = MACs)"
    assert "GFLOPs" not in b.format(3.86e9) and "GFLOPs" not in b.describe()
    assert parse_budget("25mparams").share(18.15e6) == "18.15 M of the 25 M params budget (25mparams)"
