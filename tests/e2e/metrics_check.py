"""Parses weir's /metrics text (standard input) with the Prometheus project's own Python
parser and prints every sample as JSON lines: {"name": ..., "labels": {...}, "value": ...}.
The argument says which format: `openmetrics` (the strict OpenMetrics parser) or `classic`
(Prometheus' text format 0.0.4). A format error exits non-zero with the parser's message,
so the calling test fails on it."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic


def main():
    parse = {"openmetrics": openmetrics, "classic": classic}[sys.argv[1]]
    text = sys.stdin.read()
    for family in parse(text):
        for sample in family.samples:
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": sample.value,
            }))


if __name__ == "__main__":
    main()
