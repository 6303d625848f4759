"""arcface_torch's verification accuracy on a .bin, computed the way
`eval/verification.py` does, with Python onnxruntime running the model:
load_bin (decode to RGB, CHW, both the image and its horizontal flip),
(x/255 - 0.5)/0.5, embedding = normalize(emb + emb_flip), squared L2
distances of the pairs, thresholds arange(0, 4, 0.01), ten unshuffled folds,
best training threshold per fold (first argmax), accuracy mean and
population std. Prints {"mean": ..., "std": ...}.

    python bin_kfold.py MODEL.onnx kface.bin
Requires numpy, pillow, onnxruntime.
"""

import io
import json
import pickle
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def load_bin(path):
    with open(path, "rb") as f:
        bins, issame = pickle.load(f, encoding="bytes")
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(bytes(b))).convert("RGB"), np.float32).transpose(2, 0, 1) for b in bins]
    )
    return images, np.asarray(issame, bool)


def embed(session, images):
    name = session.get_inputs()[0].name
    x = (images / 255.0 - 0.5) / 0.5
    out = []
    for batch in (x, x[:, :, :, ::-1]):
        out.append(
            np.concatenate(
                [session.run(None, {name: np.ascontiguousarray(batch[i : i + 32], np.float32)})[0] for i in range(0, len(batch), 32)]
            )
        )
    e = (out[0] + out[1]).astype(np.float64)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def accuracy(threshold, dist, issame):
    predict = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict, issame))
    tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(issame)))
    return float(tp + tn) / dist.size


def kfold(embeddings, issame, folds=10):
    thresholds = np.arange(0, 4, 0.01)
    e1, e2 = embeddings[0::2], embeddings[1::2]
    dist = np.sum(np.square(e1 - e2), 1)
    n = len(issame)
    # sklearn KFold(n_splits=folds, shuffle=False): the first n % folds folds get one more.
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    starts = np.cumsum([0] + sizes)
    acc = []
    for f in range(folds):
        test = np.arange(starts[f], starts[f + 1])
        train = np.setdiff1d(np.arange(n), test)
        train_acc = [accuracy(t, dist[train], issame[train]) for t in thresholds]
        best = int(np.argmax(train_acc))
        acc.append(accuracy(thresholds[best], dist[test], issame[test]))
    return float(np.mean(acc)), float(np.std(acc))


def main():
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    images, issame = load_bin(sys.argv[2])
    mean, std = kfold(embed(session, images), issame)
    print(json.dumps({"mean": mean, "std": std}))


if __name__ == "__main__":
    main()
