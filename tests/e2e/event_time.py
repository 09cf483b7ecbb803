"""Event-time data for Weir's window and deduplication tests, and the independent answer.

  python3 event_time.py generate DIR --files N --rows R --seed S
      Writes DIR/part-NNN.csv (order_id,ts,shop,amount). File k covers ten minutes of
      event time after file k-1's, out of order by up to four minutes; about one row in 25
      is far later than any delay (it must be dropped), one in ten resends an earlier order.

  python3 event_time.py check SPEC.json
      SPEC: {"input": DIR, "delay_s": D, "checks": [...]} where each check is
      {"kind": "tumbling"|"sliding"|"session"|"dedup", "output": PARQUET_DIR,
       "size_s"/"slide_s"/"gap_s": ..., "stage": "operators.x"} and, optionally,
      "progress": the run's --progress-log file.
      Each file is one epoch, in name order (the pipeline reads one file per trigger).
      The watermark after epoch k is max(event time up to k) - delay; rows of epoch k are
      judged against the watermark after epoch k-1, as Spark does:
        - windows (DuckDB computes them): a row's window is dropped when it ended at or
          before that watermark; a window is in the append output once the final watermark
          passed its end, exactly once;
        - sessions (computed here, per shop): a row is dropped when ts + gap is at or before
          the watermark; sessions merge rows closer than the gap;
        - dedup: a row at or before the watermark is dropped; an order_id passes once, and
          is forgotten when the watermark passes its first time plus the delay.
      With "progress", the rows the stage dropped (rows_dropped_by_watermark) must match.
      Prints "open: ..." (windows not final yet), then "N checks agree", or exits 1.
"""

import datetime
import glob
import json
import os
import random
import sys

import duckdb

T0 = datetime.datetime(2026, 3, 1, 8, 0, 0)


def generate(folder, files, rows, seed):
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    next_id = 0
    sent = []
    for f in range(files):
        lines = []
        base = T0 + datetime.timedelta(minutes=10 * f)
        for _ in range(rows):
            roll = rng.random()
            if roll < 0.1 and sent:
                order_id, ts, shop, amount = rng.choice(sent[-30:])
            else:
                next_id += 1
                order_id = next_id
                ts = base + datetime.timedelta(seconds=rng.randrange(600) - rng.randrange(240))
                if roll > 0.96:
                    ts -= datetime.timedelta(minutes=45 + rng.randrange(60))
                shop = rng.choice(["north", "south", "east", "west", "Mall_1"])
                amount = rng.randrange(1, 100)
                sent.append((order_id, ts, shop, amount))
            lines.append(f"{order_id},{ts:%Y-%m-%d %H:%M:%S},{shop},{amount}\n")
        path = os.path.join(folder, f"part-{f:03d}.csv")
        with open(path + ".tmp", "w") as out:
            out.writelines(lines)
        os.rename(path + ".tmp", path)


def epochs(folder):
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        rows = []
        with open(path) as f:
            for line in f:
                order_id, ts, shop, amount = line.strip().split(",")
                ts = datetime.datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
                rows.append((int(order_id), ts, shop, int(amount)))
        out.append(rows)
    return out


def micros(ts):
    return int((ts - datetime.datetime(1970, 1, 1)).total_seconds() * 1_000_000)


def watermarks(batches, delay_us):
    """The watermark before each epoch (None before the first), and the final one."""
    before, highest, wm = [], None, None
    for rows in batches:
        before.append(wm)
        for r in rows:
            highest = micros(r[1]) if highest is None else max(highest, micros(r[1]))
        if highest is not None:
            # Milliseconds, as the watermark message carries it.
            now = (highest - delay_us) // 1000 * 1000
            wm = now if wm is None else max(wm, now)
    return before, wm


def weir_rows(folder, columns):
    files = [p for p in glob.glob(os.path.join(folder, "*.parquet"))]
    if not files:
        return []
    return duckdb.sql(f"SELECT {columns} FROM read_parquet({files!r})").fetchall()


def norm_time(value):
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return micros(value)


