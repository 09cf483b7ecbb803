"""Compares Weir's output folders with DuckDB running the same query on the same rows.

Usage: python3 differential.py SPEC.json

SPEC names the folder holding the raw input rows as Weir read them (a parquet archive
written by the same pipeline, so that both engines start from identical rows) and a list of
checks. Each check has a `weir` folder (parquet; append-mode part files or a complete-mode
result.parquet) and either a `duckdb` query over the view `input`, or an `other` Weir folder
that must hold the same rows. With `key`, rows are matched on the key columns and each
differing column is named; otherwise the rows are compared as multisets.

Values are compared "sensibly": numbers as floats to 9 significant digits (so INT 3 equals
DOUBLE 3.0, and float sums in another order agree), -0.0 as 0.0, timestamps in UTC.
Prints one line per disagreement and, last, "N checks agree" or exits 1.
"""

import datetime
import decimal
import json
import math
import sys

import duckdb


def norm(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal)):
        value = float(value)
        if math.isnan(value):
            return "NaN"
        if value == 0:
            return 0.0
        return float(f"{value:.9g}")
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def sort_key(row):
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in row)


def rows_of(con, sql):
    result = con.sql(sql)
    names = result.columns
    return names, [tuple(norm(v) for v in row) for row in result.fetchall()]


def folder(path):
    return f"read_parquet('{path}/*.parquet', union_by_name = true)"


def main():
    spec = json.load(open(sys.argv[1]))
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.sql(f"CREATE VIEW input AS SELECT * FROM {folder(spec['archive'])}")
    failures = 0
    for check in spec["checks"]:
        name = check["name"]
        weir_names, weir = rows_of(con, f"SELECT * FROM {folder(check['weir'])}")
        if "other" in check:
            _, expected = rows_of(con, f"SELECT * FROM {folder(check['other'])}")
        else:
            _, expected = rows_of(con, check["duckdb"])
        if not weir and not check.get("may_be_empty"):
            print(f"{name}: Weir wrote no rows")
            failures += 1
            continue
        key = check.get("key")
        if key is None:
            if sorted(weir, key=sort_key) != sorted(expected, key=sort_key):
                only_weir = set(weir) - set(expected)
                only_duck = set(expected) - set(weir)
                print(f"{name}: {len(weir)} rows from Weir, {len(expected)} expected; "
                      f"only in Weir: {sorted(only_weir, key=sort_key)[:3]}; "
                      f"only expected: {sorted(only_duck, key=sort_key)[:3]}")
                failures += 1
            continue
        at = [weir_names.index(k) for k in key]
        by_key = lambda rows: {tuple(r[i] for i in at): r for r in rows}
        mine, theirs = by_key(weir), by_key(expected)
        if len(mine) != len(weir) or mine.keys() != theirs.keys():
            print(f"{name}: keys differ ({len(mine)} in Weir, {len(theirs)} expected)")
            failures += 1
            continue
        for column, column_name in enumerate(weir_names):
            bad = [(k, mine[k][column], theirs[k][column]) for k in mine
                   if mine[k][column] != theirs[k][column]]
            if bad:
                k, got, want = bad[0]
                label = check.get("labels", {}).get(column_name, column_name)
                print(f"{name}: {label}: {len(bad)} row(s) differ, e.g. key {k}: "
                      f"Weir {got!r}, expected {want!r}")
                failures += 1
    if failures:
        print(f"{failures} disagreement(s)")
        sys.exit(1)
    print(f"{len(spec['checks'])} checks agree")


main()
