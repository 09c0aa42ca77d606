#!/usr/bin/env python3
"""Rewrites appliance/verify-expectations.tsv from a `vigil verify -v` run.

Usage: vigil verify ../shared/corpus/suricata-verify -v | appliance/update-verify-expectations.py

Skips keep the runner's reason. Failures get a reason from their failing checks; reasons already
written by hand in the file (anything not starting with "needs ") are kept as they are.
"""
import re
import sys
from pathlib import Path

path = Path(__file__).resolve().parent / "verify-expectations.tsv"
old = {}
for line in path.read_text().splitlines():
    if line.strip() and not line.startswith("#"):
        case, status, reason = line.split("\t", 2)
        old[case] = (status, reason)

cases = {}
current = None
for line in sys.stdin:
    line = line.rstrip("\n")
    m = re.match(r"^(FAIL|SKIP) (\S+): (.*)$", line)
    if m:
        kind, current, rest = m.groups()
        cases[current] = (kind, [rest])
        continue
    m = re.match(r"^    also: (.*)$", line)
    if m and current in cases:
        cases[current][1].append(m.group(1))


def fail_reason(checks):
    needs = []
    for c in checks:
        if '"alert"' in c or "alert." in c or "flow.alerted: true" in c:
            r = "alerts differ from Suricata: " + re.sub(r" \(want.*$", "", c)[:160]
        elif '"fileinfo"' in c:
            r = "fileinfo differs from Suricata: " + re.sub(r" \(want.*$", "", c)[:160]
        elif "stats." in c:
            r = "stats counters Vigil does not keep: " + re.sub(r"^.*?(stats\.[\w.]+).*$", r"\1", c)
        elif "pcap_cnt" in c and ('"tls"' in c or '"http"' in c or '"dns"' in c):
            r = ("needs app-layer parsing on acknowledgement (Suricata IDS mode stamps the "
                 "ACK packet's pcap_cnt); the record itself is produced")
        else:
            r = "differs from Suricata: " + re.sub(r" \(want.*$", "", c)[:160]
        if r not in needs:
            needs.append(r)
    return "; ".join(needs)


out = [
    "# Known failures and skips of `vigil verify` over the suricata-verify corpus",
    "# (../shared/corpus/suricata-verify/). Format: case<TAB>fail|skip<TAB>reason.",
    "# tests/verify.rs holds the runner to this file: a case may only leave it (\"now passes\").",
    "# Regenerate: vigil verify ../shared/corpus/suricata-verify -v | appliance/update-verify-expectations.py",
    "",
]
for case in sorted(cases):
    kind, checks = cases[case]
    if kind == "SKIP":
        out.append(f"{case}\tskip\t{checks[0]}")
        continue
    prev = old.get(case)
    if prev and prev[0] == "fail" and not prev[1].startswith("needs ") and not prev[1].startswith("differs"):
        out.append(f"{case}\tfail\t{prev[1]}")
    else:
        out.append(f"{case}\tfail\t{fail_reason(checks)}")
path.write_text("\n".join(out) + "\n")
print(f"{sum(1 for k in cases.values() if k[0] == 'FAIL')} fail, "
      f"{sum(1 for k in cases.values() if k[0] == 'SKIP')} skip written to {path}")
