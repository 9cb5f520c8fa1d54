"""``cloudfree``: the command line of the library, one subcommand per task.

cloudfree pack ...      pack SEN12MS-CR-TS or a tile manifest into HDF5 (alias cloudfree-pack)
cloudfree predict ...   reconstruct GeoTIFF series with a trained model (or its ONNX export)
cloudfree score ...     masked/observed metrics of any reconstruction
cloudfree export ...    export a trained model to ONNX or TorchScript, checked against PyTorch

Each subcommand's module is loaded only when it runs, so that ``cloudfree pack`` works with
the core install (no PyTorch) and ``cloudfree --help`` loads nothing heavy.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module in this package, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "pack": ("pack", "pack a SEN12MS-CR-TS region/split or a tile manifest into HDF5"),
    "predict": ("predict", "reconstruct GeoTIFF series with a trained model or its ONNX file"),
    "score": ("score", "masked/observed metrics of a reconstruction against the truth"),
    "export": ("export", "export a trained model to ONNX or TorchScript, checked"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(
        [
            "usage: cloudfree {" + ",".join(COMMANDS) + "} ...",
            "",
            (__doc__ or "").split("\n")[0],
            "",
            "subcommands:",
            *lines,
            "",
            "cloudfree <subcommand> --help shows a subcommand's arguments.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(usage(), file=sys.stderr)
        print(f"cloudfree: error: unknown subcommand {name!r}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    return int(module.main(rest, prog=f"cloudfree {name}"))


if __name__ == "__main__":
    sys.exit(main())
