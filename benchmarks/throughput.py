"""Trainable throughput: seconds per epoch of the `mlp` trainable's loop against a plain torch
loop over the same in-memory tensors (the practical limit) and against the Ray Tune tutorial
pattern (torchvision dataset + transforms + DataLoader), same threads, same batch sizes, in one
process.

    HPO_DATA_DIR=../shared/datasets python benchmarks/throughput.py [--threads 1] [--epochs 2]

The plain loop is the practical limit (what a careful user writes by hand: index-slice batches,
no evaluation). The trainable's epoch also evaluates validation (5,000 images) and, when
validation improves, test (10,000 images): that is included in its time, as a user pays it.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hpo.contract import Settings
from hpo.data import load_dataset
from hpo.trainables import get_trainable


def plain_epoch_s(x: torch.Tensor, y: torch.Tensor, bs: int, epochs: int) -> float:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(y))
        for i in range(0, len(y), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return min(times)


def tutorial_epoch_s(root: Path, bs: int) -> float:
    """The usual tutorial: torchvision MNIST, ToTensor + Normalize per image, a DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    loader = DataLoader(datasets.MNIST(str(root), train=True, download=False, transform=tf),
                        batch_size=bs, shuffle=True, num_workers=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    t0 = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def unpacked_mnist(tmp: Path) -> Path:
    """torchvision wants the raw files unpacked; do it in a temp folder (../shared is read-only)."""
    from hpo.data.base import default_data_dir
    from hpo.data.mnist import FILES, raw_dir

    dst = tmp / "MNIST" / "raw"
    dst.mkdir(parents=True)
    for fname, _ in FILES.values():
        with gzip.open(raw_dir(default_data_dir()) / fname) as f:
            (dst / fname.removesuffix(".gz")).write_bytes(f.read())
    return tmp


def settings(epochs: int, key: str) -> Settings:
    """What a trial of a fifo (or ASHA) run gets: the test set evaluated on the best-validation
    weights where the trial ends, not at every improvement (hpo.runner.tuning.test_epochs)."""
    return Settings(max_epochs=epochs, metric="val_acc", data_key=key, test_epochs=frozenset({epochs}))


def interleaved(plain, hpo, rounds: int) -> tuple[float, float]:
    """Best seconds of each, the two alternating `rounds` times: on a shared machine a slow
    spell then hits both, not whichever happened to run during it."""
    ps, hs = [], []
    for _ in range(rounds):
        ps.append(plain())
        hs.append(hpo())
    return min(ps), min(hs)


def hpo_epoch_s(ds, bs: int, epochs: int) -> float:
    times: list[float] = []
    get_trainable("mlp").train(
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": bs, "hidden": [128]},
        ds, settings(epochs, "bench"), lambda m, s: times.append(m["epoch_time_s"]))
    return min(times)


def cnn_rows(ds_full, threads: int, epochs: int, rounds: int, n: int = 5000) -> list[str]:
    """cnn (2 conv blocks 32/64, dense 128) on the first n images: hpo's loop vs a plain loop."""
    from dataclasses import replace

    from hpo.trainables.cnn import Config, build_model
    from hpo.trainables.loop import to_tensors

    # 1,000 validation and test images, so the epoch is mostly training as in the plain loop
    ds = replace(ds_full, x_train=ds_full.x_train[:n], y_train=ds_full.y_train[:n],
                 x_val=ds_full.x_val[:1000], y_val=ds_full.y_val[:1000],
                 x_test=ds_full.x_test[:1000], y_test=ds_full.y_test[:1000])
    t = to_tensors(ds, (1, 28, 28), key="bench-cnn")
    rows = []
    for bs in (64, 128):
        def plain(bs: int = bs) -> float:
            torch.manual_seed(0)
            model = build_model(Config(), (1, 28, 28), 10)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            times = []
            for _ in range(epochs):
                t0 = time.perf_counter()
                perm = torch.randperm(n)
                for i in range(0, n, bs):
                    idx = perm[i:i + bs]
                    loss = F.cross_entropy(model(t.x_train[idx]), t.y_train[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                times.append(time.perf_counter() - t0)
            return min(times)

        def hpo(bs: int = bs) -> float:
            times: list[float] = []
            get_trainable("cnn").train({"lr": 0.01, "momentum": 0.9, "batch_size": bs}, ds,
                                       settings(epochs, "bench-cnn"),
                                       lambda m, s, out=times: out.append(m["epoch_time_s"]))
            return min(times)

        p, h = interleaved(plain, hpo, rounds)
        rows.append(f"| cnn, batch {bs} | {p:.2f} | {h:.2f} | {p / h:.2f}x | {n / h:,.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="plain and hpo alternate this many times")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset("mnist", strict=True)
    from hpo.trainables.loop import to_tensors

    t = to_tensors(ds, (784,), key="bench")
    n = len(t.y_train)
    print(f"### Trainable throughput: MLP 784-128-10, {n} training images, {args.threads} thread(s), "
          f"best of {args.epochs} epochs, "
          f"{args.rounds} alternating rounds\n")
    print("| batch | plain loop s/epoch | hpo `mlp` s/epoch | hpo / plain speed | tutorial DataLoader "
          "s/epoch | hpo / tutorial samples/s | hpo samples/s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = unpacked_mnist(Path(tmp))
        for bs in (64, 128, 1024, n):
            p, h = interleaved(lambda bs=bs: plain_epoch_s(t.x_train, t.y_train, bs, args.epochs),
                               lambda bs=bs: hpo_epoch_s(ds, bs, args.epochs), args.rounds)
            tut = tutorial_epoch_s(root, min(bs, 60_000))
            ratio = (n / h) / (60_000 / tut)  # samples per second, hpo over tutorial
            print(f"| {bs} | {p:.3f} | {h:.3f} | {p / h:.2f}x | {tut:.2f} | {ratio:.1f}x | {n / h:,.0f} |")
    print(f"\n| cnn (5,000 train / 1,000 val / 1,000 test images, {args.threads} thread(s), best of "
          f"{args.epochs} epochs, {args.rounds} alternating rounds) "
          "| plain loop s | hpo `cnn` s | hpo / plain speed | hpo samples/s |\n|---|---|---|---|---|")
    print("\n".join(cnn_rows(ds, args.threads, args.epochs, args.rounds)))
    print("\nhpo's epoch also evaluates the validation images (5,000; 1,000 for the cnn) and keeps "
          "running train loss/accuracy, and the trial evaluates the test set once, on its best "
          "weights, when it ends (a fifo run's trial; that epoch is the slower of the two); the plain "
          "loop does none of it. The tutorial loader iterates all 60,000 training images (no "
          "validation split).")


if __name__ == "__main__":
    main()
