"""`nascomp search --space SPACE --budget BUDGET`: S3 search (E-T error, space evolution, evolutionary search).

    nascomp search --space s3-vit --budget 4gflops                  # default preset (cpu) on 2 CPU cores
    nascomp search --space s3-vit --budget 4gflops --preset smoke --out runs/smoke
    nascomp search --space s3-vit --budget 25mparams --objective pareto
    nascomp search --space s3-vit --budget 25ms@mobile-cpu          # needs `nascomp profile --build-lut` first
    nascomp search --space s3-vit --budget 25ms@mobile-cpu --runtime executorch   # the table built with --runtime executorch
    nascomp search --space s3-vit --budget 4gflops --resume         # continue the newest default run after a kill
    torchrun --nproc-per-node 8 -m nascomp search --space s3-vit --budget 4gflops --preset full --data imagefolder:/imagenet \\
        --workers 8 --checkpoint-every 30m

Budgets: 4gflops (= 4e9 MACs: papers' FLOPs are multiply-accumulates), 4e9macs, 25mparams, 25ms@TARGET
(latency), 50mj@TARGET (energy), all at the space's deployment resolution (224 px for s3-vit).
Writes best_arch.json, candidates.csv, pareto.png, evolution/ (spaces, E-T tables, decisions, plot),
report.md and report.html (`nascomp report`) into --out (default: runs/search/<space>-<budget>-<preset>-seed<seed>).
"""

from __future__ import annotations

import argparse

from nascomp.cli.common import add_data_args, add_logger_arg, add_recipe_args, add_workers_arg, print_json, recipe_options


