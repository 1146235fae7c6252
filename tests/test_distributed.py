"""Data-parallel training: a 2-process gloo run on CPU follows the single-process run step by step.

The 2-process run is launched the way users launch it, ``torchrun --nproc_per_node=2 -m
featherface.train CONFIG`` (as a subprocess, on 127.0.0.1 with a free port), on a tiny real-data
config: v2_ultra, 128x128 crops, global batch 4 (2 images per rank), 0 loader workers, 4 steps over
12 WIDER FACE images (3 steps per epoch, so an epoch boundary is crossed).

Why the losses can match: each rank takes its half of the same seeded global batch, the
augmentation of an image depends only on (seed, epoch, index), the loss terms are normalised by the
global positive counts, and DDP averages the gradients, so the optimiser sees the gradient of the
global batch's loss. BatchNorm is the one place where a rank would otherwise see only its own half
of the batch; ``sync_bn: true`` computes the statistics over the global batch, so the comparison run
uses it (without it the runs legitimately differ).

Tolerances: the two runs differ only in floating-point summation order (per-rank sums combined by
all-reduce, convolutions on 2 instead of 4 images). The implementation itself is exact: run in
float64, the 2-process gradients of the first step equal the single-process ones to ~1e-13 relative.
In float32, the first step's loss differs by ~2e-7 relative (asserted: rel 1e-4). Afterwards the
weights differ by rounding too, and AdamW's first updates are ~``lr * sign(grad)`` whatever the
gradient's size, so near-zero gradient components whose sign is decided by rounding move by
``+-lr``: later steps are held to rel 1e-3 (observed ~1e-5 at the test's lr 1e-4; the differences
grow with the learning rate, ~5e-4 at lr 1e-3, which is why the test uses 1e-4). The resumed
single-process run reproduces the 2-process steps to ~1e-7.

Needs ``FEATHERFACE_SHARED`` (WIDER FACE train images, ImageNet backbone).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from featherface.train.config import TrainConfig
from featherface.train.loop import Trainer
from featherface.train.sampler import EpochBatchSampler
from tests.conftest import shared_file
from tests.test_train import BACKBONE, IMAGES, small_labels  # noqa: F401 - the fixture is used below

FIRST_STEP_REL = 1e-4
LATER_STEPS_REL = 1e-3
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(shared: Path, labels: Path, out: Path, **kw: object) -> dict:
    base = dict(
        model="v2_ultra", train_data=[{"format": "widerface", "labels": str(labels), "images": str(shared / IMAGES)}],
        out_dir=str(out), image_size=128, batch_size=4, epochs=2, max_steps=4, lr=1e-4, pct_start=0.1, workers=0,
        seed=3, backbone_weights=str(shared_file(shared, BACKBONE)), log_every=1, progress=False,
        save_every_epochs=0, save_every_steps=2, sync_bn=True, threads=1, device="cpu",
    )
    base.update(kw)
    return base


def _losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["total"] for r in records if "total" in r}


def test_sampler_shards_the_global_batch() -> None:
    single = list(EpochBatchSampler(22, 4, seed=5, epoch=2, start_batch=1))
    ranks = [EpochBatchSampler(22, 4, seed=5, epoch=2, start_batch=1, rank=r, world_size=2) for r in (0, 1)]
    assert all(len(s) == len(single) == 4 for s in ranks)
    assert [a + b for a, b in zip(*(list(s) for s in ranks))] == single
    with pytest.raises(ValueError, match="not divisible"):
        EpochBatchSampler(22, 6, seed=0, epoch=0, world_size=4)
    with pytest.raises(ValueError, match="invalid rank"):
        EpochBatchSampler(22, 4, seed=0, epoch=0, rank=2, world_size=2)


def _bn_worker(rank: int, port: int, x: torch.Tensor, result: dict) -> None:  # pragma: no cover - subprocess
    import torch.distributed as dist

    from featherface.train.distributed import GlobalBatchNorm2d

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    torch.manual_seed(0)
    bn = GlobalBatchNorm2d(3, momentum=0.1)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    xr = x[rank * 2 : (rank + 1) * 2].clone().requires_grad_(True)
    y = bn(xr)
    # the sum over ranks of the per-rank losses is the loss of the whole batch
    (y.square() * torch.arange(1, 4.0)[None, :, None, None]).sum().backward()
    dist.all_reduce(bn.weight.grad)
    result[rank] = (y.detach(), xr.grad, bn.weight.grad, bn.running_mean.clone(), bn.running_var.clone())
    dist.destroy_process_group()


@pytest.mark.slow
def test_global_batchnorm_matches_batchnorm_on_the_whole_batch() -> None:
    """GlobalBatchNorm2d (the CPU SyncBatchNorm) on 2 ranks x 2 images == BatchNorm2d on the 4 images:
    outputs, input and weight gradients, running statistics (rel 1e-5)."""
    import torch.multiprocessing as mp

    torch.manual_seed(1)
    x = torch.randn(4, 3, 5, 6) * 3 + 1
    with mp.Manager() as manager:
        result = manager.dict()
        mp.spawn(_bn_worker, args=(_free_port(), x, result), nprocs=2, join=True)
        result = dict(result)
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3, momentum=0.1)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    xx = x.clone().requires_grad_(True)
    y = bn(xx)
    (y.square() * torch.arange(1, 4.0)[None, :, None, None]).sum().backward()
    for rank in (0, 1):
        y_r, gx_r, gw, rm, rv = result[rank]
        sl = slice(rank * 2, (rank + 1) * 2)
        torch.testing.assert_close(y_r, y.detach()[sl], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gx_r, xx.grad[sl], rtol=1e-5, atol=1e-5)  # through the all-reduces
        torch.testing.assert_close(gw, bn.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(rm, bn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rv, bn.running_var, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_process_run_matches_single_process_and_resumes(shared: Path, small_labels: Path,  # noqa: F811
                                                            tmp_path: Path) -> None:
    # 1) single process, global batch 4
    single = Trainer(TrainConfig.from_dict(_config(shared, small_labels, tmp_path / "single")))
    single.fit()
    expected = {int(r["step"]): r["total"] for r in single.history if "total" in r}
    assert sorted(expected) == [1, 2, 3, 4]

    # 2) the same config, 2 processes x 2 images, through torchrun and `python -m featherface.train`
    cfg_file = tmp_path / "ddp.json"
    cfg_file.write_text(json.dumps(_config(shared, small_labels, tmp_path / "ddp")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "featherface.train", str(cfg_file)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("finished at step 4") == 1, proc.stdout  # rank 0 alone reports
    assert "global batch 4 = 2 x 2, lr 0.0001" in proc.stderr, proc.stderr[-3000:]
    got = _losses(tmp_path / "ddp")
    assert sorted(got) == [1, 2, 3, 4]  # one metrics line per step: rank 0 alone logs
    print("single:", expected, "\n2-proc:", got)
    assert got[1] == pytest.approx(expected[1], rel=FIRST_STEP_REL)
    for step in (2, 3, 4):
        assert got[step] == pytest.approx(expected[step], rel=LATER_STEPS_REL), step

    # 3) the 2-process checkpoint of step 2 resumes in a single process at step 3
    ckpt = tmp_path / "ddp" / "step0000002.pt"
    assert ckpt.exists() and (tmp_path / "ddp" / "last.pt").exists()
    resumed = Trainer(TrainConfig.from_dict(_config(shared, small_labels, tmp_path / "resumed")), resume=ckpt)
    assert resumed.step == 2
    resumed.fit()
    after = {int(r["step"]): r["total"] for r in resumed.history if "total" in r}
    assert sorted(after) == [3, 4]
    for step in (3, 4):
        assert after[step] == pytest.approx(got[step], rel=LATER_STEPS_REL), step
        assert after[step] == pytest.approx(expected[step], rel=LATER_STEPS_REL), step
    print("resumed:", after)
