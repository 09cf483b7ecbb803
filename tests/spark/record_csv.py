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
    ("a backslash pair in quotes, default escape", "s STRING, n INT", '"a\\\\b",1\n', {}),
    ("spaces then text after a closing quote", "s STRING, n INT", '"a"  b,1\n', {}),
    ("quotes at the ends of a quoted value", "s STRING, n INT", '"a""",1\n"""a",2\n"",3\n', {}),
    ("a delimiter and a line break inside quotes", "s STRING, n INT", '"a,b",1\n"c\nd",2\n', {}),
    ("an unterminated quote", "s STRING, n INT", 'a,1\n"b,2\n', {}),
    ("spaces around unquoted values", "s STRING, n INT, d DOUBLE", ' a , 1 , 2.5 \n', {}),
    ("STRING: spaces and empty quotes", "s STRING, t STRING", ' ,x\n"",""\n" ", \n', {}),
    ("a delimiter at the end of a line", "s STRING, n INT", "a,1,\n", {}),
    ("a lone CR ends a line", "s STRING, n INT", "a,1\rb,2\r", {}),
    ("a header after blank lines", "s STRING, n INT", "\n  \ns,n\na,1\n", {"header": True}),
    ("INT: signs, zeros and other forms", "n INT", "+1\n-0\n007\n1.0\n1e2\n0x10\n", {}),
    ("BIGINT at its bounds", "n BIGINT", "9223372036854775807\n-9223372036854775808\n9223372036854775808\n", {}),
    ("DOUBLE: Java's forms", "d DOUBLE", " 1.5 \n1.\n.5\n-1e-3\n+2\nInf\n-Inf\n+Inf\n0x1p3\n1_0\ne5\n1e400\n", {}),
    ("DECIMAL: rounding, exponents and precision", "x DECIMAL(5,2)",
     '1.005\n1.004\n-1.005\n1e2\n1.5E-1\n999.994\n999.995\n.5\n5.\n+1\n"1,2,3"\n1e-9\n', {}),
    ("BOOLEAN with spaces", "b BOOLEAN", " true\nfalse \n", {}),
    ("DATE: more spellings", "d DATE",
     " 2024-01-05 \n2024-01-05 10:00\n2024-01-05Tx\n2024-13-01\n2024-02-30\n+2024-01-05\n2024-001-05\n"
     "024-01-05\n2024/01/05\n2024-01-05GMT\n", {}),
    ("TIMESTAMP: zones, fractions and partial times", "t TIMESTAMP",
     "2024-01-05 10:00:00+02:00\n2024-01-05T10:00:00.1234567\n2024-01-05 10:00:00 Europe/Paris\n"
     "2024-01-05 10:00:00 GMT\n2024-01-05T10\n2024-01-05 10:00:00.5Z\n2024-01-05 10:00:00 +02\n"
     "2024-01-05 10:00:00 UTC+1\n2024-01-05 1:2:3\n2024-01-05 10:00+02:00\n2024-01-05 10:00:00 EST\n"
     "2024-01-05 10:00:00-0130\n2024-01-05 10:00:00 +2:00\n2024-01-05 24:00:00\n", {}),
    ("TIMESTAMP: a time of day alone", "t TIMESTAMP", "10:00:00\nT10:00\n", {}),
    ("TIMESTAMP: the time zone option", "t TIMESTAMP",
     "2024-01-05 10:00:00\n2024-07-05 10:00:00\n2024-01-05 10:00:00Z\n2024-03-31 02:30:00\n"
     "2024-10-27 02:30:00\n", {"timeZone": "Europe/Paris"}),
]

# Spark's option names, as the pipeline file spells them.
WEIR_OPTION = {"timeZone": "time_zone", "dateFormat": "date_format",
               "timestampFormat": "timestamp_format"}


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


def weir_rows(weir, work, i, schema, text, options, rows_of=None):
    """Weir's rows for one case; `rows_of` turns a pyarrow table into rows (by default, each
    value as `show` writes it)."""
    import pyarrow.parquet as pq

    if rows_of is None:
        rows_of = lambda table: [[show(v) for v in row.values()] for row in table.to_pylist()]

    folder = os.path.join(work, str(i))
    write_case(os.path.join(folder, "in"), text)
    extra = "".join(f'{WEIR_OPTION.get(k, k)} = {json.dumps(v)}\n' for k, v in options.items())
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
            rows.extend(rows_of(pq.read_table(os.path.join(out, name))))
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
