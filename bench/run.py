#!/usr/bin/env python3
"""Weir's benchmark: the notebook's job and its variants, against DuckDB on the same files.

    make bench                      # 40 files x 250,000 rows, the default
    python3 bench/run.py --weir target/release/weir --files 8 --rows 100000   # a quick one

Workloads (bench/README.md says more):
  W1  group_by Shop, sum(Sale_Count), complete mode to a CSV sink, available_now, checkpoints
  W2  CSV -> parquet, append, two-phase commit, available_now, checkpoints
  W1-http  W1 with the metrics server on and /metrics scraped every second, beside W1 with
      it off, alternately, 5 runs each: the overhead of observing a run
  W3  continuous trigger, checkpoint.interval 100ms, files dropped one at a time:
      latency from a file's rename into the folder to its rows in committed output, and to
      its pickup (the source's debug line as it opens the file)
  W8  (files) W1 over the same rows written as JSON lines, against DuckDB's read_json
  W8-nats  W1 over --w8-messages of those JSON lines as messages of a local JetStream stream
  W8-kafka W1 over --w8-messages of those JSON lines as messages of a local Kafka topic (tansu)
      (nats-server -js, published by nats-py), read by the nats source
  W9  many small files (10 rows each, modified at 10,000 a day) to parquet, 10,000 to
      1,000,000: time per file, peak RSS and checkpoint size, beside DuckDB over the same
      glob and Spark's file source (if PySpark is installed); every engine starts from the
      same page cache (--w9-cache warm, the default, or cold)
  W10 W3 in a folder already holding 100,000 small files, with inotify (watch) and without:
      the cost of finding a new file among many
  W4  W1 with 1,000,000 distinct keys under the continuous trigger, checkpoints every 100 ms
      against checkpoints off; then the time a restart takes to load that state
  W5  start-up: one small file, from process start to exit
  W6  expressions: filter (about half the rows), a derived column, group by an expression
      with sum over an expression, complete mode; DuckDB runs the same SQL
  W7  event time: 10-minute tumbling windows per shop with a 5-minute watermark, append to
      parquet, against DuckDB's time_bucket over the same files; then 4x the rows, for
      peak memory (window state is evicted by the watermark, so it must stay flat)

Every weir run is a real `weir run` process; its peak memory is the child's max RSS from
wait4(2). DuckDB runs in a child process too (threads = cores), timed around its query
only, so Python's start-up is not counted against it. Results are printed as a table and
written to bench/results.md.
"""
import argparse
import csv
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = "File STRING, Shop STRING, Sale_Count INT"


def run_measured(args, cwd=None, env=None, timeout=None):
    """Runs a command; returns (seconds, stdout, stderr). Fails loudly."""
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=timeout)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, out, err


def timed(args, cwd=None, env=None, timeout=600):
    """Runs a command under GNU time: (seconds, max RSS MB, stdout, stderr)."""
    stats = os.path.join(cwd or ".", ".time.txt")
    seconds, out, err = run_measured(["/usr/bin/time", "-f", "%M", "-o", stats] + args, cwd, env, timeout)
    with open(stats) as f:
        rss_mb = int(f.read().strip().splitlines()[-1]) / 1024
    os.remove(stats)
    return seconds, rss_mb, out, err


def interrupt(proc):
    """Ctrl-C for a `time weir run` started in its own session: weir finishes its epoch."""
    os.killpg(proc.pid, signal.SIGINT)
    if proc.wait(timeout=120) != 0:
        raise SystemExit(f"weir did not stop cleanly after SIGINT: exit {proc.returncode}")


