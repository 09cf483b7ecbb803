"""Parses weir's /metrics text (standard input) with the Prometheus project's own Python
parser, in its strict OpenMetrics mode, and prints every sample as JSON lines:
{"name": ..., "labels": {...}, "value": ...}. A format error exits non-zero with the
parser's message, so the calling test fails on it."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    for family in text_string_to_metric_families(text):
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
