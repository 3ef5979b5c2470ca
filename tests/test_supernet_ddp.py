"""Supernet training under DDP (gloo, 2 CPU processes): every rank trains the same subnet sequence."""

from __future__ import annotations

import os
import socket

import pytest
import torch


def _worker(rank: int, world: int, port: int, data_dir: str, out_dir: str, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    import nascomp.supernet.train as train_module
    from nascomp.data import load_data
    from tests.test_supernet import TINY

    drawn = []
    original = train_module.sample_subnets

    def recording(*args, **kwargs):
        archs = original(*args, **kwargs)
        drawn.append([a.to_json() for a in archs])
        return archs

    train_module.sample_subnets = recording
    data = load_data("fashion-mnist", data_dir, limit_train=128, limit_val=32)
    train_module.train_supernet(TINY, data, out_dir, preset="smoke", resolution=16, epochs=2, batch_size=16, quiet=True,
                                device="cpu", sampler="sandwich", num_random=2)
    from nascomp.supernet import load_supernet

    dist.barrier()
    weights = {k: v.clone() for k, v in load_supernet(out_dir).state_dict().items()} if rank == 0 else None
    results[rank] = (drawn, weights)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_draw_the_same_subnets(fake_fmnist, tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, port, str(fake_fmnist), str(tmp_path / "run"), results), nprocs=2)
    drawn0, weights = results[0]
    drawn1, _ = results[1]
    assert len(drawn0) == 2 * 4  # 2 epochs x (128 images / 2 ranks / batch 16) steps
    assert drawn0 == drawn1
    assert len({tuple(step[1:-1]) for step in drawn0}) > 1  # the random middle subnets change from step to step
    assert weights and all(torch.isfinite(v).all() for v in weights.values())
