"""benches/compare_report.py: verdicts computed from the parts' results, the
section spliced into BENCHMARKS.md once and replaced in place after."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import compare_report as cr  # noqa: E402

DOC = """# Benchmarks

Intro.

## How to reproduce

```sh
benches/compare.sh
```

## An older run

Kept as it is.
"""


def load_cell(row, server, rate, cpu):
    return {"row": row, "server": server, "msgs_per_sec": rate, "server_cpu_us_per_msg": cpu}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))


def make_run(tmp, parts=("echo", "sio_echo", "sio_idle", "fanout")):
    out = str(tmp / "run")
    if "echo" in parts:
        write(os.path.join(out, "echo", "results.json"), {
            "meta": {"machine": {"cpu_model": "Test CPU", "nproc": 2, "kernel": "6.1", "arch": "x86_64",
                                 "mem_total_kb": 25165824}, "versions": {"git_rev": "abc1234"}},
            "summary": {
                "load": [
                    # faster and leaner than every peer: met
                    load_cell("100x20", "switchboard", 260_000, 3.6),
                    load_cell("100x20", "uws", 250_000, 3.7),
                    load_cell("100x20", "node-ws", 140_000, 7.0),
                    # faster but uses more CPU than uws: not met
                    load_cell("10x1024", "switchboard", 230_000, 4.2),
                    load_cell("10x1024", "uws", 225_000, 4.0),
                ],
                "idle": [{"server": "switchboard", "bytes_per_conn": 224},
                         {"server": "uws", "bytes_per_conn": 256}],
            },
        })
        write(os.path.join(out, "echo", "results.md"), "## WebSocket echo: switchboard and peers\n\n| table |\n")
    if "sio_echo" in parts:
        runs = []
        for rnd, (sb, node, sx) in enumerate([(250_000, 50_000, 160_000), (240_000, 48_000, 170_000),
                                             (260_000, 52_000, 150_000)]):
            for server, rate in (("switchboard", sb), ("node", node), ("socketioxide", sx)):
                runs.append({"round": rnd, "row": "100x20x1", "server": server, "cpu_ticks": 100,
                             "client_cpu_s": 1.0, "result": {"msgs_per_sec": rate}})
        runs.append({"round": 0, "row": "100x20x1", "server": "node", "error": True})
        write(os.path.join(out, "sio-echo", "bench", "sio_echo.jsonl"), "\n".join(json.dumps(r) for r in runs) + "\n")
        write(os.path.join(out, "sio-echo", "bench", "sio_echo.md"), "| sio table |\n")
    if "sio_idle" in parts:
        write(os.path.join(out, "sio-idle", "sio_idle.json"), {
            "count": 10000, "rounds": 2, "settle_s": 5,
            "servers": {"switchboard": {"bytes_per_conn": [2000, 2100], "errors": [], "median_bytes_per_conn": 2050},
                        "switchboard-echo": {"bytes_per_conn": [350, 354], "errors": [], "median_bytes_per_conn": 352},
                        "node": {"bytes_per_conn": [14000, 15000], "errors": [], "median_bytes_per_conn": 14500}}})
    if "fanout" in parts:
        write(os.path.join(out, "fanout", "results.json"), {
            "p99_bound_ms": 50.0,
            "cells": [
                {"server": "switchboard-native", "rate": 10.0, "deliveries_per_sec": 100_000.0, "p99_us": 74_000, "lost": 0},
                {"server": "node", "rate": 10.0, "deliveries_per_sec": 79_000.0, "p99_us": 3_900_000, "lost": 0},
                {"server": "socketioxide", "rate": 10.0, "deliveries_per_sec": 100_000.0, "p99_us": 40_000, "lost": 0},
                {"server": "floor", "rate": 10.0, "deliveries_per_sec": 100_100.0, "p99_us": 71_500, "lost": 0},
            ],
            "capacity": {"switchboard-native": None, "node": None,
                         "socketioxide": {"rate": 10.0, "deliveries_per_sec": 100_000.0, "p99_us": 40_000}}})
        write(os.path.join(out, "fanout", "results.md"), "## Fan-out tables\n")
    return out


def verdicts(sec):
    return {line.split(" | ")[0].lstrip("| "): line.rsplit(" | ", 1)[-1].rstrip(" |")
            for line in sec.splitlines() if line.startswith("| ") and ("met**" in line or "n/a |" in line)}


def test_verdicts_are_computed_from_the_results(tmp_path):
    out = make_run(tmp_path)
    assert cr.main([out, "--chart-bin", str(tmp_path / "no-such-binary"), "--date", "2026-12-06"]) == 0
    sec = open(os.path.join(out, "section.md")).read()
    v = verdicts(sec)
    assert v["raw echo, 100 conns × 20 B"] == "**met**"
    assert v["raw echo, 10 conns × 1 KiB"] == "**not met**"  # 4.2 µs against uws's 4.0
    assert "1.050× uws" in sec
    assert v["idle raw WebSocket ≤ 512 B, below uWebSockets"] == "**met**"
    # Medians: 250k / 50k = 5.00× Node, 250k / 160k = 1.56× socketioxide; the failed run is left out.
    assert "5.000× Node, 1.562× socketioxide" in sec
    assert v["Socket.IO echo, 100 clients × 20 B × 1 in flight"] == "**met**"
    assert v["idle Socket.IO ≤ 1024 B (`serve`, the relay)"] == "**not met**"
    assert v["idle Socket.IO ≤ 1024 B (`echo --socketio`)"] == "**met**"
    fan = [k for k in v if k.startswith("fan-out switchboard-native at 10 msg/s")]
    assert fan and v[fan[0]] == "**not met**" and "p99 74.0 ms" in sec
    # The peers' cells are no targets of ours, even one under the bound.
    assert not [k for k in v if "socketioxide" in k and k.startswith("fan-out")]
    # The floor is shown for context, with no verdict.
    floor = [k for k in v if k.startswith("fan-out floor at 10 msg/s")]
    assert floor and v[floor[0]] == "n/a" and "p99 71.5 ms" in sec
    assert "1 run(s) failed" in sec
    assert "Test CPU" in sec and "`abc1234`" in sec
    # A part's own headings go below the section's.
    assert "#### WebSocket echo: switchboard and peers" in sec
    assert "Parts missing" not in sec


def test_a_missing_part_is_named(tmp_path):
    out = make_run(tmp_path, parts=("echo",))
    assert cr.main([out, "--chart-bin", str(tmp_path / "none")]) == 0
    sec = open(os.path.join(out, "section.md")).read()
    assert "Parts missing from this run (not run, or failed): sio-echo, sio-idle, fanout." in sec
    assert "Socket.IO echo," not in sec


def test_no_results_is_an_error(tmp_path):
    assert cr.main([str(tmp_path), "--chart-bin", str(tmp_path / "none")]) == 1


def test_the_section_is_inserted_once_and_replaced_in_place(tmp_path):
    out = make_run(tmp_path)
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(DOC)
    args = [out, "--doc", str(doc), "--chart-bin", str(tmp_path / "none"), "--date", "day one"]
    assert cr.main(args) == 0
    first = doc.read_text()
    # After "How to reproduce", before the older runs, which are kept.
    assert first.index("## How to reproduce") < first.index(cr.BEGIN) < first.index(cr.END) < first.index("## An older run")
    assert first.endswith("## An older run\n\nKept as it is.\n")
    assert "day one" in first
    args[-1] = "day two"
    assert cr.main(args) == 0
    second = doc.read_text()
    assert second.count(cr.BEGIN) == 1 and second.count(cr.TITLE) == 1
    assert "day two" in second and "day one" not in second
    assert second.replace("day two", "day one") == first


def test_splice_without_a_reproduce_section_appends():
    doc = "# Benchmarks\n\nNothing else.\n"
    sec = cr.BEGIN + "\nbody\n" + cr.END + "\n"
    assert cr.splice(doc, sec) == doc + "\n" + sec
