"""Anchors of `cargo xtask bench evaluate` (issue 4), run with the anchors
venv (numpy 2, scikit-learn, pyarrow, faiss-cpu, bob.measure 6.1.1).

    evaluate_anchors.py data DIR            write the benchmark inputs into DIR
    evaluate_anchors.py openset DIR         write the open-set case's inputs into DIR
    evaluate_anchors.py sklearn SCORES.parquet RUNS
    evaluate_anchors.py bob SCORES.parquet RUNS
    evaluate_anchors.py faiss EMB.npy LABELS.csv THREADS OUT.npy
    evaluate_anchors.py numpy EMB.npy LABELS.csv

Each timing command reads its inputs itself (the whole process is timed by
the caller) and prints one JSON line: the in-memory seconds of the work
alone (a list, one per run) and what it found, for cross-checks.
"""

import json
import os
import sys
import time

import numpy as np


def data(out):
    """Synthetic inputs, seeded: (a) 10^7 impostor + 10^4 genuine scores;
    (b) a 100,000 x 512 gallery (one image per identity) and 10,000 probes,
    half of them mated; (c) 20,000 x 512 embeddings of 2,000 identities."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20260417)

    impostor = rng.normal(0.0, 0.1, 10**7).astype(np.float32)
    genuine = rng.normal(0.55, 0.12, 10**4).astype(np.float32)
    score = np.concatenate([genuine, impostor])
    is_genuine = np.concatenate([np.ones(genuine.size, bool), np.zeros(impostor.size, bool)])
    order = rng.permutation(score.size)
    table = pa.table({"score": score[order], "genuine": is_genuine[order]})
    pq.write_table(table, os.path.join(out, "scores.parquet"))

    dim = 512
    gallery = rng.standard_normal((100_000, dim), dtype=np.float32)
    mated = rng.choice(100_000, 5_000, replace=False)
    mated_probes = gallery[mated] + rng.standard_normal((5_000, dim), dtype=np.float32) * 0.9
    other = rng.standard_normal((5_000, dim), dtype=np.float32)
    write_search_set(out, "search", [gallery, mated_probes, other], mated)

    centers = rng.standard_normal((2_000, dim), dtype=np.float32)
    who = np.repeat(np.arange(2_000), 10)
    emb = centers[who] + rng.standard_normal((20_000, dim), dtype=np.float32) * 0.8
    np.save(os.path.join(out, "pairs.npy"), emb)
    with open(os.path.join(out, "pairs.csv"), "w") as f:
        f.write("identity\n")
        f.writelines(f"p{i}\n" for i in who)


def write_search_set(out, name, parts, mated):
    """NAME.npy and NAME.csv: 100,000 gallery rows (identity g<i>), then
    10,000 probes, the first 5,000 mates of gallery rows `mated`, the rest
    out-of-DB (n<i>)."""
    emb = np.concatenate(parts).astype(np.float32)
    ids = [f"g{i}" for i in range(100_000)] + [f"g{i}" for i in mated] + [f"n{i}" for i in range(5_000)]
    roles = ["gallery"] * 100_000 + ["probe"] * 10_000
    np.save(os.path.join(out, f"{name}.npy"), emb)
    with open(os.path.join(out, f"{name}.csv"), "w") as f:
        f.write("identity,role\n")
        f.writelines(f"{i},{r}\n" for i, r in zip(ids, roles))


def openset(out):
    """The open-set case (issue 14): a 100,000 x 512 random-normal gallery
    (one image per identity) and 10,000 probes, half of them out-of-DB:
    5,000 mated (a gallery row plus noise, cosine about 0.64), 2,500
    strangers drawn like the gallery, and 2,500 look-alikes, each a blend of
    three gallery people, whose best scores are near-ties."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261205)
    dim = 512
    gallery = rng.standard_normal((100_000, dim), dtype=np.float32)
    mated = rng.choice(100_000, 5_000, replace=False)
    mated_probes = gallery[mated] + rng.standard_normal((5_000, dim), dtype=np.float32) * 1.2
    strangers = rng.standard_normal((2_500, dim), dtype=np.float32)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    blend_of = rng.choice(100_000, (2_500, 3))
    noise = rng.standard_normal((2_500, dim), dtype=np.float32) * np.float32(0.5 / np.sqrt(dim))
    lookalikes = unit[blend_of].sum(axis=1) + noise
    write_search_set(out, "openset", [gallery, mated_probes, strangers, lookalikes], mated)


