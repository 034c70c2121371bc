#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Adds up the JUnit XML files of every suite and the fuzz run, prints one line per suite
and the closing line "N passed, M failed", and exits non-zero when anything failed.

usage: summarize.py --fuzz NAME STATUS LOG RESULTS_DIR EXPECTED.xml...
A suite whose XML is missing or unreadable (a crashed runner) counts as one failure.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET


def count_suite(path):
    """Returns (passed, failed, skipped, failed test names) for one JUnit file."""
    root = ET.parse(path).getroot()
    passed = failed = skipped = 0
    names = []
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            failed += 1
            names.append(f"{case.get('classname', '')}::{case.get('name', '')}")
        elif "skipped" in kinds:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped, names


def main(argv):
    if len(argv) < 6 or argv[1] != "--fuzz":
        print(__doc__, file=sys.stderr)
        return 2
    fuzz_name, fuzz_status, fuzz_log, results = argv[2], int(argv[3]), argv[4], argv[5]
    expected = argv[6:]
    total_passed = total_failed = 0
    for name in expected:
        path = os.path.join(results, name)
        try:
            passed, failed, skipped, names = count_suite(path)
        except (OSError, ET.ParseError) as e:
            print(f"{name}: no readable results ({e}); counted as 1 failure")
            total_failed += 1
            continue
        print(f"{name}: {passed} passed, {failed} failed, {skipped} skipped")
        for n in names:
            print(f"  FAILED {n}")
        total_passed += passed
        total_failed += failed
    runs = ""
    try:
        with open(fuzz_log, encoding="utf-8", errors="replace") as f:
            m = re.search(r"stat::number_of_executed_units:\s*(\d+)", f.read())
            runs = f" ({m.group(1)} inputs)" if m else ""
    except OSError:
        pass
    if fuzz_status == 0:
        print(f"{fuzz_name}: passed{runs}")
        total_passed += 1
    else:
        print(f"{fuzz_name}: FAILED with status {fuzz_status}{runs}; see {fuzz_log}")
        total_failed += 1
    print(f"{total_passed} passed, {total_failed} failed")
    return 0 if total_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
