"""Turn a junit XML report into tests/results/<run>/summary.json (counts and failures)."""

import json
import sys
import xml.etree.ElementTree as ET


def main(junit: str, out: str) -> None:
    suite = ET.parse(junit).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    failures = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                if case.find("failure") is not None or case.find("error") is not None]
    summary = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    summary.update(time=float(suite.get("time", 0)), failed=failures)
    with open(out, "w") as fh:
        json.dump(summary, fh, indent=2)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