def read_scores(path):
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return t.column("score").to_numpy(), t.column("genuine").to_numpy()


def sklearn(path, runs):
    from sklearn.metrics import roc_curve

    score, genuine = read_scores(path)
    seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        fpr, tpr, thr = roc_curve(genuine, score)
        seconds.append(time.perf_counter() - t)
    fnr = 1 - tpr
    i = np.argmin(np.abs(fnr - fpr))
    print(json.dumps({"seconds": seconds, "points": int(fpr.size), "eer_nearest": float((fpr[i] + fnr[i]) / 2)}))


def bob(path, runs):
    """bob.measure's eer_threshold (the real package, pip-installed)."""
    from importlib.metadata import version

    from bob.measure import eer_threshold, farfrr

    which = "bob.measure " + version("bob.measure")
    score, genuine = read_scores(path)
    pos = score[genuine].astype(np.float64)
    neg = score[~genuine].astype(np.float64)
    # Compile the numba code outside the timed runs.
    t = time.perf_counter()
    eer_threshold(neg[:1000], pos[:100])
    jit = time.perf_counter() - t
    seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        threshold = eer_threshold(neg, pos)
        seconds.append(time.perf_counter() - t)
    far, frr = farfrr(neg, pos, threshold)
    print(json.dumps({"seconds": seconds, "jit_seconds": jit, "which": which, "threshold": float(threshold),
                      "eer": float((far + frr) / 2)}))


def normalized(path):
    x = np.load(path).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def read_roles(path):
    ids, roles = [], []
    with open(path) as f:
        next(f)
        for line in f:
            i, r = line.rstrip("\n").split(",")
            ids.append(i)
            roles.append(r)
    return ids, np.array(roles)


def faiss_search(emb_path, labels_path, threads, out):
    import faiss

    faiss.omp_set_num_threads(threads)
    x = normalized(emb_path)
    _, roles = read_roles(labels_path)
    gallery = np.ascontiguousarray(x[roles == "gallery"])
    probes = np.ascontiguousarray(x[roles == "probe"])
    t = time.perf_counter()
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    _, top = index.search(probes, 10)
    seconds = time.perf_counter() - t
    np.save(out, top[:, 0].astype(np.int64))
    print(json.dumps({"seconds": [seconds], "probes": int(probes.shape[0])}))


def numpy_all_pairs(emb_path, labels_path, tile=2048, bins=1 << 16):
    """Genuine scores and impostor histogram over all distinct pairs, tile by
    tile (upper triangle), as facekit computes them."""
    x = normalized(emb_path)
    with open(labels_path) as f:
        ids = f.read().split()[1:]
    _, label = np.unique(np.array(ids), return_inverse=True)
    n = x.shape[0]
    t = time.perf_counter()
    hist = np.zeros(bins, np.int64)
    genuine = []
    for i0 in range(0, n, tile):
        i1 = min(i0 + tile, n)
        for j0 in range(i0, n, tile):
            j1 = min(j0 + tile, n)
            s = x[i0:i1] @ x[j0:j1].T
            same = label[i0:i1, None] == label[None, j0:j1]
            upper = np.ones_like(same) if j0 > i0 else np.triu(np.ones_like(same), 1)
            genuine.append(s[same & upper])
            b = np.clip(((s[~same & upper] + 1.0) * (bins / 2)).astype(np.int64), 0, bins - 1)
            hist += np.bincount(b, minlength=bins)
    genuine = np.concatenate(genuine)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": [seconds], "genuine": int(genuine.size), "impostor": int(hist.sum())}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "data":
        data(sys.argv[2])
    elif cmd == "openset":
        openset(sys.argv[2])
    elif cmd == "sklearn":
        sklearn(sys.argv[2], int(sys.argv[3]))
    elif cmd == "bob":
        bob(sys.argv[2], int(sys.argv[3]))
    elif cmd == "faiss":
        faiss_search(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif cmd == "numpy":
        numpy_all_pairs(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
