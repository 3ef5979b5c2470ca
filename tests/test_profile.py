"""Latency profiling: statistics, timers, targets, pinning, and `nascomp profile` end to end on a tiny model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.profiling.host import allowed_cores, cpu_model, parse_cores, pinned_to
from nascomp.profiling.latency import CudaEventTimer, LatencyStats, ThreadCpuTimer, WallTimer, time_runs, torch_runner
from nascomp.profiling.profiler import ProfileOptions, profile_model
from nascomp.profiling.targets import parse_target
from tests.conftest import TINY_VIT


def test_stats_median_and_iqr_match_numpy_on_a_skewed_sample():
    rng = np.random.default_rng(0)
    samples = list(10 + rng.exponential(2.0, size=201))
    s = LatencyStats(samples)
    assert s.median_ms == pytest.approx(np.median(samples))
    assert s.iqr_ms == pytest.approx(np.subtract(*np.percentile(samples, [75, 25])))
    assert s.mean_ms > s.median_ms  # the right tail pulls the mean, not the median
    d = s.to_dict(include_samples=True)
    assert d["runs"] == 201 and len(d["samples_ms"]) == 201 and d["latency_ms"] == pytest.approx(s.median_ms, abs=1e-4)


def test_time_runs_counts_warmup_and_repetitions_with_a_fake_clock():
    calls = []
    ticks = iter(range(0, 10**9, 1_000_000))  # every clock read advances 1 ms
    timer = WallTimer(clock=lambda: next(ticks))
    stats = time_runs(lambda: calls.append(1), warmup=3, repeat=7, timer=timer)
    assert len(calls) == 10 and stats.n == 7
    assert stats.median_ms == pytest.approx(1.0)


def test_time_runs_rejects_nonsense_counts():
    with pytest.raises(NascompError):
        time_runs(lambda: None, warmup=0, repeat=0)
    with pytest.raises(NascompError):
        time_runs(lambda: None, warmup=-1, repeat=3)


class _FakeEvent:
    clock = 0.0

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.t = None
        self.synced = False

    def record(self):
        self.t = _FakeEvent.clock

    def synchronize(self):
        self.synced = True

    def elapsed_time(self, other):
        assert other.synced, "elapsed_time read before the end event was synchronized"
        return other.t - self.t


class _FakeCuda:
    Event = _FakeEvent


def test_cuda_event_timer_times_between_recorded_events_after_synchronizing():
    timer = CudaEventTimer(_FakeCuda)

    def work():  # the 'GPU' advances its clock by 4.5 ms while the kernel runs
        _FakeEvent.clock += 4.5

    assert timer.time(work) == pytest.approx(4.5)


def test_thread_cpu_timer_ignores_time_spent_sleeping():
    import time

    timer = ThreadCpuTimer()
    cpu = timer.time(lambda: time.sleep(0.05))
    assert cpu < 10 and timer.wall_ms[-1] >= 45


def test_parse_target_and_its_defaults():
    assert parse_target("android:R58M123").serial == "R58M123"
    assert parse_target("android").serial is None
    mobile = parse_target("mobile-cpu")
    assert mobile.default_threads() == 1 and mobile.default_precisions() == ["fp32", "int8"]
    assert mobile.default_cores(1) == [allowed_cores()[-1]]
    assert "not a phone" in mobile.note([1], 1)
    assert parse_target("cpu").default_runtimes() == ["torch", "onnxruntime"]
    assert parse_target("cuda").default_runtimes(ort_cuda_available=True) == ["torch", "onnxruntime"]
    for bad in ("gpu", "cpu:1", "phone"):
        with pytest.raises(NascompError, match="unknown target"):
            parse_target(bad)


def test_parse_cores_accepts_taskset_lists():
    assert parse_cores("1") == [1]
    assert parse_cores("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(NascompError):
        parse_cores("a")


def test_cpu_model_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
    assert cpu_model(info) == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 38.40\n\nHardware\t: Qualcomm Technologies, Inc SM8350\n")
    assert cpu_model(arm) == "Qualcomm Technologies, Inc SM8350"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux affinity API")
def test_pinned_to_pins_and_restores_every_thread():
    before = os.sched_getaffinity(0)
    core = allowed_cores()[-1]
    with pinned_to([core]) as cores:
        assert cores == [core] and os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(NascompError, match="may only use cores"):
        with pinned_to([10_000]):
            pass


def test_torch_runner_runs_eval_mode_under_inference_mode(tiny_vit):
    run = torch_runner(tiny_vit.train(), batch=2, in_chans=1, resolution=28)
    out = run()
    assert out.shape == (2, 10) and not tiny_vit.training and out.is_inference()


def test_profile_cpu_torch_records_the_protocol(tiny_vit):
    opts = ProfileOptions(parse_target("cpu"), runtimes=["torch"], threads=1, warmup=1, repeat=5)
    report = profile_model(tiny_vit, opts, name="tiny")
    d = report.to_dict()
    assert d["runtime"] == "torch" and d["latency_ms"] > 0 and d["iqr_ms"] >= 0 and d["target"] == "cpu"
    proto = d["protocol"]
    for key in (
        "cpu_model",
        "threads",
        "affinity",
        "batch",
        "resolution",
        "warmup",
        "repetitions",
        "statistic",
        "versions",
        "date",
        "timer",
        "load_average",
    ):
        assert key in proto, key
    assert proto["timer"].startswith("wall clock") and len(proto["load_average"]["before"]) == 3 and isinstance(d["warnings"], list)
    assert proto["resolution"] == 28 and proto["in_chans"] == 1 and proto["repetitions"] == 5
    details = d["measurements"][0]["details"]
    assert details["intra_op_threads"] == 1 and "load_average_before" in details and "thread_cpu_ms_median" in details
    assert d["params"] == sum(p.numel() for p in tiny_vit.parameters())


def test_a_wide_spread_is_flagged_with_its_cause_and_a_tight_one_is_not():
    from nascomp.profiling.profiler import Measurement, noise_warnings

    rng = np.random.default_rng(0)
    tight = Measurement("onnxruntime", "fp32", LatencyStats(list(20 + rng.normal(0, 0.3, 50))), {"process_cpu_per_thread": 0.99})
    busy = Measurement(
        "onnxruntime",
        "int8",
        LatencyStats(list(160 * rng.lognormal(0, 0.6, 50))),
        {"process_cpu_per_thread": 0.35, "load_average_before": [5.7, 5.0, 4.0]},
    )
    spread = busy.stats.iqr_ms / busy.stats.median_ms
    assert spread > 0.5
    lines = noise_warnings([tight, busy, Measurement("torch", "fp32", skipped="no file")], cpus=2)
    assert len(lines) == 1 and lines[0].startswith("onnxruntime int8: the runs spread widely")
    assert f"({spread:.0%})" in lines[0] and "35% of a CPU" in lines[0] and "load average 5.7 on 2 CPU(s)" in lines[0]
    assert noise_warnings([busy], cpus=8)[0].count("load average") == 0  # 5.7 on 8 CPUs is not a busy machine


def test_profile_rejects_impossible_plans(tiny_vit):
    with pytest.raises(NascompError, match="add runtime='onnxruntime' or runtime='executorch'"):
        profile_model(tiny_vit, ProfileOptions(parse_target("cpu"), runtimes=["torch"], precisions=["int8"], repeat=1))
    with pytest.raises(NascompError, match="not available on target android"):
        profile_model(tiny_vit, ProfileOptions(parse_target("android"), runtimes=["torch"], repeat=1))
    with pytest.raises(NascompError, match="thread-cpu"):
        profile_model(tiny_vit, ProfileOptions(parse_target("cpu"), runtimes=["torch"], threads=2, timer="thread-cpu", repeat=1))
    if not torch.cuda.is_available():
        with pytest.raises(NascompError, match="no CUDA device"):
            profile_model(tiny_vit, ProfileOptions(parse_target("cuda"), repeat=1))


@pytest.fixture(scope="module")
def mobile_report(tmp_path_factory):
    """One `nascomp profile --target mobile-cpu --json` run on a tiny saved model (export + int8 once)."""
    import timm

    from nascomp.models import save_model, timm_spec

    folder = tmp_path_factory.mktemp("profile")
    model = timm.create_model("vit_tiny_patch16_224", **TINY_VIT)
    save_model(folder / "tiny", model, timm_spec("vit_tiny_patch16_224", **TINY_VIT))
    out = folder / "report.json"
    code = main(
        [
            "profile",
            str(folder / "tiny"),
            "--target",
            "mobile-cpu",
            "--warmup",
            "2",
            "--repeat",
            "8",
            "--json",
            "--quiet",
            "--out",
            str(out),
            "--energy",
            "--energy-window",
            "0.2",
            "--samples",
        ]
    )
    assert code == 0
    return json.loads(out.read_text())


def test_mobile_cpu_profile_of_a_saved_directory_has_fp32_and_int8(mobile_report):
    d = mobile_report
    assert d["target"] == "mobile-cpu" and d["runtime"] == "onnxruntime" and d["precision"] == "fp32"
    assert "not a phone" in d["note"]
    assert d["protocol"]["threads"] == 1 and d["protocol"]["affinity"] == [allowed_cores()[-1]]
    fp32, int8 = d["measurements"]
    assert (fp32["precision"], int8["precision"]) == ("fp32", "int8")
    assert len(fp32["samples_ms"]) == 8 and fp32["latency_ms"] == pytest.approx(np.median(fp32["samples_ms"]), abs=1e-3)
    assert int8["details"]["onnx_bytes"] < fp32["details"]["onnx_bytes"]  # int8 weights are smaller
    assert fp32["details"]["execution_provider"] == "CPUExecutionProvider" and fp32["details"]["max_abs_diff_vs_torch"] < 1e-4
    assert 0 < int8["details"]["max_abs_diff_vs_fp32"] < 1.0


def test_mobile_cpu_energy_is_labelled_and_idle_subtracted(mobile_report):
    for m in mobile_report["measurements"]:
        e = m["energy"]
        assert e["kind"] in ("measured", "estimated")
        assert e["mj_per_inference"] == pytest.approx(e["total_mj_per_inference"] - e["idle_mj_per_inference"], abs=1e-3)
        if e["kind"] == "estimated":  # no RAPL here: the stated model and the reason are in the report
            assert e["power_model"] and e["fallback_reason"]
            assert e["total_mj_per_inference"] == pytest.approx(e["active_power_w"] * m["latency_ms"], rel=1e-3)


def test_profile_cli_errors_are_user_errors(capsys):
    assert main(["profile", "not_a_model_name_xyz", "--target", "cpu"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["profile", "vit_tiny_patch16_224", "--target", "tpu"]) == 2
    assert main(["profile"]) == 2


class _FakeOrt:
    """The slice of onnxruntime's API that ort_runner uses, for the CUDA provider path (no GPU here)."""

    class SessionOptions:
        pass

    class ExecutionMode:
        ORT_SEQUENTIAL = "sequential"

    class GraphOptimizationLevel:
        ORT_ENABLE_ALL = "all"

    class OrtValue:
        @staticmethod
        def ortvalue_from_numpy(x, device, index):
            return ("ortvalue", x.shape, device, index)

    def __init__(self, providers, started):
        self.providers, self.started, self.log = providers, started, []

    def get_available_providers(self):
        return self.providers

    def InferenceSession(self, path, opts, providers):
        fake = self

        class Binding:
            def bind_ortvalue_input(self, name, value):
                fake.log.append(("input", name, value[2]))

            def bind_output(self, name, device, index):
                fake.log.append(("output", name, device))

        class Session:
            def get_providers(self):
                return fake.started

            def get_inputs(self):
                return [type("I", (), {"name": "input"})()]

            def get_outputs(self):
                return [type("O", (), {"name": "output"})()]

            def io_binding(self):
                return Binding()

            def run_with_iobinding(self, binding):
                fake.log.append(("run",))

        self.log.append(("providers", providers, opts.intra_op_num_threads))
        return Session()


