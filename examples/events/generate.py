#!/usr/bin/env python3
"""Writes event-time data for examples/events/pipeline.toml: orders from five shops, ten
minutes of event time per file, out of order by up to four minutes; one order in 25 arrives
an hour late (the watermark drops it), one in ten is sent twice (deduplicate drops it).

    python3 examples/events/generate.py examples/events/data/in --files 12
"""
import argparse
import datetime
import os
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--rows", type=int, default=500, help="rows per file")
    parser.add_argument("--first", type=int, default=0, help="number of the first file, to add more later")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed + args.first)
    os.makedirs(args.folder, exist_ok=True)
    start = datetime.datetime(2026, 6, 1, 9, 0)
    sent = []
    for f in range(args.first, args.first + args.files):
        base = start + datetime.timedelta(minutes=10 * f)
        lines = ["order_id,ts,shop,amount\n"]
        for i in range(args.rows):
            if sent and rng.random() < 0.1:
                lines.append(rng.choice(sent[-50:]))
                continue
            ts = base + datetime.timedelta(seconds=rng.randrange(600) - rng.randrange(240))
            if rng.random() < 0.04:
                ts -= datetime.timedelta(hours=1)
            line = f"{f * 100000 + i},{ts:%Y-%m-%d %H:%M:%S},{rng.choice(['north', 'south', 'east', 'west', 'mall'])},{rng.randrange(1, 200)}\n"
            sent.append(line)
            lines.append(line)
        path = os.path.join(args.folder, f"orders-{f:04d}.csv")
        # Written under a hidden name and renamed, as a producer should.
        with open(os.path.join(args.folder, f".orders-{f:04d}.csv"), "w") as out:
            out.writelines(lines)
        os.rename(os.path.join(args.folder, f".orders-{f:04d}.csv"), path)
    print(f"wrote {args.files} files to {args.folder}")


if __name__ == "__main__":
    main()
