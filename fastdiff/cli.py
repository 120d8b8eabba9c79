"""The ``fastdiff`` command line."""
from __future__ import annotations

import argparse
import sys

from .runner import DEVICES, PROFILES, reproduce


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastdiff", description="fastdiff: diffusion acceleration studies")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="execute the study notebooks with papermill")
    rep.add_argument("--profile", choices=PROFILES, default="quick",
                     help="quick: laptop CPU, minutes; full: a GPU, the papers' settings where they fit")
    rep.add_argument("--device", choices=DEVICES, default="auto")
    rep.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 00,02")
    rep.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>/)")
    rep.add_argument("--notebooks", default=None, help="folder of notebooks (default: ./notebooks)")
    rep.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's own)")
    inf = sub.add_parser("info", help="versions, devices, dtype support, pretrained weights and datasets present")
    inf.add_argument("--data-root", default="data", help="where torchvision datasets are looked for")
    wts = sub.add_parser("weights", help="download the pretrained files the studies use, and report them")
    wts.add_argument("--check", action="store_true", help="only report what is present; download nothing")
    wts.add_argument("--only", default=None, help="comma-separated keys, e.g. alexnet,vgg11")
    args = parser.parse_args(argv)

    if args.command == "reproduce":
        try:
            code, _ = reproduce(profile=args.profile, device=args.device, only=args.only, out=args.out,
                                notebooks_dir=args.notebooks, kernel_name=args.kernel)
        except (ValueError, FileNotFoundError) as e:
            print(f"fastdiff reproduce: {e}", file=sys.stderr)
            return 2
        return code
    if args.command == "info":
        from .info import format_info
        print(format_info(args.data_root))
        return 0
    if args.command == "weights":
        from .info import fetch_weights
        try:
            code, report = fetch_weights(args.only.split(",") if args.only else None, check_only=args.check)
        except ValueError as e:
            print(f"fastdiff weights: {e}", file=sys.stderr)
            return 2
        print(report)
        return code
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
