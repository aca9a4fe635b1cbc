"""Parses Prometheus text (stdin) with prometheus_client's parser (Debian python3-prometheus-client)
and prints it as JSON: {family: {"type": ..., "samples": [[name, {labels}, value], ...]}}.
Exits 1 (with the parser's message) if the text is not valid exposition format."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    families = {
        f.name: {"type": f.type, "samples": [[s.name, s.labels, s.value] for s in f.samples]}
        for f in text_string_to_metric_families(sys.stdin.read())
    }
except Exception as e:  # the parser raises ValueError and others on malformed text
    print(f"not valid Prometheus text: {e!r}", file=sys.stderr)
    sys.exit(1)
json.dump(families, sys.stdout)
