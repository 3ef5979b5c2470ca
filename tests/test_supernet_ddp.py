"""Supernet training under DDP (gloo, 2 CPU processes): every rank trains the same subnet sequence."""

from __future__ import annotations

import os
import socket

import pytest
import torch


def _worker(rank: int, world: int, port: int, data_dir: str, out_dir: str, distill: bool, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    import nascomp.nas.supernet.train as train_module
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
    net = train_module.fit_supernet(
        TINY,
        data,
        out_dir,
        init_seed=rank,  # different initial weights per rank: DDP must broadcast rank 0's
        preset="smoke",
        resolution=16,
        epochs=2,
        batch_size=16,
        quiet=True,
        device="cpu",
        sampler="sandwich",
        num_random=2,
        distill=distill,
    ).model
    dist.barrier()
    results[rank] = (drawn, {k: v.detach().clone() for k, v in net.state_dict().items()})
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("distill", [False, True])
def test_ddp_ranks_draw_the_same_subnets_and_stay_in_sync(fake_fmnist, tmp_path, distill):
    """Same subnet sequence on every rank, and identical weights after training: with distillation the last
    (synchronising) backward uses only the smallest subnet, so this also checks that gradients accumulated
    under no_sync by the wider subnets are all-reduced."""
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_worker, args=(2, port, str(fake_fmnist), str(tmp_path / "run"), distill, results), nprocs=2)
    drawn0, weights0 = results[0]
    drawn1, weights1 = results[1]
    assert len(drawn0) == 2 * 4  # 2 epochs x (128 images / 2 ranks / batch 16) steps
    assert drawn0 == drawn1
    assert len({tuple(step[1:-1]) for step in drawn0}) > 1  # the random middle subnets change from step to step
    assert weights0.keys() == weights1.keys()
    assert all(torch.equal(weights0[k], weights1[k]) for k in weights0)
