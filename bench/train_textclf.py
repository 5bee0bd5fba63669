#!/usr/bin/python3
"""The textclf model in PyTorch (Debian's python3-torch), for bench/train_compare.

Same model, data handling and hyperparameters as bench_train_textclf:
fastText tokenization (white space, case kept, end-of-line token), word
n-grams hashed fastText's way into `bucket` rows, EmbeddingBag(mean,
sparse) -> Linear, summed cross-entropy per mini-batch, SGD with linear lr
decay to 0, 1 thread. Only the training loop is timed. Prints "key value"
lines like the C bench.
"""
import argparse
import random
import resource
import time

import torch

LABEL = "__label__"
EOS = "</s>"


def fnv(word):
    h = 2166136261
    for b in word.encode("utf-8", "surrogateescape"):
        h ^= (b - 256 if b > 127 else b) & 0xFFFFFFFF   # fastText sign-extends
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def read(path):
    docs = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            toks = line.split()
            labels = [t[len(LABEL):] for t in toks if t.startswith(LABEL)]
            words = [t for t in toks if not t.startswith(LABEL)] + [EOS]
            if labels:
                docs.append((labels[0], words))
    return docs


def encode(words, vocab, nwords, ngrams, bucket):
    ids = [vocab[w] for w in words if w in vocab]
    hs = [fnv(w) for w in words]
    hs = [h - (1 << 32) if h >= (1 << 31) else h for h in hs]
    for i in range(len(hs)):
        h = hs[i] & 0xFFFFFFFFFFFFFFFF
        for j in range(i + 1, min(len(hs), i + ngrams)):
            h = (h * 116049371 + (hs[j] & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
            ids.append(nwords + h % bucket)
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/fortunes")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--ngrams", type=int, default=2)
    ap.add_argument("--bucket", type=int, default=2000000)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    train, test = read(a.data + "/train.ft.txt"), read(a.data + "/test.ft.txt")
    counts = {}
    for _, ws in train:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    vocab = {w: i for i, w in enumerate(sorted(counts, key=lambda w: (-counts[w], w.encode())))}
    labels = {}
    for l, _ in train:
        labels.setdefault(l, len(labels))
    nwords = len(vocab)
    enc = lambda docs: [(labels.get(l, 0), encode(ws, vocab, nwords, a.ngrams, a.bucket)) for l, ws in docs]
    tr, te = enc(train), enc(test)
    ntokens = sum(len(ws) for _, ws in train)

    emb = torch.nn.EmbeddingBag(nwords + a.bucket, a.dim, mode="mean", sparse=True)
    fc = torch.nn.Linear(a.dim, len(labels))
    with torch.no_grad():
        emb.weight.uniform_(-1.0 / a.dim, 1.0 / a.dim)
        fc.weight.zero_()
        fc.bias.zero_()
    opt = torch.optim.SGD(list(emb.parameters()) + list(fc.parameters()), lr=a.lr)
    nb = (len(tr) + a.batch - 1) // a.batch
    total, step = a.epochs * nb, 0
    order = list(range(len(tr)))
    rnd = random.Random(1)
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        rnd.shuffle(order)
        for s in range(0, len(order), a.batch):
            chunk = [tr[k] for k in order[s:s + a.batch]]
            ids, offs, lab = [], [], []
            for l, x in chunk:
                offs.append(len(ids))
                ids.extend(x)
                lab.append(l)
            for g in opt.param_groups:
                g["lr"] = a.lr * max(0.0, 1.0 - step / total)
            opt.zero_grad(set_to_none=True)
            out = fc(emb(torch.tensor(ids), torch.tensor(offs)))
            loss = torch.nn.functional.cross_entropy(out, torch.tensor(lab), reduction="sum")
            loss.backward()
            opt.step()
            step += 1
    wall = time.perf_counter() - t0
    with torch.no_grad():
        ids, offs = [], []
        for _, x in te:
            offs.append(len(ids))
            ids.extend(x)
        pred = fc(emb(torch.tensor(ids), torch.tensor(offs))).argmax(1).tolist()
    acc = sum(p == l for p, (l, _) in zip(pred, te)) / len(te)
    print("impl pytorch-%s" % torch.__version__)
    print("wall_s %.3f" % wall)
    print("sec_per_epoch %.4f" % (wall / a.epochs))
    print("words_per_sec_per_thread %.0f" % (ntokens * a.epochs / wall / a.threads))
    print("samples_per_sec %.0f" % (len(tr) * a.epochs / wall))
    print("test_accuracy %.4f" % acc)
    print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main()
