"""The digits classifier of digits_classifier.py, trained data-parallel over MPI ranks with fastopt.distributed.

Every rank builds the same network (rank 0's initial weights are broadcast), walks the same shuffled order of the
training set, and takes its own share of each minibatch of 64: with W ranks, rank r gets the batch's rows r, r+W,
r+2W, ... The gradient of each share is weighted by its size, so that the average over the ranks is the gradient
of the whole batch's mean loss, the one a single process computes. By default the ranks average the gradients with
fastopt.distributed.allreduce_grads and each steps its own fastopt.AdamW; with --zero a ZeroRedundancyOptimizer
does the averaging and keeps only 1/W of AdamW's state on each rank. The learning rate follows a cosine decay.
Every rank prints its final test accuracy: they agree, and agree with the single-process run
(python examples/data_parallel.py), up to float32 rounding in the batch sums. The optimizer state is
checkpointed (consolidated on rank 0 for --zero) into --out-dir as data_parallel_state.npz.

Needs scikit-learn and mpi4py with an MPI library (pip install "fastopt[mpi]" scikit-learn).

    mpiexec -n 2 python -m mpi4py examples/data_parallel.py
    mpiexec -n 2 python -m mpi4py examples/data_parallel.py --zero --quick
    python examples/data_parallel.py                      # the same training in one process
"""
from __future__ import annotations

import sys

import numpy as np
from _common import out_path, parser

import fastopt as fo
from fastopt import lr_scheduler


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: 30, 5 with --quick)")
    ap.add_argument("--zero", action="store_true", help="ZeroRedundancyOptimizer instead of allreduce_grads + AdamW")
    args = ap.parse_args(argv)
    try:
        from mpi4py import MPI

        from fastopt import distributed as dist
    except ImportError as e:
        print(f"this example needs mpi4py and an MPI library: {e}", file=sys.stderr)
        return 1
    try:
        from digits_classifier import Net, load
        Xtr, ytr, Xte, yte = load()
    except ImportError:
        print("this example needs scikit-learn for its bundled digits data set: pip install scikit-learn",
              file=sys.stderr)
        return 1
    comm = MPI.COMM_WORLD
    rank, world = comm.rank, comm.size
    epochs = args.epochs or (5 if args.quick else 30)
    batch = 64
    steps = epochs * -(-len(ytr) // batch)

    net = Net(np.random.default_rng(1 + rank))          # different on each rank until the broadcast
    params = [net.W1, net.b1, net.W2, net.b2]
    dist.broadcast_parameters(params, comm=comm, root=0)
    groups = [{"params": [net.W1, net.W2]}, {"params": [net.b1, net.b2], "weight_decay": 0.0}]
    if args.zero:
        opt = dist.ZeroRedundancyOptimizer(groups, fo.AdamW, comm=comm, lr=3e-3, weight_decay=1e-2)
    else:
        opt = fo.AdamW(groups, lr=3e-3, weight_decay=1e-2)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=1e-5)
    if rank == 0:
        mode = "ZeroRedundancyOptimizer(AdamW)" if args.zero else "allreduce_grads + AdamW"
        print(f"digits: {len(ytr)} train / {len(yte)} test images, 64-128-10 ReLU net, {world} rank(s), {mode}, "
              f"global batch {batch}, {epochs} epochs = {steps} steps")
        print("epoch  train loss  test acc")
    order_rng = np.random.default_rng(2)                # the same shuffles on every rank
    for epoch in range(1, epochs + 1):
        order = order_rng.permutation(len(ytr))
        total = 0.0
        for start in range(0, len(ytr), batch):
            idx = order[start:start + batch]
            mine = idx[rank::world]
            opt.zero_grad()
            if len(mine):
                loss = net.loss_and_grads(Xtr[mine], ytr[mine])
                weight = np.float32(len(mine) * world / len(idx))   # share of the batch, times W (averaged next)
                for p in params:
                    p.grad *= weight
            else:                                        # a batch smaller than the number of ranks
                loss = 0.0
                for p in params:
                    p.grad = np.zeros_like(p.data)
            if not args.zero:
                dist.allreduce_grads(params, comm=comm)
            opt.step()
            sched.step()
            total += comm.allreduce(loss * len(mine))
        if rank == 0 and (epoch == 1 or epoch == epochs or epoch % max(1, epochs // 5) == 0):
            acc = float(np.mean(net.logits(Xte).argmax(axis=1) == yte))
            print(f"{epoch:>5}  {total / len(ytr):10.4f}  {100 * acc:7.2f}%")
    correct = int(np.sum(net.logits(Xte).argmax(axis=1) == yte))
    lines = comm.gather(f"rank {rank}/{world}: test accuracy: {100 * correct / len(yte):.2f}% ({correct}/{len(yte)})",
                        root=0)
    if args.zero:
        opt.consolidate_state_dict(to=0)
    if rank == 0:
        print("\n".join(lines))
        path = out_path(args, "data_parallel_state.npz")
        fo.save(opt.state_dict(), path)
        print(f"optimizer state written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
