"""`edgecn classify`: answer image files with a built artifact, through the public ``edgecn.runner.Classifier``."""

from __future__ import annotations

from edgecn.cli import subcommand
from edgecn.limits import number


@subcommand("classify", help="classify image files with a built .tflite/.pte/.onnx artifact (top-k labels; torch-free)")
def configure(p):
    p.epilog = ("Images are read as an app would pass them (PNG, JPEG, BMP, PPM/PGM, or .npy HxW[xC] arrays in [0, 1]); "
                "resizing, normalisation, layout and int8 quantization come from the artifact's spec, so every "
                "artifact of a build is used the same way. Python: `from edgecn.runner import Classifier`.")
    p.add_argument("artifact", help="a .tflite, .pte, .onnx or engine written by `edgecn build`")
    p.add_argument("images", nargs="+", help="image files, or folders of them (searched recursively)")
    p.add_argument("--top", type=number(int, 1, 1000), default=5, metavar="K", help="how many classes to show per image (default 5)")
    p.add_argument("--threads", type=number(int, 1, 256), default=None, help="the runtime's threads (default: its own choice)")
    p.add_argument("--force", action="store_true", help="run an artifact whose sha256 differs from its manifest's")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args):
    import json
    from pathlib import Path

    from edgecn.errors import EdgecnError
    from edgecn.report import table
    from edgecn.runner import Classifier
    from edgecn.runner.inputs import IMAGE_SUFFIXES, image_file

    files = []
    for name in args.images:
        p = Path(name)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES + (".npy",) and f.is_file())
            if not found:
                raise EdgecnError(f"no images in {name!r}", f"put {', '.join(IMAGE_SUFFIXES)} or .npy files there")
            files += found
        else:
            files.append(p)
    answers = []
    with Classifier(args.artifact, threads=args.threads, allow_unverified=args.force) as model:
        for f in files:
            answers.append((f, model.predict(image_file(f))))
    if args.json:
        print(json.dumps({"artifact": args.artifact, "verified": model.verified,
                          "results": [{"image": str(f), **r.to_dict(args.top)} for f, r in answers]}, indent=2))
        return 0
    rows = [[str(f), r.label, f"{100 * r.probability:.1f}%",
             "  ".join(f"{name} {100 * p:.1f}%" for name, p in r.top(args.top)[1:])] for f, r in answers]
    print(table(["image", "class", "probability", f"next {args.top - 1}"], rows))
    if not model.verified:
        print(f"(unverified: no manifest in its folder lists {args.artifact} with this sha256)")
    return 0

