#!/usr/bin/env python3
"""Random one-line CSV files, read by Spark and by Weir, compared value by value.

    python3 tests/spark/fuzz_csv.py SEED COUNT target/debug/weir

Each file is one line built from the pieces that make CSV hard (quotes, escapes,
separators, spaces, tabs, line endings, numbers and times run together), read in
PERMISSIVE mode with a corrupt-record column under one of two schemas. Every file whose rows
differ is printed as JSON; the count that agree goes to stderr. Needs PySpark (Java 17) and
pyarrow; the recorded cases in record_csv.py are what the tests check without Spark.
"""

import json
import os
import random
import sys
import tempfile

import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from record_csv import weir_rows  # noqa: E402

PIECES = ['\\', '"', '\\"', '"\\', 'a', 'b1', '"', '"', '\\', ',', ',', ' ', '1', '-2', '1.5',
          'e3', 'NaN', 'Inf', 'true', '2024-01-05', '10:00', 'T', 'Z', '+02:00', '""', '\t',
          ':', '.', '0x1p3', 'd', '12,345', '2024-1-5', ' UTC', '-', '007', '1e-2']
SCHEMAS = ["s STRING, n INT, d DOUBLE", "t TIMESTAMP, x DECIMAL(6,2), b BOOLEAN, dt DATE"]


def cases(seed, count):
    rnd = random.Random(seed)
    for i in range(count):
        line = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 9)))
        yield f"case{i}", SCHEMAS[i % 2], line + rnd.choice(["\n", "\r\n", ""])


def plain(table):
    """Rows as text; dates and timestamps as integers, so that any year shows."""
    columns = []
    for column in table.columns:
        if pa.types.is_date(column.type):
            column = column.cast(pa.int32())
        elif pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        columns.append(["null" if v is None else repr(v) if isinstance(v, float) else str(v)
                        for v in column.to_pylist()])
    return [list(row) for row in zip(*columns)]


def spark_rows(all_cases):
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import input_file_name

    spark = (SparkSession.builder.master("local[1]")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("OFF")
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for k, schema in enumerate(SCHEMAS):
            folder = os.path.join(work, str(k))
            os.makedirs(folder)
            for name, s, text in all_cases:
                if s == schema:
                    with open(os.path.join(folder, name + ".csv"), "w", newline="") as f:
                        f.write(text)
            table = (spark.read.schema(f"{schema}, _corrupt STRING")
                     .option("mode", "PERMISSIVE")
                     .option("columnNameOfCorruptRecord", "_corrupt")
                     .csv(folder)
                     .withColumn("_file", input_file_name())
                     .toArrow())
            files = table.column("_file").to_pylist()
            for path, row in zip(files, plain(table.drop_columns(["_file"]))):
                rows.setdefault(os.path.basename(path).rsplit(".", 1)[0], []).append(row)
    return rows


def main():
    seed, count, weir = int(sys.argv[1]), int(sys.argv[2]), os.path.abspath(sys.argv[3])
    all_cases = list(cases(seed, count))
    spark = spark_rows(all_cases)
    differ = 0
    with tempfile.TemporaryDirectory() as work:
        for name, schema, text in all_cases:
            ours = weir_rows(weir, work, name, schema, text, {}, rows_of=plain)
            theirs = spark.get(name, [])
            if ours != theirs:
                differ += 1
                print(json.dumps({"schema": schema, "text": text, "spark": theirs,
                                  "weir": ours}, ensure_ascii=False))
    print(f"{count - differ} of {count} files read the same", file=sys.stderr)


if __name__ == "__main__":
    main()
