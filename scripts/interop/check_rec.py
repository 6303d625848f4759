"""Read DIR/train.rec + DIR/train.idx exactly as arcface_torch's MXFaceDataset
does (recognition/arcface_torch/dataset.py) and print a JSON summary.

Usage:
    python check_rec.py DIR [--records]

    DIR        a directory holding train.rec and train.idx
    --records  also list every sample: key, label, id, flag, shape, mean_rgb

Needs mxnet 1.9.1 and numpy < 1.24 (the venv-interop of facekit's CI).
Exits 0 when every sample was read and decoded; a reading or decoding
error propagates (non-zero exit, Python traceback), as it would in training.

What it mirrors, step by step:
  imgrec = mx.recordio.MXIndexedRecordIO(idx, rec, 'r')
  header0 = unpack(read_idx(0)); flag > 0 -> keys 1..label[0]-1 (insightface
  layout), else every key of the .idx in file order (flat layout);
  per sample: unpack, label = header.label (label[0] if a vector), truncated
  to an integer as torch.tensor(label, dtype=torch.long) does, and
  mx.image.imdecode(img) (RGB, HWC, uint8).

Summary keys: layout, num_samples, header0_flag, labels {min, max,
distinct}, shapes {"HxWxC": count}, dtypes, flags {flag: count},
ids_equal_keys, and records (with --records).
"""

import argparse
import collections
import json
import numbers
import os

import mxnet as mx
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--records", action="store_true")
    args = parser.parse_args()

    imgrec = mx.recordio.MXIndexedRecordIO(
        os.path.join(args.dir, "train.idx"), os.path.join(args.dir, "train.rec"), "r")
    header0, _ = mx.recordio.unpack(imgrec.read_idx(0))
    if header0.flag > 0:
        layout = "insightface"
        imgidx = np.array(range(1, int(header0.label[0])))
    else:
        layout = "flat"
        imgidx = np.array(list(imgrec.keys))

    labels = collections.Counter()
    shapes = collections.Counter()
    dtypes = collections.Counter()
    flags = collections.Counter()
    ids_equal_keys = True
    records = []
    for idx in imgidx:
        header, img = mx.recordio.unpack(imgrec.read_idx(idx))
        label = header.label
        if not isinstance(label, numbers.Number):
            label = label[0]
        label = int(label)  # torch.tensor(label, dtype=torch.long) truncates the same way
        sample = mx.image.imdecode(img).asnumpy()
        labels[label] += 1
        shapes["x".join(str(d) for d in sample.shape)] += 1
        dtypes[str(sample.dtype)] += 1
        flags[str(header.flag)] += 1
        ids_equal_keys = ids_equal_keys and int(header.id) == int(idx)
        if args.records:
            records.append({
                "key": int(idx), "label": label, "id": int(header.id), "flag": int(header.flag),
                "shape": list(sample.shape),
                "mean_rgb": [float(m) for m in sample.reshape(-1, sample.shape[-1]).mean(axis=0)],
            })

    summary = {
        "layout": layout,
        "num_samples": int(len(imgidx)),
        "header0_flag": int(header0.flag),
        "labels": {"min": min(labels) if labels else None, "max": max(labels) if labels else None,
                   "distinct": len(labels)},
        "shapes": dict(shapes),
        "dtypes": dict(dtypes),
        "flags": dict(flags),
        "ids_equal_keys": ids_equal_keys,
    }
    if args.records:
        summary["records"] = records
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
