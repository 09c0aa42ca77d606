#!/usr/bin/env python3
"""Pass rate of `vigil verify` over the suricata-verify cases that involve HTTP, DNS, TLS or SSH,
and over those that need no application-layer parser (issue 5's and issue 4's figures).

Usage:
  vigil verify ../shared/corpus/suricata-verify -v | appliance/verify-protocols.py ../shared/corpus/suricata-verify

A case involves a protocol when its rules or its test.yaml reference it:
  - a rule whose protocol is http/http1/dns/tls/ssh, or that uses one of the protocol's
    keywords (http.* / http_* / uricontent / urilen / file_data / file.data; dns.* / dns_query;
    tls.* / tls_* / ja3* / ja4*; ssh.* / ssh_*) or `app-layer-protocol:<proto>`;
  - a check that filters on event_type http/dns/tls/ssh (fileinfo counts as http: Vigil's
    files come from HTTP), on a key under http./dns./tls./ssh./fileinfo., or on
    app_proto: <proto>.
A case that references none of them needs no application-layer parser. Cases `vigil verify -v`
does not list as FAIL or SKIP passed. The rate is given over the cases
that ran (passed + failed) and over all of them (skipped included).
"""
import re
import sys
from pathlib import Path

PROTOS = ("http", "dns", "tls", "ssh")
KEYWORDS = {
    "http": re.compile(r"(?:^|[;\s(])(?:http[._]\w+|uricontent|urilen|file[._]data)\b"),
    "dns": re.compile(r"(?:^|[;\s(])(?:dns[._]\w+)\b"),
    "tls": re.compile(r"(?:^|[;\s(])(?:tls[._]\w+|ja3s?[._]\w+|ja4[._]\w+)\b"),
    "ssh": re.compile(r"(?:^|[;\s(])(?:ssh[._]\w+)\b"),
}


def rule_protos(text):
    found = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split("(", 1)[0].split()
        if len(head) >= 2 and head[1] in ("http", "http1", "dns", "tls", "ssh"):
            found.add("http" if head[1] == "http1" else head[1])
        body = line.split("(", 1)[1] if "(" in line else ""
        for p, rx in KEYWORDS.items():
            if rx.search(body):
                found.add(p)
        for m in re.finditer(r"app-layer-protocol\s*:\s*!?\s*(\w+)", body):
            if m.group(1) in PROTOS:
                found.add(m.group(1))
    return found


def yaml_protos(text):
    found = set()
    for m in re.finditer(r"event_type:\s*\"?(\w+)", text):
        t = "http" if m.group(1) == "fileinfo" else m.group(1)
        if t in PROTOS:
            found.add(t)
    for m in re.finditer(r"^\s*(?:-\s*)?\"?(http|dns|tls|ssh|fileinfo)\.[\w.\[\]]+\"?\s*:", text, re.M):
        found.add("http" if m.group(1) == "fileinfo" else m.group(1))
    for m in re.finditer(r"app_proto:\s*\"?(\w+)", text):
        if m.group(1) in PROTOS:
            found.add(m.group(1))
    return found


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = Path(sys.argv[1])
    outcome = {}
    for line in sys.stdin:
        m = re.match(r"^(FAIL|SKIP) (\S+): ", line)
        if m:
            outcome[m.group(2)] = m.group(1).lower()
    cases = sorted(p.parent for p in root.rglob("test.yaml"))
    per_proto = {p: {"pass": 0, "fail": 0, "skip": 0} for p in PROTOS}
    subset = {"pass": 0, "fail": 0, "skip": 0}
    no_app = {"pass": 0, "fail": 0, "skip": 0}
    total = {"pass": 0, "fail": 0, "skip": 0}
    for case in cases:
        name = str(case.relative_to(root))
        result = outcome.get(name, "pass")
        total[result] += 1
        protos = yaml_protos((case / "test.yaml").read_text(errors="replace"))
        for rules in case.glob("*.rules"):
            protos |= rule_protos(rules.read_text(errors="replace"))
        if protos:
            subset[result] += 1
        else:
            no_app[result] += 1
        for p in protos:
            per_proto[p][result] += 1

    def line(label, c):
        ran = c["pass"] + c["fail"]
        allc = ran + c["skip"]
        rate_ran = 100.0 * c["pass"] / ran if ran else 0.0
        rate_all = 100.0 * c["pass"] / allc if allc else 0.0
        print(
            f"{label:<22} {c['pass']:>4} passed {c['fail']:>4} failed {c['skip']:>4} skipped"
            f"   {rate_ran:5.1f} % of run, {rate_all:5.1f} % of all"
        )

    line("all cases", total)
    line("HTTP/DNS/TLS/SSH cases", subset)
    for p in PROTOS:
        line(f"  {p}", per_proto[p])
    line("no app-layer parser", no_app)


if __name__ == "__main__":
    main()
