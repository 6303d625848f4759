#!/usr/bin/env python3
"""Reference K-Face -> arcface_torch RecordIO converter, as a Python user
would write it with the usual tools, for `cargo xtask bench convert`.

It does the work `facekit convert` does on the same tree: find
`<ID>/S00a/Lb/E0c/Cn.jpg` below SRC (all but L7), take the 5 landmarks
(K-Face lines 1, 2, 0, 3, 4) from the image's own annotation or from the
S001 image of the same identity, camera and expression at the nearest
annotated light, decode with cv2, fit the similarity transform to the
insightface ArcFace template with skimage (Umeyama), warp with
cv2.warpAffine to 112x112, encode with cv2.imencode at quality 95 and write
an indexed RecordIO (insightface "flat" layout) with mxnet.recordio, in a
seeded shuffle. Full profiles (C1, C13) are cropped from the square face
box instead. Decode/align/encode run in a pool of worker processes.

Usage: convert_reference.py SRC OUT [--workers 2] [--seed 0]
Prints one JSON line: {"images": N, "failed": F, "seconds": S, "images_per_s": R}
(seconds counted after the imports).
"""

import argparse
import json
import os
import random
import re
import sys
import time
from multiprocessing import Pool

import cv2
import mxnet as mx
import numpy as np
from skimage.transform import SimilarityTransform

ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
PATH = re.compile(r"(?:^|/)(\d{8})/S(\d{3})/L(\d+)/E(\d{2})/C(\d+)\.jpg$")
ANNOTATED_LIGHTS = (1, 3, 6, 7)
SIZE = 112


def discover(root):
    """(path, identity, s, l, e, c) of every selected image, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not name.endswith(".jpg"):
                continue
            path = os.path.join(dirpath, name)
            m = PATH.search(path.replace(os.sep, "/"))
            if not m:
                continue
            ident, s, l, e, c = m.group(1), *map(int, m.groups()[1:])
            if l == 7:
                continue
            found.append((path, ident, s, l, e, c))
    found.sort(key=lambda t: (t[1], t[2], t[3], t[4], t[5]))
    return found


def read_annotation(path):
    """(5x2 ArcFace-order points, face box) or None."""
    try:
        with open(path) as f:
            rows = [re.split(r"[ \t,;]+", line.strip()) for line in f if line.strip()]
        pts = np.array([[float(v) for v in r[:2]] for r in rows[:7]], dtype=np.float32)
        box = [int(float(v)) for v in rows[7][:4]]
    except (OSError, ValueError, IndexError):
        return None
    if pts.shape != (7, 2):
        return None
    return pts[[1, 2, 0, 3, 4]], box


def landmarks(item, cache):
    path, ident, s, l, e, c = item
    own = os.path.splitext(path)[0] + ".txt"
    if os.path.exists(own):
        return read_annotation(own)
    # Sibling: S001, same identity, camera and expression, nearest annotated light.
    ident_dir = path[: path.rfind(ident) + len(ident)]
    for light in sorted(ANNOTATED_LIGHTS, key=lambda a: (abs(a - l), a)):
        sib = os.path.join(ident_dir, "S001", f"L{light}", f"E{e:02d}", f"C{c}.txt")
        if sib not in cache:
            cache[sib] = read_annotation(sib) if os.path.exists(sib) else None
        if cache[sib] is not None:
            return cache[sib]
    return None


def align(job):
    path, points, box, profile = job
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        return None
    if profile:
        x, y, w, _h = box
        k = SIZE / w
        matrix = np.array([[k, 0, -x * k], [0, k, -y * k]], dtype=np.float64)
    else:
        tform = SimilarityTransform()
        if not tform.estimate(points, ARCFACE_112):
            return None
        matrix = tform.params[0:2, :]
    crop = cv2.warpAffine(img, matrix, (SIZE, SIZE), borderValue=0.0)
    ok, jpg = cv2.imencode(".jpg", crop, [int(cv2.IMWRITE_JPEG_QUALITY), 95])
    return jpg.tobytes() if ok else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    start = time.perf_counter()

    items = discover(args.src)
    identities = sorted({it[1] for it in items})
    label_of = {ident: k for k, ident in enumerate(identities)}
    cache = {}
    jobs, labels, failed = [], [], 0
    for it in items:
        lm = landmarks(it, cache)
        if lm is None:
            failed += 1
            continue
        points, box = lm
        jobs.append((it[0], points, box, it[5] in (1, 13)))
        labels.append(label_of[it[1]])
    order = list(range(len(jobs)))
    random.Random(args.seed).shuffle(order)

    os.makedirs(args.out, exist_ok=True)
    rec = mx.recordio.MXIndexedRecordIO(
        os.path.join(args.out, "train.idx"), os.path.join(args.out, "train.rec"), "w"
    )
    written = 0
    with Pool(args.workers) as pool:
        crops = pool.imap(align, [jobs[i] for i in order], chunksize=32)
        for i, jpg in zip(order, crops):
            if jpg is None:
                failed += 1
                continue
            header = mx.recordio.IRHeader(0, float(labels[i]), written, 0)
            rec.write_idx(written, mx.recordio.pack(header, jpg))
            written += 1
    rec.close()
    seconds = time.perf_counter() - start
    json.dump(
        {"images": written, "failed": failed, "seconds": seconds, "images_per_s": written / seconds},
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
