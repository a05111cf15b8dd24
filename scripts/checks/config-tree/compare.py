#!/usr/bin/env python3
"""Compares the heads that two builds resolve for every study spec (see README.md here).

Each input line is `profile|dataset|study|spec|head|rest`, where `head` is the resolved head
configuration (JSON for the GMM heads, bound to C = 19) and `rest` the rest of the training
configuration. Exits non-zero on any difference.
"""
import json
import sys


def load(path):
    runs = {}
    with open(path) as f:
        for line in f:
            profile, dataset, study, spec, head, rest = line.rstrip("\n").split("|", 5)
            head = json.loads(head) if head.startswith("{") else head
            runs[(profile, dataset, study, spec)] = (head, json.loads(rest))
    return runs


def main():
    old, new = load(sys.argv[1]), load(sys.argv[2])
    if set(old) != set(new):
        print("different specs:", sorted(set(old) ^ set(new)))
        sys.exit(1)
    differ = [k for k in old if old[k] != new[k]]
    for k in differ:
        print("differs:", k)
    print(f"{len(old)} specs, {len(differ)} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
