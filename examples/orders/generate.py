#!/usr/bin/env python3
"""Writes sample orders: a folder of CSV files with a shop, a product, a price, a quantity,
a timestamp and a channel, with some values missing (empty fields are nulls), some
quantities negative (returns), and shop names in mixed case, as real exports have them.

Deterministic for a given seed. Each file is written under a hidden name and renamed into
place, so a running `weir run` never reads half a file.
"""
import argparse
import datetime
import os
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2000, help="rows per file")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    shops = ["Berlin", "berlin", "PARIS", "Paris", "Lisbon", "Oslo"]
    products = ["tea", "coffee", "cocoa", "mate"]
    start = datetime.datetime(2026, 11, 1)
    os.makedirs(args.folder, exist_ok=True)
    order = 0
    for f in range(args.files):
        name = f"orders_{f:04d}.csv"
        hidden = os.path.join(args.folder, "." + name)
        with open(hidden, "w") as out:
            out.write("order_id,shop,product,price,qty,ts,channel\n")
            for _ in range(args.rows):
                order += 1
                price = "" if rng.random() < 0.05 else f"{rng.uniform(1, 40):.2f}"
                qty = "" if rng.random() < 0.05 else str(rng.choice([-1, 1, 1, 2, 3, 5, 10]))
                ts = start + datetime.timedelta(seconds=rng.randrange(30 * 86400))
                channel = "" if rng.random() < 0.2 else rng.choice(["web", "shop", "app"])
                out.write(f"{order},{rng.choice(shops)},{rng.choice(products)},{price},{qty},"
                          f"{ts:%Y-%m-%d %H:%M:%S},{channel}\n")
        os.rename(hidden, os.path.join(args.folder, name))
    print(f"wrote {args.files} files of {args.rows} orders to {args.folder}")


if __name__ == "__main__":
    main()
