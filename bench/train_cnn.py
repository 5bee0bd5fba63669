#!/usr/bin/python3
"""The cnn model in PyTorch (Debian's python3-torch), for bench/train_cnn.

The architecture of the shim's cnn kind (workers/torch/ty_torch.cpp): depth
blocks of conv 3x3 (padding 1) + ReLU + 2x2 max pool, the first with
`filters` channels, doubling per block; global average pool; a linear layer
to the classes; cross-entropy (mean over the batch). Same data as
bench_train_cnn (train.csv / test.csv, pixels 0-16 scaled to [0, 1]), same
epochs, batch, optimizer, lr and threads, a shuffle per epoch. Only the
training loop is timed. Prints "key value" lines like the C bench.
"""
import argparse
import random
import resource
import time

import torch

PIXEL_MAX = 16.0
SIDE = 8


def read(path):
    xs, ys = [], []
    with open(path) as f:
        next(f)
        for line in f:
            v = line.strip().split(",")
            ys.append(int(v[0]))
            xs.append([float(p) / PIXEL_MAX for p in v[1:]])
    return torch.tensor(xs).reshape(-1, 1, SIDE, SIDE), torch.tensor(ys)


class Net(torch.nn.Module):
    def __init__(self, depth, filters, nclasses):
        super().__init__()
        convs, cin, cout = [], 1, filters
        for _ in range(depth):
            convs.append(torch.nn.Conv2d(cin, cout, 3, padding=1))
            cin, cout = cout, cout * 2
        self.convs = torch.nn.ModuleList(convs)
        self.fc = torch.nn.Linear(cin, nclasses)

    def forward(self, x):
        for c in self.convs:
            x = torch.relu(c(x))
            if x.shape[2] >= 2 and x.shape[3] >= 2:
                x = torch.nn.functional.max_pool2d(x, 2)
        return self.fc(x.mean((2, 3)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/digits")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--optim", default="adam")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    xtr, ytr = read(a.data + "/train.csv")
    xte, yte = read(a.data + "/test.csv")
    net = Net(a.depth, a.filters, 10)
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "sgd": torch.optim.SGD}[a.optim](net.parameters(), lr=a.lr)
    n = len(ytr)
    order = list(range(n))
    rnd = random.Random(1)
    loss = torch.tensor(0.0)
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        rnd.shuffle(order)
        idx = torch.tensor(order)
        for s in range(0, n, a.batch):
            b = idx[s:s + a.batch]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(xtr[b]), ytr[b])
            loss.backward()
            opt.step()
    wall = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        acc = (net(xte).argmax(1) == yte).float().mean().item()
    print("impl pytorch-%s" % torch.__version__)
    print("train_samples %d" % n)
    print("params %d" % sum(p.numel() for p in net.parameters()))
    print("wall_s %.3f" % wall)
    print("sec_per_epoch %.4f" % (wall / a.epochs))
    print("samples_per_sec %.0f" % (n * a.epochs / wall))
    print("final_loss %.4f" % loss.item())
    print("test_accuracy %.4f" % acc)
    print("peak_rss_mb %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main()
