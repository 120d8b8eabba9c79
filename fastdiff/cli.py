"""The ``fastdiff`` command line. Every error is one line that says what to do, with exit code 2."""
from __future__ import annotations

import argparse
import signal
import sys

from .runner import DEVICES, PROFILES


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        self.exit(2, f"{self.prog}: {message} (see {self.prog.split()[0]} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastdiff", description="fastdiff: diffusion acceleration studies")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    rep = sub.add_parser("reproduce", help="execute the study notebooks with papermill")
    rep.add_argument("--profile", choices=PROFILES, default="quick",
                     help="quick: laptop CPU, minutes; full: a GPU, the papers' settings where they fit")
    rep.add_argument("--device", choices=DEVICES, default="auto")
    rep.add_argument("--only", default=None, help="comma-separated notebook numbers or names, e.g. 00,02")
    rep.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>/)")
    rep.add_argument("--notebooks", default=None, help="folder of notebooks (default: ./notebooks)")
    rep.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's own)")
    rep.add_argument("--pretrained", default=None, metavar="ID_OR_FOLDER",
                     help="a diffusers DDPM pipeline (google/ddpm-cifar10-32, or a folder written by fastdiff "
                          "export-diffusers): notebooks 00, 02, 05 and 07 also measure the papers' settings on it")
    inf = sub.add_parser("info", help="versions, devices, dtype support, pretrained weights and datasets present")
    inf.add_argument("--data-root", default="data", help="where torchvision datasets are looked for")
    wts = sub.add_parser("weights", help="download the pretrained files the studies use, and report them")
    wts.add_argument("--check", action="store_true", help="only report what is present; download nothing")
    wts.add_argument("--only", default=None, help="comma-separated keys, e.g. alexnet,vgg11")
    zoo = sub.add_parser("zoo", help="list the trained models that ship with fastdiff, with their provenance")
    zoo.add_argument("--json", action="store_true", help="print the full index as JSON")
    zoo.add_argument("--markdown", action="store_true", help="print the table as Markdown (for results/README.md)")
    trn = sub.add_parser("train", help="train (or resume) a zoo entry from its recipe, then export it to the zoo")
    trn.add_argument("name", nargs="?", help="a zoo entry, e.g. basics/quick-ddpm; none: list the recipes")
    trn.add_argument("--device", choices=DEVICES, default="auto")
    trn.add_argument("--steps", type=int, default=None, help="stop early at this step (not exported)")
    trn.add_argument("--checkpoints", default="runs/zoo", help="folder of the resumable training checkpoints")
    trn.add_argument("--no-export", action="store_true", help="train only; do not write the zoo entry")
    rpt = sub.add_parser("report", help="gather every study's verdicts and the speed/quality maps from the committed "
                         "results into one table and figures (nothing is trained or measured)")
    rpt.add_argument("--results", default="results", help="the results folder to read (default: results)")
    rpt.add_argument("--out", default=None, help="where claims.{csv,md}, map.{png,csv} and sr_map.png go (default: "
                     "<results>/report)")
    rpt.add_argument("--skip-damaged", action="store_true", help="skip damaged, newer-schema and unknown results files "
                     "and count a study's copies once, with a warning that names them (default: stop with an error)")
    exd = sub.add_parser("export-diffusers", help="write a zoo entry as a diffusers DDPMPipeline folder "
                         "(DDPMPipeline.from_pretrained(FOLDER) loads it offline)")
    exd.add_argument("name", help="a zoo entry with a plain U-Net, e.g. basics/quick-ddpm")
    exd.add_argument("folder", help="the pipeline folder to write (an earlier pipeline folder there is replaced)")
    return parser


def _export_diffusers(args) -> int:
    from .diffusers_io import export_pipeline
    try:
        folder = export_pipeline(args.name, None, args.folder)
    except ImportError as e:       # diffusers is not installed: one line, exit code 2
        raise RuntimeError(str(e)) from e
    print(f"wrote {folder} (load it with diffusers.DDPMPipeline.from_pretrained({str(folder)!r}))")
    return 0


