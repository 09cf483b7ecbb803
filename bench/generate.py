#!/usr/bin/env python3
"""Writes the benchmark's input: notebook-shaped CSV files and the per-shop sums they hold.

`File;Shop;Sale_Count`, `;`-separated, with a header line. Shop popularity is Zipf-like: the
shop of row i is floor(N^u) - 1 for a uniform u, so shop 0 is the most common and the
counts fall off as 1/rank. Sale_Count is uniform in 0..1000. Every value comes from a hash
of the row number and the seed, so the data is the same on every machine and with any
number of threads. The expected sums are computed from the same rows, before any engine
reads the files, and written to `expected_sums.csv`.

    python3 bench/generate.py bench/data/w1 --files 40 --rows 250000 --shops 1000
"""
import argparse
import os
import time

import duckdb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="output folder; the CSV files go to FOLDER/in")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=250_000, help="rows per file")
    parser.add_argument("--shops", type=int, default=1000, help="distinct shops")
    parser.add_argument("--uniform", action="store_true", help="every shop equally likely (W4's many keys)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    inputs = os.path.join(args.folder, "in")
    os.makedirs(inputs, exist_ok=True)
    for old in os.listdir(inputs):
        os.remove(os.path.join(inputs, old))
    started = time.monotonic()
    db = duckdb.connect()
    width = len(str(args.shops - 1))
    # u in [0, 1) from a hash of (row, seed); the shop from it, uniform or Zipf-like.
    u = f"(hash(i, {args.seed}) % 1000000007) / 1000000007.0"
    shop = f"floor({u} * {args.shops})" if args.uniform else f"floor(pow({args.shops + 1}, {u})) - 1"
    db.execute(
        f"""
        CREATE TABLE rows AS
        SELECT i // {args.rows} AS f,
               printf('Shop_%0{width}d', least({shop}, {args.shops - 1})::BIGINT) AS Shop,
               (hash(i, {args.seed + 1}) % 1001)::INTEGER AS Sale_Count
        FROM range({args.files * args.rows}) t(i)
        """
    )
    for f in range(args.files):
        name = f"sales_{f:04d}.csv"
        hidden = os.path.join(inputs, "." + name)
        db.execute(
            f"""
            COPY (SELECT '{name}' AS File, Shop, Sale_Count FROM rows WHERE f = {f})
            TO '{hidden}' (FORMAT csv, DELIMITER ';', HEADER true, QUOTE '')
            """
        )
        # Renamed into place, as a well-behaved producer does.
        os.rename(hidden, os.path.join(inputs, name))
    db.execute(
        f"""
        COPY (SELECT Shop, sum(Sale_Count) AS total FROM rows GROUP BY Shop ORDER BY Shop)
        TO '{os.path.join(args.folder, "expected_sums.csv")}' (FORMAT csv, HEADER true)
        """
    )
    size = sum(os.path.getsize(os.path.join(inputs, n)) for n in os.listdir(inputs))
    print(
        f"wrote {args.files} files x {args.rows} rows ({size / 1e6:.0f} MB) to {inputs} "
        f"in {time.monotonic() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
