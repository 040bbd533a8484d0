#!/usr/bin/env python3
"""Judge a kosoku (Autobahn TestSuite) report directory.

Usage:
    check_report.py REPORT_DIR [--name autobahn-server] [--agent AGENT]
                    [-i CASE ...] [-x CASE ...] [--no-expected-set]

REPORT_DIR is what `kosoku ... -o REPORT_DIR` wrote: `index.json`
({agent: {case_id: {behavior, behaviorClose, remoteCloseCode, duration,
reportfile}}}) plus one `<agent>_case_<id>.json` per case.

Each case is classified:
  pass          behavior in OK / NON-STRICT / INFORMATIONAL and
                behaviorClose in OK / INFORMATIONAL
  runner fault  result text contains "Strings must be encoded before hashing"
                and the case's httpRequest is empty: kosoku's own (py2-era)
                case code crashed and the report kept no handshake or wire
                data, so there is nothing to judge. Known kosoku 0.1.0 bug: seen
                in 13.2/13.5/13.6/13.7 .1-.3 when the peer echoes a small text
                message uncompressed (legal under permessage-deflate) after
                server_no_context_takeover was negotiated. Listed and counted
                apart; not a failure.
  fail          anything else: FAILED, ERROR, UNIMPLEMENTED, UNCLEAN,
                WRONG CODE, FAILED BY CLIENT, a missing case, an unreadable
                per-case report, ...

The expected case set is kosoku's own case list (imported from the installed
kosoku package), narrowed by the same -i/-x patterns that were given to kosoku
(kosoku semantics: an id without `*` must match exactly; with `*`, `*` matches
anything and the pattern is anchored at the start only).

Exit status: 0 if no case failed and at least one case ran; 1 otherwise;
2 on usage errors. The last line printed is always
`<name>: N passed, M failed` (with `, K skipped` appended when there were
runner faults), for CI log readers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter

PASS_BEHAVIOR = ("OK", "NON-STRICT", "INFORMATIONAL")
PASS_CLOSE = ("OK", "NON-STRICT", "INFORMATIONAL")
RUNNER_FAULT_TEXT = "Strings must be encoded before hashing"
# Display order for the summary table; anything else is listed after these.
OUTCOME_ORDER = ("OK", "NON-STRICT", "INFORMATIONAL", "RUNNER FAULT", "FAILED",
                 "ERROR", "UNIMPLEMENTED", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT",
                 "MISSING", "BAD REPORT")


def case_key(case_id: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in case_id.split("."))


def kosoku_select(all_ids: list[str], include: list[str], exclude: list[str]) -> list[str]:
    """Replicate kosoku's -i/-x selection."""

    def matcher(pattern: str):
        if "*" not in pattern:
            if pattern not in all_ids:
                raise SystemExit(f"check_report: no such case: {pattern}")
            return lambda cid: cid == pattern
        rx = re.compile(re.escape(pattern).replace(r"\*", ".*"))
        return lambda cid: rx.match(cid) is not None

    inc = [matcher(p) for p in include]
    exc = [matcher(p) for p in exclude]
    return [
        cid for cid in all_ids
        if (not inc or any(m(cid) for m in inc)) and not any(m(cid) for m in exc)
    ]


def expected_ids(include: list[str], exclude: list[str]) -> list[str] | None:
    try:
        from kosoku.cases import CASES  # type: ignore[import-not-found]
    except Exception as exc:  # noqa: BLE001 - any import failure means "unknown"
        print(f"check_report: warning: cannot import kosoku's case list ({exc}); "
              "missing cases will not be detected", file=sys.stderr)
        return None
    return kosoku_select(list(CASES), include, exclude)


