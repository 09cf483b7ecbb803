#!/usr/bin/env python3
"""Weir's CSV source beside Spark's, case by case: each case is a small CSV file, a schema
and options, read in PERMISSIVE mode with a corrupt-record column by both.

    pip install pyspark pyarrow     # PySpark needs Java 17 or later
    python3 tests/spark/record_csv.py --record         # Spark's answers -> csv_spark.json
    python3 tests/spark/record_csv.py --weir PATH      # Weir's beside them, as a table

`--record` needs Spark; comparing does not: it reads Spark's answers from csv_spark.json,
which is kept beside this script, so tests/e2e/csv_parity.rs runs without Spark.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED = os.path.join(HERE, "csv_spark.json")

# (name, schema, file text, extra options)
CASES = [
    ("malformed row after a CRLF line", "s STRING, n INT", "a,1\r\nb,x\r\n", {}),
    ("malformed row after an empty line", "s STRING, n INT", "a,1\n\nb,x\n", {}),
    ("quote inside an unquoted field", "s STRING, n INT", 'a"b,1\n', {}),
    ("text after a closing quote", "s STRING, n INT", '"a"b,1\n', {}),
    ("doubled quotes, default escape", "s STRING, n INT", '"a""b",1\n', {}),
    ("spaces after a closing quote", "s STRING, n INT", '"a" ,1\n', {}),
    ("backslash in quotes, escape = '\"'", "s STRING, n INT", '"a\\b",1\n', {"escape": '"'}),
    ("backslash-escaped quote, default escape", "s STRING, n INT", '"a\\"b",1\n', {}),
    ("DOUBLE: Spark's spellings", "d DOUBLE", "NaN\nInfinity\n-Infinity\n+Infinity\n", {}),
    ("DOUBLE: other spellings", "d DOUBLE", "NAN\nINF\nnan\ninf\n-inf\n", {}),
    ("DOUBLE: type suffixes", "d DOUBLE", "1.5d\n2f\n3D\n1e3\n", {}),
    ("INT with spaces", "n INT", " 1\n2 \n 3 \n", {}),
    ("DECIMAL with spaces", "x DECIMAL(10,2)", " 1.5\n2.5 \n", {}),
    ("DECIMAL with a grouping comma", "x DECIMAL(10,2)", '"1,000.00"\n"12,345"\n', {}),
    ("a line of only whitespace", "s STRING, n INT", "a,1\n   \nb,2\n\t\n", {}),
    ("DATE spellings", "d DATE", "2024\n2024-01\n2024-01-05\n2024-01-05T10:00\n2024-1-5\n20240105\n", {}),
    ("TIMESTAMP spellings", "t TIMESTAMP",
     "2024-01-05 10:00\n2024-01-05 10:00:00 UTC\n2024-01-05T10:00:00Z\n2024-01-05\n2024-01-05T10:00:00.123456\n", {}),
    ("INT out of range", "n INT", "2147483647\n2147483648\n-2147483649\n", {}),
    ("BOOLEAN spellings", "b BOOLEAN", "true\nFALSE\nTrue\nyes\n1\n", {}),
    ("too few and too many fields", "s STRING, n INT", "a\nb,1,extra\nc,2\n", {}),
    ("empty values", "s STRING, n INT", ",\n\"\",1\n", {}),
]


def show(value):
    """One value as both sides write it."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date,)):
        return value.isoformat()
    return str(value)


def write_case(folder, text):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "case.csv"), "w", newline="") as f:
        f.write(text)


def record():
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("OFF")
    answers = {"spark": spark.version, "cases": {}}
    with tempfile.TemporaryDirectory() as work:
        for i, (name, schema, text, options) in enumerate(CASES):
            folder = os.path.join(work, str(i))
            write_case(folder, text)
            reader = (spark.read.schema(f"{schema}, _corrupt STRING")
                      .option("mode", "PERMISSIVE")
                      .option("columnNameOfCorruptRecord", "_corrupt"))
            for key, value in options.items():
                reader = reader.option(key, value)
            rows = reader.csv(folder).collect()
            answers["cases"][name] = [[show(v) for v in row] for row in rows]
    with open(RECORDED, "w") as f:
        json.dump(answers, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"recorded Spark {spark.version}'s answers to {len(CASES)} cases in {RECORDED}")


def weir_rows(weir, work, i, schema, text, options):
    import pyarrow.parquet as pq

    folder = os.path.join(work, str(i))
    write_case(os.path.join(folder, "in"), text)
    extra = "".join(f'{k} = {json.dumps(v)}\n' for k, v in options.items())
    with open(os.path.join(folder, "pipeline.toml"), "w") as f:
        f.write(f"""[trigger]
once = true
[sources.s]
type = "csv"
path = "in"
schema = "{schema}"
corrupt_record_column = "_corrupt"
{extra}[sinks.out]
type = "parquet"
input = "s"
path = "out"
""")
    run = subprocess.run([weir, "run", "pipeline.toml", "--quiet"], cwd=folder,
                         capture_output=True, text=True)
    if run.returncode != 0:
        return [["error", run.stderr.strip()]]
    out = os.path.join(folder, "out")
    rows = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            table = pq.read_table(os.path.join(out, name))
            rows.extend([[show(v) for v in row.values()] for row in table.to_pylist()])
    return rows


def compare(weir, as_json):
    with open(RECORDED) as f:
        recorded = json.load(f)
    results = []
    with tempfile.TemporaryDirectory() as work:
        for i, (name, schema, text, options) in enumerate(CASES):
            spark = recorded["cases"].get(name)
            ours = weir_rows(weir, work, i, schema, text, options)
            results.append({"case": name, "input": text, "schema": schema,
                            "options": options, "spark": spark, "weir": ours,
                            "same": spark == ours})
    if as_json:
        json.dump(results, sys.stdout, indent=1, ensure_ascii=False)
        return
    cell = lambda rows: "<br>".join(" \\| ".join(r).replace("\n", "\\n").replace("\r", "\\r")
                                    for r in rows)
    print(f"| case | Spark {recorded['spark']} | Weir | same |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {cell(r['spark'] or [])} | {cell(r['weir'])} | "
              f"{'yes' if r['same'] else '**no**'} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", action="store_true", help="record Spark's answers")
    parser.add_argument("--weir", help="the weir binary to compare")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = parser.parse_args()
    if args.record:
        record()
    if args.weir:
        compare(args.weir, args.json)


if __name__ == "__main__":
    main()
