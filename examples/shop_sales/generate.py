#!/usr/bin/env python3
"""Writes notebook-shaped sample data: a folder of ;-separated CSV files File;Shop;Sale_Count.

Deterministic for a given seed. Each file is written under a hidden name and renamed into
place, as a well-behaved producer does, so a running `weir run` never reads half a file.
"""
import argparse
import os
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--rows", type=int, default=1000, help="rows per file")
    parser.add_argument("--shops", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.folder, exist_ok=True)
    for f in range(args.files):
        name = f"sales_{f:04d}.csv"
        hidden = os.path.join(args.folder, "." + name)
        with open(hidden, "w") as out:
            out.write("File;Shop;Sale_Count\n")
            for _ in range(args.rows):
                out.write(f"{name};Shop_{rng.randrange(args.shops):03d};{rng.randrange(1001)}\n")
        os.rename(hidden, os.path.join(args.folder, name))
    print(f"wrote {args.files} files of {args.rows} rows to {args.folder}")


if __name__ == "__main__":
    main()