def window_expected(batches, before, final_wm, check):
    size_us = check["size_s"] * 1_000_000
    slide_us = check.get("slide_s", check["size_s"]) * 1_000_000
    table = [
        (r[0], micros(r[1]), r[2], r[3], before[k] if before[k] is not None else -(2**62))
        for k, rows in enumerate(batches)
        for r in rows
    ]
    con = duckdb.connect()
    con.execute("CREATE TABLE t(order_id BIGINT, ts BIGINT, shop VARCHAR, amount INT, wm BIGINT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", table)
    # Every window [start, start + size) with start a multiple of the slide that covers ts.
    query = f"""
        WITH assigned AS (
            SELECT *, unnest(generate_series(
                (ts // {slide_us}) * {slide_us} - {size_us - slide_us},
                (ts // {slide_us}) * {slide_us}, {slide_us})) AS start
            FROM t)
        SELECT start, start + {size_us} AS "end", shop, sum(amount), count(*),
               (SELECT count(*) FROM assigned a2
                WHERE a2.start + {size_us} > a2.ts AND a2.start + {size_us} <= a2.wm) AS late
        FROM assigned
        WHERE start + {size_us} > ts AND start + {size_us} > wm
        GROUP BY ALL"""
    rows = con.execute(query).fetchall()
    late = rows[0][5] if rows else 0
    final = [r[:5] for r in rows if final_wm is not None and r[1] <= final_wm]
    open_ = sorted({r[0] for r in rows if final_wm is None or r[1] > final_wm})
    return final, late, open_


def session_expected(batches, before, final_wm, check):
    gap_us = check["gap_s"] * 1_000_000
    kept, late = {}, 0
    for k, rows in enumerate(batches):
        for r in rows:
            t = micros(r[1])
            if before[k] is not None and t + gap_us <= before[k]:
                late += 1
                continue
            kept.setdefault(r[2], []).append((t, r[3]))
    out, open_ = [], []
    for shop, events in kept.items():
        events.sort()
        sessions = []
        for t, amount in events:
            if sessions and t <= sessions[-1][1]:
                s = sessions[-1]
                s[1] = max(s[1], t + gap_us)
                s[2] += amount
                s[3] += 1
            else:
                sessions.append([t, t + gap_us, amount, 1])
        for start, end, total, n in sessions:
            if final_wm is not None and end <= final_wm:
                out.append((start, end, shop, total, n))
            else:
                open_.append(start)
    return out, late, sorted(open_)


def dedup_expected(batches, before, delay_us):
    seen, out, late = {}, [], 0
    wm = None
    for k, rows in enumerate(batches):
        for order_id, ts, shop, amount in rows:
            t = micros(ts)
            if before[k] is not None and t <= before[k]:
                late += 1
                continue
            if order_id in seen:
                continue
            seen[order_id] = t + delay_us
            out.append((order_id, t, shop, amount))
        nxt = before[k + 1] if k + 1 < len(before) else None
        wm = nxt if nxt is not None else wm
        if wm is not None:
            seen = {key: exp for key, exp in seen.items() if exp > wm}
    return out, late


def progress_dropped(path, stage):
    total = 0
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            for s in record["stages"]:
                if s["name"] == stage:
                    total += s.get("rows_dropped_by_watermark", 0)
    return total


def check(spec):
    batches = epochs(spec["input"])
    delay_us = spec["delay_s"] * 1_000_000
    before, final_wm = watermarks(batches, delay_us)
    problems, agreed = [], 0
    for c in spec["checks"]:
        kind = c["kind"]
        if kind == "dedup":
            expected, late = dedup_expected(batches, before, delay_us)
            got = [
                (r[0], norm_time(r[1]), r[2], r[3])
                for r in weir_rows(c["output"], "order_id, ts, shop, amount")
            ]
        else:
            if kind == "session":
                expected, late, open_ = session_expected(batches, before, final_wm, c)
            else:
                expected, late, open_ = window_expected(batches, before, final_wm, c)
            print(f"open {kind}: {' '.join(str(s) for s in open_)}")
            column = '"window"' if kind != "session" else "session_window"
            got = [
                (norm_time(r[0]), norm_time(r[1]), r[2], r[3], r[4])
                for r in weir_rows(c["output"], f'{column}.start, {column}."end", shop, total, n')
            ]
        missing = sorted(set(expected) - set(got))[:5]
        extra = sorted(set(got) - set(expected))[:5]
        if sorted(got) != sorted(expected):
            problems.append(
                f"{kind}: Weir has {len(got)} rows, expected {len(expected)}; "
                f"missing {missing}, unexpected {extra}, duplicates {len(got) - len(set(got))}"
            )
        else:
            agreed += 1
        if not expected:
            problems.append(f"{kind}: the expected answer is empty; the data tests nothing")
        if "progress" in c:
            dropped = progress_dropped(c["progress"], c["stage"])
            if dropped != late:
                problems.append(f"{kind}: {c['stage']} dropped {dropped} late rows, expected {late}")
            elif late == 0:
                problems.append(f"{kind}: no row was late; the data tests nothing")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"{agreed} checks agree")


def main():
    if sys.argv[1] == "generate":
        args = dict(zip(sys.argv[3::2], sys.argv[4::2]))
        generate(sys.argv[2], int(args["--files"]), int(args["--rows"]), int(args["--seed"]))
    else:
        with open(sys.argv[2]) as f:
            check(json.load(f))


if __name__ == "__main__":
    main()
