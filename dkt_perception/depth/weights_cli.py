"""``dkt-stack weights fetch|check|export``: get DKT's weights, list them, write a diffusers folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dkt_perception.depth import weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("fetch", "download the needed files and build the text cache"), ("check", "list files, sizes, sha256"),
                       ("export", "merge the LoRA and write a diffusers folder (<dir>/diffusers)")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--dir", default="", help="weights folder (default $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights)")
        if name == "check":
            p.add_argument("--no-hash", action="store_true", help="skip sha256 (fast)")
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "fetch":
            p.add_argument("--device", default="cpu", help="device for the one-off umT5 pass")


def run(args: argparse.Namespace) -> int:
    """Errors (no network, missing files) are raised: ``dkt-stack`` prints them as one line with the fix."""
    root = Path(args.dir).expanduser() if args.dir else weights.default_weights_dir()
    if args.action == "fetch":
        weights.fetch(root, device=args.device)
        print(f"weights ready in {root}")
        return 0
    if args.action == "check":
        rows = weights.check(root, hashes=not args.no_hash)
        if args.json:
            print(json.dumps(rows))
        else:
            for r in rows:
                size = f"{r['size'] / 2**20:10.1f} MiB" if r["size"] is not None else "   missing   "
                need = "run time" if r["runtime"] else "fetch only"
                print(f"{'ok ' if r['present'] else 'MISSING'} {size}  {need:10}  {r['file']}  {r['sha256'] or ''}")
        missing = [r for r in rows if r["runtime"] and not r["present"]]
        export_ok = (root / weights.EXPORT_DIR / "transformer" / "config.json").is_file()
        return 0 if (not missing or (export_ok and (root / weights.TEXT_CACHE).is_file())) else 1
    from dkt_perception.depth import wan_model

    paths = weights.runtime_weights(root)
    if paths.diffusers_dir is not None:
        print(f"already exported: {paths.diffusers_dir}")
        return 0
    net = wan_model.load_transformer_single_file(paths.dit)
    wan_model.merge_dkt_lora(net, paths.lora)
    vae = wan_model.load_vae_single_file(paths.vae)
    out = wan_model.export_diffusers(net, vae, root / weights.EXPORT_DIR)
    print(f"exported to {out}")
    return 0
