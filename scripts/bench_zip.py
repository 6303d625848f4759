"""Images/s of `facekit convert` from a tier zip (Python zipfile: outer
stored, inner per-identity zips deflated, as AI Hub ships them) against the
extracted tree holding the same files; checks both give the same train.rec.
(`cargo xtask bench convert --zip` is the full harness; this is the quick
check of the archive path alone.)

  /work/venv-interop/bin/python scripts/bench_zip.py --facekit target/release/facekit --ids 20 --jobs 2
"""

import argparse
import filecmp
import io
import os
import statistics
import subprocess
import tempfile
import time
import zipfile

import cv2
import numpy as np


def annotation(camera):
    points = [(173, 125), (150, 100), (196, 100), (154, 152), (192, 152), (120, 110), (226, 110)]
    text = "".join(f"{x}\t{y}\n" for x, y in points) + "113\t55\t120\t120\n"
    boxes = 6 if camera in (7, 16) else 4 if camera in (1, 2, 12, 13) else 5
    return (text + "140\t90\t20\t20\n" * boxes).encode()


def generate(root, ids):
    """S001 (annotated) and S002 (sibling landmarks), L1 L3, E1-3, C4-10."""
    rng = np.random.default_rng(0)
    tier = os.path.join(root, "tree", "Middle_Resolution")
    images = 0
    with zipfile.ZipFile(os.path.join(root, "Middle_Resolution.zip"), "w", zipfile.ZIP_STORED) as outer:
        for i in range(ids):
            ident = f"1906{2400 + i:04d}"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as inner:
                for s in (1, 2):
                    for light in (1, 3):
                        for e in (1, 2, 3):
                            for c in range(4, 11):
                                stem = f"S{s:03d}/L{light}/E{e:02d}/C{c}"
                                img = cv2.GaussianBlur(rng.integers(0, 255, (230, 346, 3), dtype=np.uint8), (9, 9), 3)
                                files = [(stem + ".jpg", cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())]
                                if s == 1:
                                    files.append((stem + ".txt", annotation(c)))
                                images += 1
                                for name, data in files:
                                    path = os.path.join(tier, ident, name)
                                    os.makedirs(os.path.dirname(path), exist_ok=True)
                                    with open(path, "wb") as f:
                                        f.write(data)
                                    inner.writestr(name, data)
            outer.writestr(ident + ".zip", buf.getvalue())
    return images


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--facekit", default="target/release/facekit")
    ap.add_argument("--ids", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        images = generate(root, args.ids)
        rates = {"tree": [], "Middle_Resolution.zip": []}
        for run in range(args.runs):
            for src in rates:
                out = os.path.join(root, f"out-{run}-{src}")
                start = time.perf_counter()
                subprocess.run([args.facekit, "convert", os.path.join(root, src), "--out", out, "--quiet",
                                "--jobs", str(args.jobs), "--select", "S1-2 L1-3 E1-3 C4-10"], check=True)
                rates[src].append(images / (time.perf_counter() - start))
        same = filecmp.cmp(os.path.join(root, "out-0-tree", "train.rec"),
                           os.path.join(root, "out-0-Middle_Resolution.zip", "train.rec"), shallow=False)
        tree, zipped = (statistics.median(rates[k]) for k in rates)
        print(f"{images} images, median of {args.runs} runs, --jobs {args.jobs}")
        print(f"extracted tree        {tree:8.1f} images/s")
        print(f"Middle_Resolution.zip {zipped:8.1f} images/s ({100 * (zipped / tree - 1):+.1f}%)")
        print(f"train.rec identical: {same}")


if __name__ == "__main__":
    main()