def _step(text: str) -> tuple[str, float]:
    try:
        key, value = text.split("=", 1)
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIM=STEP or STAGE:DIM=STEP (e.g. depth=1, 3:embed_dim=64), got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search",
        help="S3 search: evolve the space by E-T error, then evolutionary search under a budget",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--space", required=True, help="search space name (`nascomp supernet spaces`) or YAML path")
    p.add_argument("--budget", required=True, help="4gflops | 4e9macs | 25mparams | 25ms@mobile-cpu | 50mj@cuda")
    p.add_argument("--preset", default="cpu", help="smoke | cpu | cpu-geometry | full (default: %(default)s); options below override it")
    p.add_argument("--out", help="run directory (default: runs/search/<space>-<budget>-<preset>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (default: the newest default run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objective", choices=["accuracy", "pareto"], help="one winner (default) or the accuracy-cost Pareto front")
    p.add_argument("--lut", help="latency lookup table for ms/mj budgets (default: the profiler's cache)")
    p.add_argument(
        "--runtime",
        choices=["onnxruntime", "executorch", "torch"],
        help="ms/mj budgets: the runtime the latency table was measured in (default: the target's, e.g. onnxruntime on mobile-cpu)",
    )
    p.add_argument("--in-chans", type=int, default=3, help="model input channels (grey images are repeated)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    add_workers_arg(p)
    p.add_argument("--checkpoint-every", metavar="DURATION", help="also checkpoint training legs inside epochs: 90s, 30m, 2h")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_logger_arg(p)
    p.add_argument("--json", action="store_true", help="print the result (best_arch.json) as JSON")
    s = p.add_argument_group("supernet")
    s.add_argument("--resolution", type=int, help="training (proxy) resolution (default: the preset's)")
    s.add_argument("--supernet-epochs", type=int, dest="epochs", help="epochs of the initial supernet")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--sampler", choices=["uniform", "sandwich"])
    s.add_argument(
        "--drop-path", type=float, dest="drop_path_rate", help="stochastic depth rate of the last block (supernet and finalists)"
    )
    s.add_argument("--grad-clip", type=float, help="gradient norm clip, 0 = off (supernet and finalists)")
    e = p.add_argument_group("space evolution")
    e.add_argument("--evolve-steps", type=int, help="space-evolution steps (0: search the initial space)")
    e.add_argument("--evolve-epochs", type=int, help="supernet epochs per evolution step (weights inherited)")
    e.add_argument("--evolve-lr", type=float, help="peak learning rate of each evolution step's training (default: the preset's)")
    e.add_argument("--et-samples", type=int, help="N subnets per E-T error (top k = N x 50/1000)")
    e.add_argument("--tau", type=float, help="slope threshold in E-T points per step")
    e.add_argument(
        "--evolve-step",
        type=_step,
        action="append",
        metavar="DIM=STEP",
        help="step of a dimension, e.g. depth=1, mlp_ratio=0.5, 3:embed_dim=64 (stage 3 only); repeatable",
    )
    e.add_argument("--alpha", type=float, help="family-wise false-move rate per evolution step (Holm-corrected permutation test; 1: off)")
    v = p.add_argument_group("evolutionary search")
    v.add_argument("--population", type=int)
    v.add_argument("--generations", type=int)
    v.add_argument("--parents", type=int, help="top-k parents")
    v.add_argument("--mutations", type=int, help="children by mutation per generation")
    v.add_argument("--crossovers", type=int, help="children by crossover per generation")
    v.add_argument("--mutation-prob", type=float, help="per-block gene mutation probability (AutoFormer m_prob)")
    v.add_argument("--stage-prob", type=float, help="per-stage depth / embed dim mutation probability (AutoFormer s_prob)")
    f = p.add_argument_group("finish")
    f.add_argument("--top", type=int, help="finalists extracted and evaluated on the test set")
    f.add_argument("--select-val", type=int, help="validation images after the search's that pick the winner among the finalists (0: none)")
    f.add_argument("--compare-epochs", type=int, help="train the winner and a hand-designed arch of the budget stand-alone (0: skip)")
    f.add_argument("--compare-seeds", type=int, help="seeds of that stand-alone comparison")
    f.add_argument("--retrain-epochs", type=int, help="retrain / fine-tune each finalist this many epochs (0: inherited weights)")
    f.add_argument("--retrain-from", choices=["inherited", "scratch"], help="fine-tune the inherited weights or train from scratch")
    f.add_argument("--retrain-lr", type=float, help="peak learning rate of the retraining (default: the preset's)")
    f.add_argument("--retrain-warmup-epochs", type=float, help="warm-up epochs of the retraining (default: the preset's)")
    f.add_argument("--retrain-ema-decay", type=float, help="EMA of the finalists' weights, 0 = off (DeiT: 0.99996)")
    add_recipe_args(p, preset=True)  # the supernet's recipe, which the finalists' retraining shares
    add_data_args(p, classes=False)
    p.set_defaults(func=run)


_OVERRIDES = (
    "resolution",
    "epochs",
    "batch_size",
    "lr",
    "sampler",
    "drop_path_rate",
    "grad_clip",
    "evolve_steps",
    "evolve_epochs",
    "evolve_lr",
    "et_samples",
    "tau",
    "alpha",
    "population",
    "generations",
    "parents",
    "mutations",
    "crossovers",
    "mutation_prob",
    "stage_prob",
    "objective",
    "top",
    "select_val",
    "compare_epochs",
    "compare_seeds",
    "retrain_epochs",
    "retrain_from",
    "retrain_lr",
    "retrain_warmup_epochs",
    "retrain_ema_decay",
    "limit_train",
    "limit_val",
    "limit_test",
)


def run(args: argparse.Namespace) -> int:
    import nascomp

    overrides = {**{k: getattr(args, k) for k in _OVERRIDES}, **recipe_options(args)}
    if args.evolve_step:
        overrides["steps"] = dict(args.evolve_step)
    result = nascomp.search(
        args.space,
        args.budget,
        data=args.data,
        preset=args.preset,
        out=args.out,
        seed=args.seed,
        resume=args.resume,
        quiet=args.quiet,
        device=args.device,
        in_chans=args.in_chans,
        lut=args.lut,
        data_dir=args.data_dir,
        download=args.download,
        val_fraction=args.val_fraction,
        workers=args.workers,
        checkpoint_every=args.checkpoint_every,
        runtime=args.runtime,
        logger=args.logger,
        **overrides,
    )
    summary = result.summary
    if not summary:
        return 0
    if args.json:
        print_json(summary)
        return 0
    b, sel = summary["budget"], summary["selection"]
    print(f"best arch: {b['share']}, {summary['params'] / 1e6:.2f} M params at {summary['resolution']} px")
    gap = sel["test_minus_selected"]
    where = "validation images the search never scored" if sel["split"] == "selection" else "of the search's own validation images"
    print(
        f"  selected on {sel['images']} {where}: top-1 {sel['top1']:.2f}%; test top-1 {summary['test_top1']:.2f}% "
        f"(test - selected {gap['points']:+.2f}, 95 % CI {gap['ci95'][0]:+.2f} to {gap['ci95'][1]:+.2f}); "
        f"{summary['accuracy_note'].split(';')[0]}"
    )
    compare = summary.get("compare")
    if compare and "skipped" not in compare:
        d, hand = compare["test_difference"], compare["archs"]["hand-designed"]["name"]
        ci = f"95 % CI {d['ci'][0]:+.2f} to {d['ci'][1]:+.2f}" if d["ci"] else "no CI from one seed"
        verdict = "told apart" if d["separated"] else "not told apart by this recipe"
        print(
            f"  stand-alone ({compare['recipe']['epochs']} epochs x {compare['recipe']['seeds']} seeds): found - {hand} = "
            f"{d['difference']:+.2f} test points ({ci}): {verdict}"
        )
    if summary.get("collapsed"):
        print(
            "  not searched (collapsed at the proxy), fixed: "
            + ", ".join(f"stage {c['stage']} {c['dimension']}={c['fixed']}" for c in summary["collapsed"])
        )
    print("  E-T error per evolution step: " + " -> ".join(f"{s['Q']:.2f}%" for s in summary["et_error"]))
    print(f"  -> {result.run_dir}/best_arch.json, candidates.csv, pareto.png, evolution/, report.md, report.html")
    return 0
