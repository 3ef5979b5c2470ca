"""The search pipeline under DDP (gloo, 2 CPU processes): shared scoring, identical decisions, rank 0 writes."""

from __future__ import annotations

import os
import socket

import pytest
import torch


def _worker(rank: int, world: int, port: int, data_dir: str, space_path: str, out_dir: str, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    import nascomp
    import nascomp.nas.pipeline as run_module
    from tests.test_search import _budget

    scored = []
    original = run_module.SupernetScorer.score

    def recording(self, archs):
        out = original(self, archs)
        scored.append([(a.to_json(), s["top1"]) for a, s in zip(archs, out)])
        return out

    run_module.SupernetScorer.score = recording
    from pathlib import Path

    result = nascomp.search(
        space_path,
        _budget(Path(space_path)),
        preset="smoke",
        data_dir=data_dir,
        in_chans=1,
        out=out_dir,
        quiet=True,
        resolution=16,
        limit_test=50,
    )
    results[rank] = (result.summary, scored)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_share_scores_and_take_the_same_decisions(fake_fmnist, tmp_path):
    import torch.multiprocessing as mp
    import yaml

    from nascomp.core.io import read_json
    from tests.test_search import TINY

    space_path = tmp_path / "tiny-search.yaml"
    space_path.write_text(yaml.safe_dump(TINY))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, port, str(fake_fmnist), str(space_path), str(out), results), nprocs=2)
    summary0, scored0 = results[0]
    summary1, scored1 = results[1]
    assert scored0 == scored1 and len(scored0) >= 3  # every rank sees every score (each evaluated half of them)
    assert summary1 == {} and summary0 == read_json(out / "best_arch.json")
    assert summary0["budget"]["within"]
    memo = (out / "evolution" / "step-1" / "scores.jsonl").read_text().splitlines()
    assert len(memo) == len(set(memo))  # written once, by rank 0


def _memo_worker(rank: int, world: int, port: int, data_dir: str, memo: str, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from nascomp.core.distributed import init_distributed
    from nascomp.data import load_data
    from nascomp.nas import scoring
    from nascomp.nas.supernet import Supernet
    from tests.test_supernet import TINY

    info = init_distributed("cpu")
    if rank == 1:  # this rank read the memo before rank 0 had appended its last line
        scoring.read_memo = lambda path: {}
    data = load_data("fashion-mnist", data_dir, limit_train=32, limit_val=16)
    net = Supernet(TINY, num_classes=10, img_size=16)
    scorer = scoring.SupernetScorer(net, data.val, data.transform(16, 3, train=False), batch_size=8, memo=memo, dist=info)
    try:
        results[rank] = [s["top1"] for s in scorer.score([TINY.largest(), TINY.smallest()])]
    except KeyError as e:
        results[rank] = f"KeyError {e}"
    dist.destroy_process_group()


@pytest.mark.slow
def test_every_rank_scores_from_rank_0s_memo_even_when_it_read_the_file_early(fake_fmnist, tmp_path):
    import json

    import torch.multiprocessing as mp

    from tests.test_supernet import TINY

    memo = tmp_path / "scores.jsonl"  # rank 0's memo already holds the largest arch's score
    memo.write_text(json.dumps({"arch": TINY.largest().to_dict(), "score": {"top1": 12.5, "top5": 50.0, "loss": 2.0, "n": 16}}) + "\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_memo_worker, args=(2, port, str(fake_fmnist), str(memo), results), nprocs=2)
    assert results[0] == results[1] and results[0][0] == 12.5, dict(results)  # the memo's score, on both ranks
    assert len(memo.read_text().splitlines()) == 2  # the smallest arch's score, appended once
