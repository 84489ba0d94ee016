"""Build `.device/`: what a GPU lease needs beside the repo (it has torch but not our weight packages or the data).

    python bench/gpu_pack.py [--data DIR] [--variants 0 1 2] [--unlabelled] [--shrink 368]

The lease carries at most 64 MiB together with the tracked tree (about 33 MiB of it the shipped weights), so
the ImageNet backbones travel as float16 copies (relative rounding <= 2**-11, cast back to float32 on load)
with the 1000-class ImageNet classifier stored as a single broadcast zero (our models replace that layer
anyway). Images travel as they are, except that `--shrink S` re-encodes those whose shorter side exceeds S
at S (JPEG quality 95): the image cache resizes every photo to a shorter side of ceil(1.15 x the largest
input size) before anything else, so S = 368 changes nothing but re-encoding noise for runs up to 320 px.
`--unlabelled` also carries test/ (for `--unlabelled .device/data/test`). `--xz` leaves one `pack.tar.xz` in
.device/ instead of the files (about 10 % smaller; bench/gpu_sweep2.sh unpacks it on the device).
"""

from __future__ import annotations

import io
import shutil
import sys
import tarfile
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dance.models.registry import _imagenet_weights_file  # noqa: E402
from dance.paths import find_data_dir  # noqa: E402

OUT = ROOT / ".device"


def pack_weights(variant: int) -> None:
    """Copy the efficientnet-liteN weight package with a float16, head-less .pth."""
    source = _imagenet_weights_file(variant)
    package = source.parent.parent
    target = OUT / "site" / package.name
    shutil.copytree(package, target, ignore=shutil.ignore_patterns("*.pth", "__pycache__"))
    state = torch.load(source, map_location="cpu", weights_only=True)
    small = {}
    for key, value in state.items():
        if key.startswith("_fc."):
            small[key] = torch.zeros(1, dtype=torch.float16).expand(value.shape)  # replaced by our head
        elif value.is_floating_point():
            small[key] = value.half()
        else:
            small[key] = value
    torch.save(small, target / "models" / source.name)


def copy_images(source: Path, target: Path, shrink: int) -> None:
    """Copy a folder of images, re-encoding at a shorter side of `shrink` those larger (0: copy all as they are)."""
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        with Image.open(path) as image:
            small = min(image.size)
            if not shrink or small <= shrink or image.format != "JPEG":
                shutil.copy2(path, target / path.name)
                continue
            scale = shrink / small
            image = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)),
                                                Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=95)
        (target / path.name).write_bytes(buffer.getvalue())


def main() -> None:
    """Rebuild .device/ from scratch."""
    import argparse

    import efficientnet_lite_pytorch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="data set folder (default: the usual search)")
    parser.add_argument("--variants", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2],
                        help="which efficientnet-lite weight packages to carry (default: all three)")
    parser.add_argument("--unlabelled", action="store_true", help="also carry test/ and test.csv")
    parser.add_argument("--xz", action="store_true", help="pack everything into .device/pack.tar.xz")
    parser.add_argument("--shrink", type=int, default=0,
                        help="re-encode JPEGs whose shorter side exceeds this at this side (default 0: as they are)")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "site").mkdir(parents=True)
    shutil.copytree(Path(efficientnet_lite_pytorch.__file__).parent, OUT / "site" / "efficientnet_lite_pytorch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for variant in args.variants:
        pack_weights(variant)
    data = find_data_dir(args.data)
    copy_images(data / "train", OUT / "data" / "train", args.shrink)
    shutil.copy2(data / "train.csv", OUT / "data" / "train.csv")
    if args.unlabelled:
        copy_images(data / "test", OUT / "data" / "test", args.shrink)
        shutil.copy2(data / "test.csv", OUT / "data" / "test.csv")
    if args.xz:
        packed = ROOT / ".device.tar.xz"
        with tarfile.open(packed, "w:xz", preset=6) as tar:
            tar.add(OUT, arcname=".device")
        shutil.rmtree(OUT)
        OUT.mkdir()
        packed.rename(OUT / "pack.tar.xz")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