def one_line(text: object, limit: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def classify(case_id: str, entry: dict, report_dir: str) -> tuple[str, str, bool | None]:
    """Return (outcome, reason, is_server) for one index.json entry."""
    behavior = entry.get("behavior")
    close = entry.get("behaviorClose")
    detail: dict = {}
    reportfile = entry.get("reportfile")
    detail_err = None
    if reportfile:
        try:
            with open(os.path.join(report_dir, reportfile), encoding="utf-8") as f:
                detail = json.load(f)
        except (OSError, ValueError) as exc:
            detail_err = f"cannot read per-case report {reportfile}: {exc}"
    else:
        detail_err = "index entry has no reportfile"
    is_server = detail.get("isServer")

    # The per-case file is authoritative when present (index.json is derived
    # from the same result); disagreeing files mean a stale/mixed directory.
    if detail:
        if detail.get("id") not in (None, case_id):
            return "BAD REPORT", f"{reportfile} is for case {detail.get('id')}", is_server
        if (detail.get("behavior"), detail.get("behaviorClose")) != (behavior, close):
            return ("BAD REPORT",
                    f"index.json says {behavior}/{close} but {reportfile} says "
                    f"{detail.get('behavior')}/{detail.get('behaviorClose')} (stale report dir?)",
                    is_server)

    result = str(detail.get("result", ""))
    if detail and RUNNER_FAULT_TEXT in result and not detail.get("httpRequest"):
        return "RUNNER FAULT", one_line(result), is_server

    if behavior in PASS_BEHAVIOR and close in PASS_CLOSE:
        if detail_err:
            return "BAD REPORT", detail_err, is_server
        # Label a passing case by its least strict verdict.
        rank = {"OK": 0, "NON-STRICT": 1, "INFORMATIONAL": 2}
        label = max((behavior, close), key=lambda v: rank[v])
        return label, "", is_server

    reasons = []
    if behavior not in PASS_BEHAVIOR:
        reasons.append(f"behavior={behavior}: {one_line(result or '?')}")
    if close not in PASS_CLOSE:
        rc = detail.get("resultClose", "?")
        code = entry.get("remoteCloseCode", detail.get("remoteCloseCode"))
        reasons.append(f"behaviorClose={close}: {one_line(rc)} (remote close code {code})")
    if detail_err:
        reasons.append(detail_err)
    # Name the failure by the failing verdict: behavior first, else the close one.
    outcome = behavior if behavior not in PASS_BEHAVIOR else close
    return str(outcome or "FAILED"), "; ".join(reasons), is_server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report_dir")
    ap.add_argument("--name", help="label for the summary line, e.g. autobahn-server "
                    "(default: derived from the report's isServer field)")
    ap.add_argument("--agent", help="agent to check when index.json holds several")
    ap.add_argument("-i", "--include", action="append", default=[], metavar="CASE",
                    help="the -i patterns given to kosoku (repeatable)")
    ap.add_argument("-x", "--exclude", action="append", default=[], metavar="CASE",
                    help="the -x patterns given to kosoku (repeatable)")
    ap.add_argument("--no-expected-set", action="store_true",
                    help="do not check for missing cases")
    ap.add_argument("--max-list", type=int, default=200,
                    help="list at most this many failing cases (default 200)")
    args = ap.parse_args(argv)

    name = args.name
    index_path = os.path.join(args.report_dir, "index.json")

    def finish(passed: int, failed: int, skipped: int) -> int:
        label = name or "autobahn"
        line = f"{label}: {passed} passed, {failed} failed"
        if skipped:
            line += f", {skipped} skipped"
        print(line)
        return 0 if failed == 0 and passed > 0 else 1

    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"check_report: cannot read {index_path}: {exc}")
        print("check_report: FAIL: no cases ran (kosoku wrote no report)")
        expected = None if args.no_expected_set else expected_ids(args.include, args.exclude)
        return finish(0, len(expected) if expected else 1, 0)

    if not isinstance(index, dict) or not index:
        print(f"check_report: {index_path} holds no agent")
        return finish(0, 1, 0)
    if args.agent:
        if args.agent not in index:
            print(f"check_report: agent {args.agent!r} not in index.json "
                  f"(have: {', '.join(sorted(index))})")
            return finish(0, 1, 0)
        agent = args.agent
    elif len(index) == 1:
        agent = next(iter(index))
    else:
        print(f"check_report: index.json holds several agents ({', '.join(sorted(index))}); "
              "pass --agent")
        return 2
    cases: dict = index[agent]

    outcomes: dict[str, tuple[str, str]] = {}
    is_server_seen = None
    for cid, entry in cases.items():
        outcome, reason, is_server = classify(cid, entry, args.report_dir)
        outcomes[cid] = (outcome, reason)
        if is_server is not None:
            is_server_seen = is_server

    if name is None:
        name = {True: "autobahn-client", False: "autobahn-server"}.get(is_server_seen, "autobahn")

    expected = None if args.no_expected_set else expected_ids(args.include, args.exclude)
    if expected is not None:
        for cid in expected:
            if cid not in outcomes:
                outcomes[cid] = ("MISSING", "case expected but absent from index.json")
        extra = sorted(set(outcomes) - set(expected), key=case_key)
        if extra:
            print(f"check_report: note: {len(extra)} case(s) not in the expected selection "
                  f"were also reported: {' '.join(extra[:20])}{' ...' if len(extra) > 20 else ''}")

    counts = Counter(o for o, _ in outcomes.values())
    passing = {"OK", "NON-STRICT", "INFORMATIONAL"}
    passed = sum(n for o, n in counts.items() if o in passing)
    faults = counts.get("RUNNER FAULT", 0)
    failed = sum(n for o, n in counts.items() if o not in passing and o != "RUNNER FAULT")

    # Summary table.
    print(f"Autobahn report {args.report_dir} (agent {agent!r}): {len(outcomes)} cases")
    order = list(OUTCOME_ORDER) + sorted(set(counts) - set(OUTCOME_ORDER))
    width = max(len(o) for o in order)
    for o in order:
        if counts.get(o):
            kind = "pass" if o in passing else ("not counted" if o == "RUNNER FAULT" else "FAIL")
            print(f"  {o:<{width}}  {counts[o]:>4}  {kind}")
    by_close = Counter(e.get("behaviorClose") for e in cases.values())
    print("  behaviorClose: " + ", ".join(f"{k}={v}" for k, v in sorted(by_close.items(), key=str)))

    if faults:
        ids = sorted((c for c, (o, _) in outcomes.items() if o == "RUNNER FAULT"), key=case_key)
        print(f"Runner faults ({faults}; kosoku's own case code raised {RUNNER_FAULT_TEXT!r} "
              f"and kept no handshake or wire data; not counted): {' '.join(ids)}")

    missing = sorted((c for c, (o, _) in outcomes.items() if o == "MISSING"), key=case_key)
    if missing:
        shown = " ".join(missing[:60]) + (f" ... (+{len(missing) - 60})" if len(missing) > 60 else "")
        print(f"Missing cases ({len(missing)}; selected but never reported, e.g. the peer "
              f"stopped early): {shown}")
    if failed - len(missing):
        bad = sorted((c for c, (o, _) in outcomes.items()
                      if o not in passing and o not in ("RUNNER FAULT", "MISSING")), key=case_key)
        print(f"Failing cases ({len(bad)}):")
        for cid in bad[: args.max_list]:
            o, reason = outcomes[cid]
            print(f"  {cid:<10} {o}: {reason}")
        if len(bad) > args.max_list:
            print(f"  ... and {len(bad) - args.max_list} more")
    if failed and os.path.exists(os.path.join(args.report_dir, "index.html")):
        print(f"Details: {os.path.join(args.report_dir, 'index.html')}")
    if passed + failed == 0:
        print("check_report: FAIL: zero cases ran")

    return finish(passed, failed, faults)


if __name__ == "__main__":
    sys.exit(main())