def test_ort_cuda_provider_binds_input_and_output_on_the_gpu():
    from nascomp.profiling.latency import ort_runner

    ort = _FakeOrt(["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"])
    runner = ort_runner("m.onnx", 1, 3, 32, threads=2, device="cuda", ort=ort)
    runner.run()
    assert ("providers", ["CUDAExecutionProvider", "CPUExecutionProvider"], 2) in ort.log
    assert ("input", "input", "cuda") in ort.log and ("output", "output", "cuda") in ort.log and ort.log[-1] == ("run",)
    assert runner.provider == "CUDAExecutionProvider" and "GPU" in runner.info["io_binding"]


def test_ort_cuda_provider_missing_or_silently_falling_back_is_an_error():
    from nascomp.profiling.latency import ort_runner

    with pytest.raises(NascompError, match="onnxruntime-gpu"):
        ort_runner("m.onnx", 1, 3, 32, 1, "cuda", ort=_FakeOrt(["CPUExecutionProvider"], ["CPUExecutionProvider"]))
    with pytest.raises(NascompError, match="did not start CUDAExecutionProvider"):
        ort_runner("m.onnx", 1, 3, 32, 1, "cuda", ort=_FakeOrt(["CUDAExecutionProvider"], ["CPUExecutionProvider"]))


def test_wrong_resolution_is_a_user_error(tiny_vit):
    with pytest.raises(NascompError, match="cannot run on a 1x56x56 input"):
        profile_model(tiny_vit, ProfileOptions(parse_target("cpu"), runtimes=["torch"], resolution=56, repeat=1))
