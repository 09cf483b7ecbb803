#!/usr/bin/env python3
"""Records what Spark 4 (ANSI mode, its default) and DuckDB answer to the numeric edge cases
that crates/operators/tests/numbers.rs checks Weir against, as the table in docs/numbers.md.

    pip install pyspark duckdb      # PySpark needs Java 17 or later
    python3 tests/spark/record_numbers.py > /tmp/numbers.md

The tests do not need Spark: their expected values are this script's Spark column.
"""

import sys

CASES = [
    # (what, SQL type, values, aggregates)
    ("BIGINT sum at the boundary", "bigint", ["9223372036854775806", "1"], ["sum(x)"]),
    ("BIGINT sum past the boundary", "bigint", ["9223372036854775807", "1"], ["sum(x)"]),
    ("BIGINT sum below the boundary", "bigint", ["-9223372036854775807", "-2"], ["sum(x)"]),
    ("try_sum past the boundary", "bigint", ["9223372036854775807", "1"], ["try_sum(x)"]),
    ("INT sum past INT's boundary", "int", ["2147483647", "2147483647"], ["sum(x)"]),
    ("DECIMAL(10,2) sum", "decimal(10,2)", ["99999999.99"], ["sum(x)"]),
    ("DECIMAL(38,0) sum past 38 digits", "decimal(38,0)", ["6" + "0" * 37] * 2, ["sum(x)"]),
    ("DECIMAL(38,0) try_sum past 38 digits", "decimal(38,0)", ["6" + "0" * 37] * 2, ["try_sum(x)"]),
    ("DECIMAL(5,0) avg of 1, 1, 0", "decimal(5,0)", ["1", "1", "0"], ["avg(x)"]),
    ("DECIMAL(5,0) avg of -1, -1, 0", "decimal(5,0)", ["-1", "-1", "0"], ["avg(x)"]),
    ("DECIMAL(5,0) avg of one 1 in 32 (half up)", "decimal(5,0)", ["1"] + ["0"] * 31, ["avg(x)"]),
    ("DECIMAL(10,2) avg of 1.25, 2.50", "decimal(10,2)", ["1.25", "2.50"], ["avg(x)"]),
    ("DECIMAL(36,2) avg of 1.00, 2.01", "decimal(36,2)", ["1.00", "2.01"], ["avg(x)"]),
    ("DECIMAL(38,0) avg past 38 digits", "decimal(38,0)", ["8" + "0" * 37] * 2, ["avg(x)"]),
    ("DOUBLE with NaN", "double", ["1.0", "NaN"], ["sum(x)", "min(x)", "max(x)", "avg(x)"]),
    ("DOUBLE NaN, Infinity, -1", "double", ["NaN", "Infinity", "-1.0"], ["min(x)", "max(x)"]),
    ("DOUBLE Infinity + -Infinity", "double", ["Infinity", "-Infinity"], ["sum(x)", "avg(x)"]),
    ("DOUBLE -0.0 then 0.0", "double", ["-0.0", "0.0"], ["min(x)", "max(x)"]),
    ("DOUBLE 0.0 then -0.0", "double", ["0.0", "-0.0"], ["min(x)", "max(x)"]),
    ("DOUBLE sum of -0.0", "double", ["-0.0"], ["sum(x)"]),
    ("BIGINT avg of the maximum twice", "bigint", ["9223372036854775807"] * 2, ["avg(x)"]),
    ("INT all NULL", "int", ["NULL", "NULL"],
     ["sum(x)", "count(x)", "avg(x)", "min(x)", "max(x)", "count(*)"]),
]
# Grouping by a DOUBLE key: which keys make one group.
GROUPING = ("DOUBLE keys -0.0, 0.0, NaN, -NaN", ["-0.0", "0.0", "NaN", "-NaN"])


def literal(value, sql_type, engine):
    if value == "NULL":
        return f"cast(NULL as {sql_type})"
    if sql_type == "double":
        if value.lstrip("-") in ("NaN", "Infinity"):
            sign = "-" if value.startswith("-") else ""
            spelled = {"spark": f"double('{value.lstrip('-')}')",
                       "duckdb": f"'{value.lstrip('-')}'::double"}[engine]
            return f"{sign}{spelled}" if sign else spelled
        # Parsed from text: a literal -0.0 is a DECIMAL first, and DECIMAL has no negative zero.
        return f"double('{value}')" if engine == "spark" else f"'{value}'::double"
    return f"cast({value} as {sql_type})"


def query(engine, sql_type, values, aggregates, group=False):
    rows = ", ".join(f"({literal(v, sql_type, engine)})" for v in values)
    aggs = ", ".join(aggregates)
    source = f"values {rows} as t(x)" if engine == "spark" else f"(values {rows}) t(x)"
    if engine == "duckdb":
        aggs = aggs.replace("try_sum(x)", "sum(x)")
    if group:
        return f"select x, count(*) from {source} group by x order by x"
    return f"select {aggs} from {source}"


def spark_runner():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    spark = (SparkSession.builder.master("local[1]")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("OFF")

    def run(sql):
        try:
            frame = spark.sql(sql)
            types = [f.dataType.simpleString() for f in frame.schema.fields]
            return show(frame.collect(), types)
        except Exception as error:  # Spark's errors name their class first.
            return "error " + str(error).split("]")[0].lstrip("[")
    return run


def duckdb_runner():
    import duckdb

    def run(sql):
        try:
            relation = duckdb.sql(sql)
            types = [str(t).lower() for t in relation.types]
            return show(relation.fetchall(), types)
        except duckdb.Error as error:
            return "error " + type(error).__name__
    return run


def show(rows, types):
    def one(v):
        if v is None:
            return "NULL"
        if isinstance(v, float) and v != v:
            return "NaN"
        return str(v)
    values = "; ".join(", ".join(one(v) for v in row) for row in rows)
    return f"{values} ({', '.join(types)})"


def main():
    spark = spark_runner()
    duck = duckdb_runner()
    if spark is None:
        print("PySpark is missing: the Spark column stays empty", file=sys.stderr)
    print("| case | aggregates | Spark 4 (ANSI) | DuckDB |")
    print("|---|---|---|---|")
    for what, sql_type, values, aggregates in CASES:
        s = spark(query("spark", sql_type, values, aggregates)) if spark else ""
        d = duck(query("duckdb", sql_type, values, aggregates))
        print(f"| {what} | {', '.join(aggregates)} | {s} | {d} |")
    what, values = GROUPING
    s = spark(query("spark", "double", values, [], group=True)) if spark else ""
    d = duck(query("duckdb", "double", values, [], group=True))
    print(f"| {what} | group by x, count(*) | {s} | {d} |")


if __name__ == "__main__":
    main()