def pipeline(work, source_folder, body, checkpoint=True, trigger="available_now = true", interval=None, max_files=4,
             source_type="csv"):
    lines = []
    if checkpoint or interval:
        lines.append("[checkpoint]")
        if checkpoint:
            lines.append(f'path = "{work}/state"')
        if interval:
            lines.append(f'interval = "{interval}"')
    if trigger:
        lines += ["[trigger]", trigger]
    lines += [
        "[sources.sales]",
        f'type = "{source_type}"',
        f'path = "{source_folder}"',
        f'schema = "{SCHEMA}"',
        *(["header = true", 'sep = ";"'] if source_type == "csv" else []),
        f"max_files_per_trigger = {max_files}",
        body,
    ]
    path = os.path.join(work, "pipeline.toml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


AGGREGATE = """
[operators.by_shop]
type = "aggregate"
input = "sales"
group_by = ["Shop"]
aggregates = ["sum(Sale_Count)"]

[sinks.sums]
type = "csv"
input = "by_shop"
path = "{work}/sums"
output_mode = "complete"
"""

ARCHIVE = """
[sinks.archive]
type = "parquet"
input = "sales"
path = "{work}/out"
"""


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def read_sums(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return {r[0]: int(r[1]) for r in rows[1:]}


def duckdb_child(sql_setup, sql_timed, threads):
    """DuckDB in a child process: (seconds of the timed statement, max RSS MB)."""
    script = f"""
import duckdb, time
db = duckdb.connect(config={{"threads": {threads}}})
{sql_setup}
t = time.monotonic()
db.execute({sql_timed!r})
print(time.monotonic() - t)
"""
    seconds_total, rss, out, _ = timed([sys.executable, "-c", script])
    return float(out.strip().splitlines()[-1]), rss


def read_csv_sql(folder):
    return (
        f"read_csv('{folder}/*.csv', delim=';', header=true, "
        "columns={'File': 'VARCHAR', 'Shop': 'VARCHAR', 'Sale_Count': 'INTEGER'})"
    )


def median_of(runs, measure):
    """Runs `measure` `runs` times; the run with the median time (its other figures too)."""
    results = sorted((measure() for _ in range(runs)), key=lambda r: r[0])
    return results[len(results) // 2]


def versus(weir_run, duck_sql, threads, runs=3):
    """Median of `runs` weir runs (`weir_run` returns seconds and RSS) and of `runs` DuckDB
    runs of `duck_sql`."""
    (seconds, rss) = median_of(runs, weir_run)
    (d_seconds, d_rss) = median_of(runs, lambda: duckdb_child("", duck_sql, threads))
    return {"weir_s": seconds, "weir_rss": rss, "duck_s": d_seconds, "duck_rss": d_rss}


def w1(weir, data, work, threads):
    def weir_run():
        w = fresh(work)
        toml = pipeline(w, f"{data}/in", AGGREGATE.format(work=w))
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        got = read_sums(f"{w}/sums/result.csv")
        assert got == read_sums(f"{data}/expected_sums.csv"), "W1: weir's sums differ from the expected sums"
        return seconds, rss

    sql = f"COPY (SELECT Shop, sum(Sale_Count) FROM {read_csv_sql(data + '/in')} GROUP BY Shop) TO '{work}/duck.csv'"
    return versus(weir_run, sql, threads)


def w1_http(weir, data, work, runs=5, every=1.0):
    """W1 with `--http` on and /metrics scraped every `every` seconds (the first scrape as
    soon as the server listens), against W1 with it off, alternately: (median seconds and RSS
    on, off, scrapes per run on)."""
    import threading
    import urllib.request

    def run(http):
        w = fresh(work)
        toml = pipeline(w, f"{data}/in", AGGREGATE.format(work=w))
        stats = os.path.join(w, ".time.txt")
        args = ["/usr/bin/time", "-f", "%M", "-o", stats, weir, "run", toml, "--quiet"]
        if http:
            args += ["--http", "127.0.0.1:0"]
        scrapes = []
        started = time.monotonic()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def scrape():
            for line in proc.stderr:
                if line.startswith("weir: dashboard at http://"):
                    address = line.split("http://")[1].split("/")[0]
                    while proc.poll() is None:
                        try:
                            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
                                body = r.read().decode()
                            assert "weir_stage_rows_in_total" in body
                            scrapes.append(1)
                        except OSError:
                            break  # the run ended while we scraped
                        time.sleep(every)

        reader = threading.Thread(target=scrape)
        reader.start()
        code = proc.wait(timeout=600)
        seconds = time.monotonic() - started
        reader.join()
        if code != 0:
            raise SystemExit(f"W1-http: weir exited {code}")
        with open(stats) as f:
            rss = int(f.read().strip().splitlines()[-1]) / 1024
        got = read_sums(f"{w}/sums/result.csv")
        assert got == read_sums(f"{data}/expected_sums.csv"), "W1-http: weir's sums differ from the expected sums"
        if http:
            assert scrapes, "W1-http: no scrape succeeded"
        return seconds, rss, len(scrapes)

    on, off = [], []
    for _ in range(runs):
        off.append(run(False))
        on.append(run(True))
    median = lambda xs: sorted(xs, key=lambda r: r[0])[len(xs) // 2]
    return {"on": median(on), "off": median(off)}


def w2(weir, data, work, rows, threads, max_files=4):
    import duckdb

    def weir_run():
        w = fresh(work)
        toml = pipeline(w, f"{data}/in", ARCHIVE.format(work=w), max_files=max_files)
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        count = duckdb.sql(f"SELECT count(*) FROM '{w}/out/*.parquet'").fetchall()[0][0]
        assert count == rows, f"W2: {count} rows in the parquet output, {rows} expected"
        return seconds, rss

    sql = f"COPY (SELECT * FROM {read_csv_sql(data + '/in')}) TO '{work}/duck.parquet' (FORMAT parquet)"
    return versus(weir_run, sql, threads)


def json_lines(data):
    """The CSV files of `data/in` as JSON lines in `data/json` (`{"File":…,"Shop":…,
    "Sale_Count":…}` per row), written once by DuckDB."""
    import duckdb

    folder = os.path.join(data, "json")
    done = os.path.join(folder, ".complete")
    if not os.path.exists(done):
        fresh(folder)
        for name in sorted(os.listdir(f"{data}/in")):
            if name.endswith(".csv"):
                source = read_csv_sql(f"{data}/in").replace(f"{data}/in/*.csv", f"{data}/in/{name}")
                out = os.path.join(folder, name[:-4] + ".json")
                duckdb.sql(f"COPY (SELECT * FROM {source}) TO '{out}' (FORMAT json)")
        open(done, "w").close()
    return folder


def w8_nats(weir, data, work, messages):
    """W1 over `messages` JSON messages in a local JetStream stream (nats-server -js on a free
    port, published by nats-py): Weir's nats source, timed as a whole process."""
    import asyncio
    import socket

    import nats

    folder = json_lines(data)
    fresh(work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", f"{work}/store"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        sums = {"total": 0}

        async def publish():
            for _ in range(100):
                try:
                    nc = await nats.connect(url)
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            js = nc.jetstream()
            await js.add_stream(name="SALES", subjects=["sales.>"])
            sent = 0
            pending = []
            for name in sorted(os.listdir(folder)):
                with open(os.path.join(folder, name), "rb") as f:
                    for line in f:
                        if sent == messages:
                            break
                        pending.append(js.publish(f"sales.{sent % 4}", line.rstrip(b"\n")))
                        sums["total"] += json.loads(line)["Sale_Count"]
                        sent += 1
                        if len(pending) == 2000:
                            await asyncio.gather(*pending)
                            pending = []
            await asyncio.gather(*pending)
            await nc.close()
            return sent

        started = time.monotonic()
        sent = asyncio.run(publish())
        print(f"W8 nats: published {sent:,} messages in {time.monotonic() - started:.1f} s (nats-py)")
        body = AGGREGATE.format(work=work)
        toml = os.path.join(work, "pipeline.toml")
        with open(toml, "w") as f:
            f.write(f"""[checkpoint]
path = "{work}/state"
[trigger]
available_now = true
[sources.sales]
type = "nats"
servers = "{url}"
stream = "SALES"
schema = "{SCHEMA}"
max_messages_per_trigger = 1000000
{body}""")
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        got = sum(read_sums(f"{work}/sums/result.csv").values())
        assert got == sums["total"], f"W8 nats: weir summed {got}, the messages hold {sums['total']}"
        return {"seconds": seconds, "rss": rss, "messages": sent, "total": got}
    finally:
        server.kill()
        server.wait()


def w8_kafka(weir, data, work, messages):
    """W1 over `messages` JSON messages in a local Kafka topic of 4 partitions (the tansu
    broker `make setup` builds, its log in SQLite, on a free port; produced by
    confluent-kafka): Weir's kafka source, timed as a whole process."""
    import socket

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    folder = json_lines(data)
    fresh(work)
    os.makedirs(f"{work}/broker", exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    tansu = os.environ.get("WEIR_TANSU", os.path.expanduser("~/.cache/weir/tansu/bin/tansu"))
    broker = subprocess.Popen([tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                               "--storage-engine", "sqlite://tansu.db"], cwd=f"{work}/broker",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        admin = AdminClient({"bootstrap.servers": servers})
        for future in admin.create_topics([NewTopic("sales", num_partitions=4, replication_factor=1)]).values():
            future.result(timeout=30)
        producer = Producer({"bootstrap.servers": servers, "linger.ms": 20, "batch.num.messages": 10000,
                             "queue.buffering.max.messages": 1000000})
        total, sent = 0, 0
        started = time.monotonic()
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                for line in f:
                    if sent == messages:
                        break
                    while True:
                        try:
                            producer.produce("sales", value=line.rstrip(b"\n"), partition=sent % 4)
                            break
                        except BufferError:
                            producer.poll(0.05)
                    total += json.loads(line)["Sale_Count"]
                    sent += 1
        assert producer.flush(600) == 0, "W8 kafka: messages left unsent"
        print(f"W8 kafka: produced {sent:,} messages in {time.monotonic() - started:.1f} s (confluent-kafka)")
        body = AGGREGATE.format(work=work)
        toml = os.path.join(work, "pipeline.toml")
        with open(toml, "w") as f:
            f.write(f"""[checkpoint]
path = "{work}/state"
[trigger]
available_now = true
[sources.sales]
type = "kafka"
bootstrap_servers = "{servers}"
subscribe = "sales"
starting_offsets = "earliest"
schema = "{SCHEMA}"
max_offsets_per_trigger = 1000000
{body}""")
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        got = sum(read_sums(f"{work}/sums/result.csv").values())
        assert got == total, f"W8 kafka: weir summed {got}, the messages hold {total}"
        return {"seconds": seconds, "rss": rss, "messages": sent, "total": got,
                "client_seconds": read_all(servers, "sales", 4, sent)}
    finally:
        broker.kill()
        broker.wait()


def read_all(servers, topic, partitions, count):
    """Seconds confluent-kafka takes to fetch `count` messages of `topic` from the start,
    counting them only: what the broker can serve, beside what Weir makes of it."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": servers, "group.id": "bench-read", "enable.auto.commit": False})
    started = time.monotonic()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    while seen < count and time.monotonic() - started < 600:
        seen += sum(1 for m in consumer.consume(10000, timeout=1.0) if m.error() is None)
    consumer.close()
    assert seen == count, f"W8 kafka: confluent-kafka read {seen} of {count} messages"
    return time.monotonic() - started


def w8_files(weir, data, work, threads):
    """W1 over the same rows as JSON lines: Weir's json source against DuckDB's read_json."""
    folder = json_lines(data)

    def weir_run():
        w = fresh(work)
        toml = pipeline(w, folder, AGGREGATE.format(work=w), source_type="json")
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        got = read_sums(f"{w}/sums/result.csv")
        assert got == read_sums(f"{data}/expected_sums.csv"), "W8: weir's sums differ from the expected sums"
        return seconds, rss

    source = (f"read_json('{folder}/*.json', format = 'newline_delimited', "
              "columns = {'File': 'VARCHAR', 'Shop': 'VARCHAR', 'Sale_Count': 'INTEGER'})")
    sql = f"COPY (SELECT Shop, sum(Sale_Count) FROM {source} GROUP BY Shop) TO '{work}/duck.csv'"
    return versus(weir_run, sql, threads)


EXPRESSIONS = """
[operators.big]
type = "filter"
input = "sales"
condition = "Sale_Count > 500"

[operators.scored]
type = "select"
input = "big"
columns = ["lower(Shop) AS shop", "Sale_Count * 3 + 1 AS score"]

[operators.by_shop]
type = "aggregate"
input = "scored"
group_by = ["shop"]
aggregates = ["sum(score) AS total", "count(*) AS n"]

[sinks.sums]
type = "csv"
input = "by_shop"
path = "{work}/sums"
output_mode = "complete"
"""

W6_SQL = ("SELECT lower(Shop) AS shop, sum(Sale_Count * 3 + 1) AS total, count(*) AS n "
          "FROM {input} WHERE Sale_Count > 500 GROUP BY lower(Shop)")


def w6(weir, data, work, threads):
    """Filter, derived column, group by an expression: the same query in Weir and DuckDB,
    and Weir's answer checked against DuckDB's."""
    import duckdb

    expected = {shop: (total, n) for shop, total, n in duckdb.sql(W6_SQL.format(input=read_csv_sql(data + "/in"))).fetchall()}

    def weir_run():
        w = fresh(work)
        toml = pipeline(w, f"{data}/in", EXPRESSIONS.format(work=w))
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        with open(f"{w}/sums/result.csv") as f:
            rows = list(csv.reader(f))[1:]
        got = {shop: (int(total), int(n)) for shop, total, n in rows}
        assert got == expected, "W6: weir's result differs from DuckDB's"
        return seconds, rss

    sql = f"COPY ({W6_SQL.format(input=read_csv_sql(data + '/in'))}) TO '{work}/duck.csv'"
    return versus(weir_run, sql, threads)


EVENT_SCHEMA = "ts TIMESTAMP, Shop STRING, Sale_Count INT"


def event_data(folder, files, rows):
    """CSV files of (ts, Shop, Sale_Count): ten rows a second of event time, each up to two
    minutes out of order, 100 shops. Made once and kept."""
    import duckdb

    done = os.path.join(folder, "done")
    if os.path.exists(done):
        return folder
    fresh(os.path.join(folder, "in"))
    db = duckdb.connect()
    for f in range(files):
        first = f * rows
        db.execute(f"""
            COPY (SELECT TIMESTAMP '2026-01-01' + to_microseconds((i * 100000 - hash(i, 7) % 120000000)::BIGINT) AS ts,
                         printf('Shop_%02d', hash(i, 8) % 100) AS Shop,
                         (hash(i, 9) % 1001)::INTEGER AS Sale_Count
                  FROM range({first}, {first + rows}) t(i))
            TO '{folder}/in/events_{f:04d}.csv' (HEADER false)""")
    open(done, "w").close()
    return folder


WINDOWS = """
[sources.sales.watermark]
column = "ts"
delay = "5 minutes"

[operators.per_window]
type = "aggregate"
input = "sales"
group_by = ["window(ts, '10 minutes')", "Shop"]
aggregates = ["sum(Sale_Count) AS total"]

[sinks.windows]
type = "parquet"
input = "per_window"
path = "{work}/windows"
output_mode = "append"
"""

W7_SQL = ("SELECT time_bucket(INTERVAL 10 minutes, ts) AS start, Shop, sum(Sale_Count) AS total "
          "FROM read_csv('{folder}/in/*.csv', header=false, columns={{'ts': 'TIMESTAMP', 'Shop': 'VARCHAR', 'Sale_Count': 'INTEGER'}}) "
          "GROUP BY ALL")


def w7(weir, folder, work, threads, runs=3):
    """Tumbling windows with a watermark; Weir's closed windows checked against DuckDB's."""
    import duckdb

    def weir_run():
        w = fresh(work)
        lines = [
            "[checkpoint]", f'path = "{w}/state"', "[trigger]", "available_now = true",
            "[sources.sales]", 'type = "csv"', f'path = "{folder}/in"', f'schema = "{EVENT_SCHEMA}"',
            "max_files_per_trigger = 4", WINDOWS.format(work=w),
        ]
        toml = os.path.join(w, "pipeline.toml")
        with open(toml, "w") as f:
            f.write("\n".join(lines) + "\n")
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        return seconds, rss

    result = versus(weir_run, f"COPY ({W7_SQL.format(folder=folder)}) TO '{work}/duck.parquet'", threads, runs)
    # Every window Weir appended equals DuckDB's; only the last ones, still open, are missing.
    got = duckdb.sql(f"SELECT count(*), sum(total) FROM read_parquet('{work}/windows/*.parquet')").fetchall()[0]
    agree = duckdb.sql(f"""
        SELECT count(*) FROM read_parquet('{work}/windows/*.parquet') w
        JOIN ({W7_SQL.format(folder=folder)}) d ON w."window".start = d.start AND w.Shop = d.Shop AND w.total = d.total
    """).fetchall()[0][0]
    everything = duckdb.sql(f"SELECT count(*) FROM ({W7_SQL.format(folder=folder)})").fetchall()[0][0]
    assert agree == got[0] and got[0] >= everything - 300, f"W7: {agree} of {got[0]} windows agree, DuckDB has {everything}"
    result["windows"] = got[0]
    return result


def versus_row(label, r, rows):
    """A table row of weir against DuckDB over `rows` rows."""
    return (f"| {label} | {r['weir_s']:.2f} s ({rows / r['weir_s'] / 1e6:.2f} M rows/s) | "
            f"{r['duck_s']:.2f} s ({rows / r['duck_s'] / 1e6:.2f} M rows/s) | {r['duck_s'] / r['weir_s']:.2f} | "
            f"{r['weir_rss']:.0f} MB | {r['duck_rss']:.0f} MB |")


def w3(weir, data, work, files, existing=0, watch=True, small_drops=False):
    """Drops files one at a time into a watched folder; latency to committed output. With
    `existing`, the folder first holds that many small files (10 rows each), which weir reads
    before the drops begin; `watch` turns inotify on or off (listing at every poll)."""
    import pyarrow.parquet as pq

    work = fresh(work)
    inbox = fresh(f"{work}/in")
    old = set()
    for i in range(existing):
        name = f"old_{i:07}.csv"
        with open(f"{inbox}/{name}", "w") as f:
            f.write("File;Shop;Sale_Count\n" + "".join(f"{name};Shop_{j:03};{j}\n" for j in range(10)))
        old.add(name)
    body = ARCHIVE.format(work=work).replace("[sinks.archive]", f"watch = {str(watch).lower()}\n\n[sinks.archive]")
    toml = pipeline(work, inbox, body, trigger=None, interval="100ms", max_files=1000)
    started = time.monotonic()
    # The source logs each file it picks up at debug level: its line's arrival is the pickup.
    env = dict(os.environ, RUST_LOG="warn,weir_source=debug")
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", f"{work}/.time.txt", weir, "run", toml, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    picked = {}

    def pickups():
        # The line's own time (UTC, to the microsecond) is the pickup: the time this thread
        # reads the line at adds the pipe's and Python's delays.
        for line in proc.stderr:
            found = re.search(r"^(\S+Z)\s.*reading file=(\S+)", line)
            if found:
                at = datetime.datetime.fromisoformat(found.group(1).replace("Z", "+00:00")).timestamp()
                picked.setdefault(os.path.basename(found.group(2)), at)

    reader = threading.Thread(target=pickups, daemon=True)
    reader.start()
    sources = sorted(glob.glob(f"{data}/in/*.csv"))[:files]
    if small_drops:
        # Files of 10 rows: the latency is then finding the file and committing, not decoding.
        fresh(f"{work}/drops")
        sources = []
        for i in range(files):
            name = f"drop_{i:04}.csv"
            with open(f"{work}/drops/{name}", "w") as f:
                f.write("File;Shop;Sale_Count\n" + "".join(f"{name};Shop_{j:03};{j}\n" for j in range(10)))
            sources.append(f"{work}/drops/{name}")
    # Drops by the monotonic clock (for the output, seen by this process) and the wall
    # clock (for pickup, stamped by weir's log).
    dropped, dropped_at, seen = {}, {}, {}
    stop = threading.Event()

    def watch():
        known = set()
        while not stop.is_set() or len(seen) < len(dropped):
            for path in glob.glob(f"{work}/out/*.parquet"):
                if path in known:
                    continue
                known.add(path)
                now = time.monotonic()
                for name in pq.read_table(path, columns=["File"]).column("File").unique().to_pylist():
                    seen.setdefault(name, now)
            if stop.is_set() and time.monotonic() - stopped_at[0] > 30:
                break
            time.sleep(0.002)

    stopped_at = [0.0]
    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)  # let weir start and list the folder
    while len(old.intersection(seen)) < len(old):
        if proc.poll() is not None:
            raise SystemExit(f"W3: weir exited {proc.returncode} while reading the existing files")
        time.sleep(0.05)
    caught_up = time.monotonic() - started
    for source in sources:
        name = os.path.basename(source)
        shutil.copy(source, f"{inbox}/.{name}")
        os.rename(f"{inbox}/.{name}", f"{inbox}/{name}")
        dropped[name] = time.monotonic()
        dropped_at[name] = time.time()
        time.sleep(0.25)
    stopped_at[0] = time.monotonic()
    stop.set()
    watcher.join()
    interrupt(proc)
    with open(f"{work}/.time.txt") as f:
        rss = int(f.read().strip().splitlines()[-1]) / 1024
    reader.join(timeout=10)
    in_order = [round((seen[n] - dropped[n]) * 1000) for n in sorted(dropped, key=dropped.get) if n in seen]
    picked_up = [round((picked[n] - dropped_at[n]) * 1000) for n in sorted(dropped, key=dropped.get) if n in picked]
    if os.environ.get("W3_TRACE"):
        print("W3 latencies to committed output in drop order (ms):", in_order, file=sys.stderr)
        print("W3 latencies to pickup in drop order (ms):", picked_up, file=sys.stderr)
    latencies, pickup = sorted(in_order), sorted(picked_up)
    assert all(n in seen for n in old), "W3: existing files were lost"
    assert len(latencies) == len(dropped), f"W3: only {len(latencies)} of {len(dropped)} files became visible"
    assert len(pickup) == len(dropped), f"W3: only {len(pickup)} of {len(dropped)} files were logged as picked up"
    p = lambda values, q: values[min(len(values) - 1, int(round(q * (len(values) - 1))))]
    return {"p50_ms": p(latencies, 0.5), "p99_ms": p(latencies, 0.99), "max_ms": latencies[-1],
            "pickup_p50_ms": p(pickup, 0.5), "pickup_p99_ms": p(pickup, 0.99), "pickup_max_ms": pickup[-1],
            "files": len(latencies), "weir_rss": rss, "caught_up_s": caught_up}


FILES_PER_DAY = 10_000


def small_files(folder, files):
    """`files` CSV files of 10 rows each in `folder/in`, made once (names sort by number).
    Their modification times are spread at FILES_PER_DAY, the newest now, as files that
    arrived over days: past `max_file_age` (7 days) the oldest are forgotten as they are read,
    so the checkpoint stops growing from 70,000 files on."""
    inbox = os.path.join(folder, "in")
    done = os.path.join(folder, "complete")
    if not os.path.exists(done):
        fresh(inbox)
        for i in range(files):
            name = f"f{i:07}.csv"
            with open(os.path.join(inbox, name), "w") as f:
                f.write("File;Shop;Sale_Count\n" + "".join(f"{name};Shop_{(i + j) % 100:03};{j}\n" for j in range(10)))
        open(done, "w").close()
    aged = os.path.join(folder, "aged")
    if not os.path.exists(aged):
        now = time.time()
        for i in range(files):
            t = now - (files - i) * 86_400 / FILES_PER_DAY
            os.utime(os.path.join(inbox, f"f{i:07}.csv"), (t, t))
        open(aged, "w").close()
    return folder


def page_cache(folder, how):
    """Puts every engine of W9 before the same page cache: `warm` reads every file under
    `folder` (as the engine run just before would have), `cold` drops the kernel's caches
    (root only). Without it, the first engine reads from disk and the others from memory."""
    if how == "warm":
        for entry in os.scandir(folder):
            if entry.is_file():
                with open(entry.path, "rb") as f:
                    f.read()
    elif how == "cold":
        os.sync()
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError as e:
            raise SystemExit(f"W9: --w9-cache cold needs to write /proc/sys/vm/drop_caches (root): {e}")


def du(path):
    """Bytes under `path`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names)


SPARK_W9 = """
import sys, time
from pyspark.sql import SparkSession
folder, out, checkpoint, threads, per_epoch = sys.argv[1:6]
spark = (SparkSession.builder.master(f"local[{threads}]").config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", threads).getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
t = time.monotonic()
rows = (spark.readStream.schema("File STRING, Shop STRING, Sale_Count INT").option("sep", ";")
        .option("header", True).option("maxFilesPerTrigger", int(per_epoch)).csv(folder))
query = (rows.writeStream.format("parquet").option("path", out).option("checkpointLocation", checkpoint)
         .trigger(availableNow=True).start())
query.awaitTermination()
seconds = time.monotonic() - t
# The JVM is PySpark's child, which GNU time does not see: its own high-water mark.
jvm = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
with open(f"/proc/{jvm}/status") as f:
    hwm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(seconds, hwm_kb)
"""


def spark_python(given):
    """The Python that has PySpark and a Java to run it, or None with the reason."""
    python = given or os.path.expanduser("~/.cache/weir/spark-venv/bin/python")
    if not shutil.which("java"):
        return None, "no Java on this machine"
    if not os.path.exists(python) or subprocess.run([python, "-c", "import pyspark"], capture_output=True).returncode:
        return None, f"no PySpark ({python}; pip install pyspark)"
    return python, None


def spark_w9(python, folder, w, threads, per_epoch):
    """Spark's file source over the same folder, availableNow, to parquet: (seconds from the
    query's start to its end, so the JVM's start-up is not counted; peak RSS MB of the JVM
    and of Python, the driver's front, added)."""
    import duckdb

    seconds, rss, out, _ = timed([python, "-c", SPARK_W9, folder, f"{w}/spark-out", f"{w}/spark-state", str(threads),
                                  str(per_epoch)], timeout=7200)
    count = duckdb.sql(f"SELECT count(*) FROM '{w}/spark-out/*.parquet'").fetchall()[0][0]
    seconds, hwm_kb = out.strip().splitlines()[-1].split()
    return float(seconds), rss + int(hwm_kb) / 1024, count


def w9(weir, data_root, work, counts, threads, duckdb_max, spark=None, spark_max=0, per_epoch=10_000, cache="warm"):
    """The notebook's CSV -> parquet job over folders of many small files: time per file,
    peak RSS and checkpoint size as the count grows, beside DuckDB over the same glob and
    Spark's file source (up to `spark_max` files, if `spark` names a Python with PySpark).
    Each engine starts from the same page cache (`cache`: warm or cold)."""
    import duckdb

    results = []
    for files in counts:
        folder = small_files(os.path.join(data_root, f"small-{files}x10"), files)
        w = fresh(work)
        page_cache(f"{folder}/in", cache)
        toml = pipeline(w, f"{folder}/in", ARCHIVE.format(work=w), max_files=per_epoch)
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"], timeout=3600)
        count = duckdb.sql(f"SELECT count(*) FROM '{w}/out/*.parquet'").fetchall()[0][0]
        assert count == files * 10, f"W9: {count} rows in the parquet output, {files * 10} expected"
        checkpoint = du(f"{w}/state")
        sql = f"COPY (SELECT * FROM {read_csv_sql(folder + '/in')}) TO '{w}/duck.parquet' (FORMAT parquet)"
        # DuckDB's time per file grows with the glob (1.1 ms at 10,000 files, 1.6 ms at
        # 100,000 here): past duckdb_max it would run for most of an hour.
        d_seconds, d_rss = float("nan"), float("nan")
        if files <= duckdb_max:
            page_cache(f"{folder}/in", cache)
            d_seconds, d_rss = duckdb_child("", sql, threads)
        s_seconds, s_rss = float("nan"), float("nan")
        if spark and files <= spark_max:
            page_cache(f"{folder}/in", cache)
            s_seconds, s_rss, s_count = spark_w9(spark, f"{folder}/in", w, threads, per_epoch)
            assert s_count == files * 10, f"W9: Spark wrote {s_count} rows, {files * 10} expected"
        results.append({"files": files, "weir_s": seconds, "weir_rss": rss, "checkpoint_mb": checkpoint / 1e6,
                        "duck_s": d_seconds, "duck_rss": d_rss, "spark_s": s_seconds, "spark_rss": s_rss})
    return results


def w4_run(weir, data, w, rows, checkpoint):
    """One continuous run until every row is in a committed epoch: (seconds, peak RSS MB)."""
    import json

    fresh(w)
    toml = pipeline(w, f"{data}/in", AGGREGATE.format(work=w), checkpoint=checkpoint, trigger=None, interval="100ms", max_files=4)
    log = f"{w}/progress.jsonl"
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", f"{w}/.time.txt", weir, "run", toml, "--quiet", "--progress-log", log],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    started = time.monotonic()
    done_at = None
    while done_at is None and time.monotonic() - started < 600:
        time.sleep(0.01)
        try:
            with open(log) as f:
                total = sum(json.loads(l)["input_rows"] for l in f if l.strip())
        except (FileNotFoundError, ValueError):
            continue
        if total >= rows:
            done_at = time.monotonic()
    interrupt(proc)
    with open(f"{w}/.time.txt") as f:
        rss = int(f.read().strip().splitlines()[-1]) / 1024
    assert done_at is not None, f"W4 ({w}): never caught up"
    return done_at - started, rss


def w4(weir, data, work, rows, runs=3):
    """1M distinct keys, continuous trigger, checkpoints every 100 ms vs off (median of
    `runs` each, alternating, since a complete-mode table of 1M rows per epoch makes single
    runs noisy); then the restore time of a restart."""
    times = {"on": [], "off": []}
    for _ in range(runs):
        for label, checkpoint in [("on", True), ("off", False)]:
            times[label].append(w4_run(weir, data, f"{work}-{label}", rows, checkpoint))
    results = {label: dict(zip(["seconds", "rss"], sorted(t)[len(t) // 2])) for label, t in times.items()}
    # The last checkpointed run's state: restart with nothing new, load the 1M keys (weir
    # logs how long that took), then a final epoch that writes the whole table, and exit.
    w = f"{work}-on"
    toml = pipeline(w, f"{data}/in", AGGREGATE.format(work=w), checkpoint=True, trigger="once = true")
    seconds, _, _, err = timed([weir, "run", toml, "--quiet", "--log-level", "info"])
    restored = re.search(r"resuming from checkpoint.*took_ms=([0-9.]+)", err)
    assert restored, f"W4: no restore time in the log:\n{err[-2000:]}"
    results["restore_s"] = float(restored.group(1)) / 1000
    results["restart_s"] = seconds
    return results


def w5(weir, work, runs=20):
    work = fresh(work)
    os.makedirs(f"{work}/in")
    with open(f"{work}/in/tiny.csv", "w") as f:
        f.write("File;Shop;Sale_Count\ntiny.csv;Shop_1;3\ntiny.csv;Shop_2;4\n")
    times = []
    for i in range(runs):
        w = fresh(f"{work}/run")
        toml = pipeline(w, f"{work}/in", AGGREGATE.format(work=w), checkpoint=True)
        seconds, rss, _, _ = timed([weir, "run", toml, "--quiet"])
        times.append(seconds)
    return {"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000, "weir_rss": rss}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weir", required=True, help="the weir binary (a release build)")
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rows", type=int, default=250_000, help="rows per file")
    parser.add_argument("--data", default=os.path.join(HERE, "data"))
    parser.add_argument("--work", default=os.path.join(HERE, "work"))
    parser.add_argument("--w3-files", type=int, default=40)
    parser.add_argument("--w9-files", default="10000,100000,1000000", help="W9's file counts")
    parser.add_argument("--w9-duckdb-max", type=int, default=100_000, help="W9 runs DuckDB up to this many files")
    parser.add_argument("--w9-spark-max", type=int, default=100_000, help="W9 runs Spark up to this many files")
    parser.add_argument("--w9-cache", choices=["warm", "cold"], default="warm",
                        help="W9 reads every input file before each engine (warm) or drops the page cache (cold, root)")
    parser.add_argument("--spark-python", help="a Python with PySpark, for W9 (default ~/.cache/weir/spark-venv)")
    parser.add_argument("--w10-existing", type=int, default=100_000, help="files already in W10's folder")
    parser.add_argument("--w10-watch", choices=["both", "on", "off"], default="both",
                        help="W10 with notifications (on), polling only (off), or both")
    parser.add_argument("--only", default="W1,W1-http,W2,W3,W4,W5,W6,W7,W8")
    parser.add_argument("--w8-messages", type=int, default=1_000_000,
                        help="W8-nats: JSON messages published to the local stream")
    parser.add_argument("--results", default=os.path.join(HERE, "results.md"))
    args = parser.parse_args()
    weir = os.path.abspath(args.weir)
    threads = os.cpu_count() or 1
    rows = args.files * args.rows
    only = set(args.only.split(","))

    def data(name, *extra, files=args.files, rows_per_file=args.rows):
        """The generated input `name`, made once and kept in --data."""
        folder = os.path.join(args.data, f"{name}-{files}x{rows_per_file}")
        if not os.path.exists(os.path.join(folder, "expected_sums.csv")):
            subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), folder,
                            "--files", str(files), "--rows", str(rows_per_file), *extra], check=True)
        return folder

    report = []
    say = lambda line="": (print(line), report.append(line))
    say(f"# Weir benchmark results\n")
    say(f"Machine: {platform.machine()}, {threads} cores, {platform.platform()}. Input: {args.files} files x "
        f"{args.rows:,} rows = {rows:,} rows. Command: `python3 bench/run.py --weir {args.weir} --files {args.files} --rows {args.rows}`.\n")
    say("Each W1, W2 and W6 figure is the median of 3 runs.\n")
    say("| workload | weir | DuckDB | weir / DuckDB (rows/s) | weir peak RSS | DuckDB peak RSS |")
    say("|---|---:|---:|---:|---:|---:|")
    if "W1" in only:
        r = w1(weir, data("zipf"), f"{args.work}/w1", threads)
        say(versus_row("W1 aggregate, complete, checkpoints", r, rows))
    if "W1-http" in only:
        # Every second as Prometheus would; every 100 ms, ten times that, as a stress.
        for every, label in [(1.0, "every second"), (0.1, "every 100 ms")]:
            r = w1_http(weir, data("zipf"), f"{args.work}/w1http", every=every)
            (on_s, on_rss, scrapes), (off_s, off_rss, _) = r["on"], r["off"]
            say(f"| W1 with --http on, /metrics scraped {label} ({scrapes} scrape(s) in the median run; median of 5, "
                f"alternating with W1 off) | {on_s:.3f} s | W1 off: {off_s:.3f} s | on / off time: {on_s / off_s:.3f} | "
                f"{on_rss:.0f} MB | off: {off_rss:.0f} MB |")
    if "W2" in only:
        r = w2(weir, data("zipf"), f"{args.work}/w2", rows, threads)
        say(versus_row("W2 CSV to parquet, exactly-once", r, rows))
        # The same rows in ten times as many files, ten times as many an epoch so that epochs
        # hold the same rows: memory must not follow the file count.
        many_files, many_rows = args.files * 10, args.rows // 10
        folder = data("zipf", files=many_files, rows_per_file=many_rows)
        r = w2(weir, folder, f"{args.work}/w2", many_files * many_rows, threads, max_files=40)
        say(versus_row(f"W2, the same rows in {many_files} files (40 an epoch)", r, many_files * many_rows))
    if "W8" in only:
        r = w8_files(weir, data("zipf"), f"{args.work}/w8", threads)
        say(versus_row("W8 files: W1 over the same rows as JSON lines (DuckDB's read_json)", r, rows))
    if "W8-kafka" in only:
        r = w8_kafka(weir, data("zipf"), f"{args.work}/w8-kafka", args.w8_messages)
        say(f"W8 kafka: W1 over {r['messages']:,} JSON messages from a local Kafka topic (tansu, 4 partitions): "
            f"{r['seconds']:.2f} s ({r['messages'] / r['seconds'] / 1e6:.2f} M rows/s, whole process), "
            f"peak RSS {r['rss']:.0f} MB; sum of Sale_Count {r['total']:,}. The same messages fetched by "
            f"confluent-kafka, only counted: {r['client_seconds']:.2f} s "
            f"({r['messages'] / r['client_seconds'] / 1e6:.2f} M messages/s), what the broker serves")
    if "W8-nats" in only:
        r = w8_nats(weir, data("zipf"), f"{args.work}/w8-nats", args.w8_messages)
        say(f"W8 nats: W1 over {r['messages']:,} JSON messages from a local JetStream stream: "
            f"{r['seconds']:.2f} s ({r['messages'] / r['seconds'] / 1e6:.2f} M rows/s, whole process), "
            f"peak RSS {r['rss']:.0f} MB; sum of Sale_Count {r['total']:,}")
    if "W6" in only:
        r = w6(weir, data("zipf"), f"{args.work}/w6", threads)
        say(versus_row("W6 filter, derived column, group by lower(Shop), sum of an expression", r, rows))
    if "W7" in only:
        small = event_data(os.path.join(args.data, f"events-{args.files}x{args.rows}"), args.files, args.rows)
        r = w7(weir, small, f"{args.work}/w7", threads)
        say(versus_row(f"W7 10-minute windows per shop, watermark 5 min, append ({r['windows']:,} windows)", r, rows))
        big = event_data(os.path.join(args.data, f"events-{4 * args.files}x{args.rows}"), 4 * args.files, args.rows)
        r4 = w7(weir, big, f"{args.work}/w7", threads, runs=1)
        say(versus_row(f"W7 with 4x the rows ({r4['windows']:,} windows): peak RSS must stay flat", r4, 4 * rows))
    say()
    if "W3" in only:
        r = w3(weir, data("zipf"), f"{args.work}/w3", args.w3_files)
        say(f"W3 continuous, checkpoint.interval 100ms, {r['files']} files of {args.rows:,} rows dropped 250 ms apart: "
            f"latency to committed output p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms "
            f"(to pickup p50 {r['pickup_p50_ms']:.0f} ms, p99 {r['pickup_p99_ms']:.0f} ms); peak RSS {r['weir_rss']:.0f} MB.\n")
    if "W9" in only:
        counts = [int(c) for c in args.w9_files.split(",")]
        spark, why = spark_python(args.spark_python)
        say("W9 many small files (10 rows each, modified over days at 10,000 a day), CSV to parquet, available_now, "
            "10,000 files an epoch, checkpoints, max_file_age 7d (the default); "
            "DuckDB copies the same glob to one parquet file; Spark's file source runs the same stream "
            "(maxFilesPerTrigger 10,000, availableNow, parquet sink), timed from the query's start; "
            f"each engine starts from a {args.w9_cache} page cache"
            + (f" (Spark not run: {why})" if why else "") + ":\n")
        say("| files | weir | µs per file | weir peak RSS | checkpoint | DuckDB | DuckDB peak RSS | Spark | Spark peak RSS |")
        say("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in w9(weir, args.data, f"{args.work}/w9", counts, threads, args.w9_duckdb_max, spark, args.w9_spark_max,
                    cache=args.w9_cache):
            duck = (f"{r['duck_s']:.2f} s | {r['duck_rss']:.0f} MB" if r["duck_s"] == r["duck_s"]
                    else f"not run (over --w9-duckdb-max) | -")
            spark_cell = (f"{r['spark_s']:.2f} s | {r['spark_rss']:.0f} MB" if r["spark_s"] == r["spark_s"]
                          else "not run | -")
            say(f"| {r['files']:,} | {r['weir_s']:.2f} s | {r['weir_s'] / r['files'] * 1e6:.0f} | {r['weir_rss']:.0f} MB | "
                f"{r['checkpoint_mb']:.1f} MB | {duck} | {spark_cell} |")
        say()
    if "W10" in only:
        for watch, small in ((True, False), (False, False), (True, True), (False, True)):
            if args.w10_watch != "both" and watch != (args.w10_watch == "on"):
                continue
            r = w3(weir, data("zipf"), f"{args.work}/w10", args.w3_files, existing=args.w10_existing, watch=watch,
                   small_drops=small)
            how = "notifications (watch = true)" if watch else "listing at every poll (watch = false)"
            dropped = "files of 10 rows" if small else f"files of {args.rows:,} rows"
            say(f"W10 W3 in a folder already holding {args.w10_existing:,} files of 10 rows, {how}: the existing files read "
                f"in {r['caught_up_s']:.1f} s (from process start); then {r['files']} {dropped} dropped 250 ms apart, latency to "
                f"committed output p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms; to pickup (the "
                f"source opens the file) p50 {r['pickup_p50_ms']:.0f} ms, p99 {r['pickup_p99_ms']:.0f} ms, max "
                f"{r['pickup_max_ms']:.0f} ms; peak RSS {r['weir_rss']:.0f} MB.\n")
    if "W4" in only:
        r = w4(weir, data("keys1m", "--shops", "1000000", "--uniform"), f"{args.work}/w4", rows)
        loss = (r["on"]["seconds"] - r["off"]["seconds"]) / r["off"]["seconds"] * 100
        say(f"W4 1,000,000 distinct keys, continuous (median of 3 runs each): checkpoints every 100 ms {r['on']['seconds']:.2f} s "
            f"({rows / r['on']['seconds'] / 1e6:.2f} M rows/s, peak RSS {r['on']['rss']:.0f} MB), checkpoints off "
            f"{r['off']['seconds']:.2f} s ({rows / r['off']['seconds'] / 1e6:.2f} M rows/s, peak RSS {r['off']['rss']:.0f} MB): "
            f"throughput loss {loss:.1f} %. Recovery of the 1,000,000 keys (load and restore): {r['restore_s']:.2f} s; "
            f"the whole restart, with a final epoch writing the table again: {r['restart_s']:.2f} s.\n")
    if "W5" in only:
        r = w5(weir, f"{args.work}/w5")
        say(f"W5 start-up, one tiny file, process start to exit (20 runs): median {r['median_ms']:.1f} ms, "
            f"min {r['min_ms']:.1f} ms; peak RSS {r['weir_rss']:.0f} MB.")
    with open(args.results, "w") as f:
        f.write("\n".join(report) + "\n")
    print(f"\nwritten to {args.results}")


if __name__ == "__main__":
    main()
