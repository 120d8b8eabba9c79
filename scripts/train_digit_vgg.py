"""Train the digit VGG-11 stand-in for study 1 and write fastdiff/assets/digit_vgg11.pt.

    python scripts/train_digit_vgg.py [--epochs 8] [--seed 0] [--out fastdiff/assets/digit_vgg11.pt]

VGG-11's first three stages plus a linear head, trained on the 4,500-digit train split of the built-in digits;
reports held-out accuracy on real digits and on 4x-upsampled LR digits. A few minutes on a 2-core CPU.
"""
import argparse
import json
from pathlib import Path

from fastdiff.studies.digit_vgg import save_digit_vgg, train_digit_vgg
from fastdiff.weights import weight_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=weight_path("digit-vgg11"))
    args = parser.parse_args()
    model, info = train_digit_vgg(epochs=args.epochs, seed=args.seed)
    save_digit_vgg(model, info, args.out)
    print(json.dumps(info, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
