"""The anchor of `cargo xtask bench embed`: the Python loop users write
between training and evaluation. Every <identity>/<file>.jpg under CROPS in
sorted order, PIL decode to RGB, (x - 127.5) / 127.5, NCHW, batches of 32 on
an onnxruntime CPU session with 2 intra-op threads, L2-normalised rows saved
to OUT.npy. Prints the image count.

    python embed_loop.py MODEL.onnx CROPS OUT.npy [--threads 2] [--batch 32]
"""

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("crops")
    p.add_argument("out")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    root = Path(a.crops)
    paths = sorted(str(q.relative_to(root)) for q in root.rglob("*.jpg"))
    rows = []
    for start in range(0, len(paths), a.batch):
        batch = np.stack(
            [np.asarray(Image.open(root / q).convert("RGB"), np.float32) for q in paths[start : start + a.batch]]
        )
        x = ((batch - 127.5) / 127.5).transpose(0, 3, 1, 2)
        rows.append(session.run(None, {name: np.ascontiguousarray(x)})[0])
    e = np.concatenate(rows)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    np.save(a.out, e.astype(np.float32))
    print(len(paths))


if __name__ == "__main__":
    main()