def _report(args) -> int:
    import warnings
    from pathlib import Path
    from .studies.report import (gather_verdicts, headline_line, read_map, verdict_counts, within_interval_lines,
                                 write_claims, write_maps)
    root = Path(args.results)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder {root}: run from the repository root or pass --results")
    with warnings.catch_warnings(record=True) as caught:     # said once, plainly, on stderr
        warnings.simplefilter("always")
        rows = gather_verdicts(root, on_error="warn" if args.skip_damaged else "raise")
    for w in caught:
        print(f"fastdiff report: warning: {w.message}", file=sys.stderr)
    if not rows:
        raise FileNotFoundError(f"no results files with verdicts under {root}: execute the study notebooks first")
    for study, counts in verdict_counts(rows).items():
        print(f"{study:32} " + ", ".join(f"{n} {v}" for v, n in counts.items() if n))
    out = Path(args.out) if args.out else root / "report"
    for path in write_claims(rows, out):
        print(f"wrote {path}")
    for device_type in ("cuda", "cpu"):
        try:
            maps = read_map(device_type, root=root)
        except FileNotFoundError as e:
            print(f"no {device_type} map: {e}")
            continue
        if "digits" in maps:
            print(f"{device_type}: " + "\n  ".join([headline_line(maps["digits"]),
                                                    *within_interval_lines(maps["digits"])]))
        for path in write_maps(maps, out if device_type == "cpu" else out / device_type):
            print(f"wrote {path}")
    return 0


def _zoo(args) -> int:
    import json
    import warnings
    from . import zoo
    with warnings.catch_warnings(record=True) as caught:     # an index field this version does not know
        warnings.simplefilter("always")
        known, rows = zoo.entries(), zoo.table()
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"fastdiff zoo: warning: {message}", file=sys.stderr)
    if args.json:
        import dataclasses
        print(json.dumps({n: dataclasses.asdict(e) for n, e in known.items()}, indent=1))
        return 0
    if not rows:
        print("the zoo is empty: train entries with `fastdiff train NAME` (`fastdiff train` lists the recipes)")
        return 0
    if args.markdown:
        columns = list(rows[0])
        print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
        for r in rows:
            print("| " + " | ".join(str(r[c]) for c in columns) + " |")
        return 0
    import pandas as pd
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _train(args) -> int:
    from .studies.zoo_recipes import recipes, train_recipe
    known = recipes()
    if not args.name:
        for name, r in sorted(known.items()):
            print(f"{name:36} {r.train.steps:>6} steps x batch {r.train.batch_size:<4} {r.description}")
        return 0
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be a positive integer, got {args.steps}")
    out = train_recipe(args.name, device=args.device, checkpoint_dir=args.checkpoints, steps=args.steps,
                       export=not args.no_export)
    if out["entry"] is None:
        print(f"trained to step {out['result']['step']}; checkpoint {out['checkpoint']} (run again to go on)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    name = f"fastdiff {args.command}"
    try:
        if args.command == "reproduce":
            from .runner import reproduce
            code, _ = reproduce(profile=args.profile, device=args.device, only=args.only, out=args.out,
                                notebooks_dir=args.notebooks, kernel_name=args.kernel, pretrained=args.pretrained)
            return code
        if args.command == "info":
            from .info import format_info
            print(format_info(args.data_root))
            return 0
        if args.command == "weights":
            from .info import fetch_weights
            code, report = fetch_weights(args.only.split(",") if args.only is not None else None,
                                         check_only=args.check)
            print(report)
            return code
        if args.command == "zoo":
            return _zoo(args)
        if args.command == "train":
            return _train(args)
        if args.command == "report":
            return _report(args)
        if args.command == "export-diffusers":
            return _export_diffusers(args)
    except KeyboardInterrupt as e:   # fastdiff.train.Interrupted (saved first) says which signal
        print(f"{name}: {e or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except (ValueError, OSError, RuntimeError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{name}: {message}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
