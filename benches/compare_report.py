#!/usr/bin/env python3
"""The report of benches/compare.sh (stdlib only).

Reads what the parts of one run wrote into OUT_DIR:
  echo/results.json, echo/results.md          benches/echo.sh
  sio-echo/bench/sio_echo.jsonl, sio_echo.md  benches/sio_echo.sh
  sio-idle/sio_idle.json                      benches/sio_idle.sh
  fanout/results.json, fanout/results.md      benches/fanout.sh
and writes OUT_DIR/section.md: every issue-8 target set against this run's
figures (met or not, computed here, never typed in), then each part's own
tables, versions and machine. With --doc it replaces the section between
the markers in docs/BENCHMARKS.md (inserting it after "How to reproduce"
the first time); with --img it writes the charts there (else into OUT_DIR).
A part that is missing is said to be missing.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from echo_report import machine_info, row_label  # noqa: E402

BEGIN = "<!-- compare:begin (written by benches/compare.sh: edits here are overwritten) -->"
END = "<!-- compare:end -->"
TITLE = "## Latest side-by-side run (benches/compare.sh)"

# Issue 8's bounds.
SIO_VS_NODE = 5.0
SIO_VS_SOCKETIOXIDE = 1.5
FANOUT_DELIVERIES = 100_000
FANOUT_P99_MS = 50.0
FANOUT_VS_NODE = 5.0
IDLE_RAW_B = 512
IDLE_SIO_B = 1024


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def load_parts(out):
    """Each part's results, or None when the part did not run or failed."""
    parts = {"echo": None, "sio_echo": None, "sio_idle": None, "fanout": None}
    echo = read_json(os.path.join(out, "echo", "results.json"))
    if echo and echo.get("summary"):
        parts["echo"] = {"json": echo, "md": read_text(os.path.join(out, "echo", "results.md")) or ""}
    bench = os.path.join(out, "sio-echo", "bench")
    runs = read_text(os.path.join(bench, "sio_echo.jsonl"))
    if runs:
        rows = [json.loads(line) for line in runs.splitlines() if line.strip()]
        ok = [r for r in rows if not r.get("error")]
        if ok:
            parts["sio_echo"] = {"runs": ok, "errors": len(rows) - len(ok),
                                 "md": read_text(os.path.join(bench, "sio_echo.md")) or "",
                                 "svg": os.path.join(bench, "sio_echo.svg")}
    idle = read_json(os.path.join(out, "sio-idle", "sio_idle.json"))
    if idle and idle.get("servers"):
        parts["sio_idle"] = idle
    fanout = read_json(os.path.join(out, "fanout", "results.json"))
    if fanout and fanout.get("cells"):
        parts["fanout"] = {"json": fanout, "md": read_text(os.path.join(out, "fanout", "results.md")) or ""}
    return parts


def verdict(ok):
    return "**met**" if ok else "**not met**"


def echo_targets(echo):
    """Raw echo: msgs/s at least the best peer's on every row, with no more
    server CPU per message than the lowest peer's."""
    load = echo["json"]["summary"].get("load", [])
    rows = list(dict.fromkeys(c["row"] for c in load))
    out = []
    for row in rows:
        cells = {c["server"]: c for c in load if c["row"] == row and c.get("msgs_per_sec")}
        sb = cells.pop("switchboard", None)
        if not sb or not cells:
            out.append((f"raw echo, {row_label(row)}", "switchboard or every peer missing", None))
            continue
        best = max(cells.values(), key=lambda c: c["msgs_per_sec"])
        lean = min((c for c in cells.values() if c.get("server_cpu_us_per_msg")),
                   key=lambda c: c["server_cpu_us_per_msg"], default=None)
        speed = sb["msgs_per_sec"] / best["msgs_per_sec"]
        text = f"{sb['msgs_per_sec']:,.0f} msgs/s = {speed:.3f}× {best['server']} (the fastest peer)"
        ok = speed >= 1.0
        if lean and sb.get("server_cpu_us_per_msg"):
            cpu = sb["server_cpu_us_per_msg"] / lean["server_cpu_us_per_msg"]
            text += f"; CPU {sb['server_cpu_us_per_msg']:.3f} µs/msg = {cpu:.3f}× {lean['server']} (the leanest peer)"
            ok = ok and cpu <= 1.0
        out.append((f"raw echo, {row_label(row)}", text, ok))
    idle = {c["server"]: c for c in echo["json"]["summary"].get("idle", []) if c.get("bytes_per_conn")}
    if "switchboard" in idle:
        sb = idle["switchboard"]["bytes_per_conn"]
        text = f"{sb:,.0f} B per connection"
        ok = sb <= IDLE_RAW_B
        if "uws" in idle:
            text += f"; uWebSockets {idle['uws']['bytes_per_conn']:,.0f} B"
            ok = ok and sb < idle["uws"]["bytes_per_conn"]
        out.append((f"idle raw WebSocket ≤ {IDLE_RAW_B} B, below uWebSockets", text, ok))
    return out


def sio_medians(runs):
    """{row: {server: median round trips/s}} from sio_echo.jsonl records."""
    cells = {}
    for r in runs:
        cells.setdefault(r["row"], {}).setdefault(r["server"], []).append(r["result"]["msgs_per_sec"])
    return {row: {s: statistics.median(v) for s, v in by.items()} for row, by in cells.items()}


def sio_targets(sio):
    out = []
    for row, med in sio_medians(sio["runs"]).items():
        c, b, k = (row.split("x") + ["1"])[:3]
        label = f"Socket.IO echo, {c} clients × {b} B × {k} in flight"
        sb, node, sx = med.get("switchboard"), med.get("node"), med.get("socketioxide")
        if not sb or not node or not sx:
            out.append((label, "switchboard, Node or socketioxide missing", None))
            continue
        text = f"{sb:,.0f} round trips/s = {sb / node:.3f}× Node, {sb / sx:.3f}× socketioxide"
        out.append((label, text, sb / node >= SIO_VS_NODE and sb / sx >= SIO_VS_SOCKETIOXIDE))
    return out


def sio_idle_targets(idle):
    out = []
    for name in ("switchboard", "switchboard-echo"):
        s = idle["servers"].get(name)
        if not s or s.get("median_bytes_per_conn") is None:
            continue
        b = s["median_bytes_per_conn"]
        what = "`serve`, the relay" if name == "switchboard" else "`echo --socketio`"
        out.append((f"idle Socket.IO ≤ {IDLE_SIO_B} B ({what})", f"{b:,.0f} B per connection", b <= IDLE_SIO_B))
    return out


def fanout_targets(fanout):
    cells = fanout["json"]["cells"]
    bound = fanout["json"].get("p99_bound_ms", FANOUT_P99_MS)
    out = []
    for c in cells:
        if not c["server"].startswith("switchboard") or c.get("p99_us") is None:
            continue
        p99 = c["p99_us"] / 1000
        ok = (c["deliveries_per_sec"] >= FANOUT_DELIVERIES and p99 < FANOUT_P99_MS and not c["lost"])
        out.append((f"fan-out {c['server']} at {c['rate']:g} msg/s: ≥ {FANOUT_DELIVERIES:,} deliveries/s, p99 < {FANOUT_P99_MS:g} ms",
                    f"{c['deliveries_per_sec']:,.0f} deliveries/s, p99 {p99:.1f} ms, lost {c['lost']}", ok))
    for c in cells:
        if c["server"] == "floor" and c.get("p99_us") is not None:
            out.append((f"fan-out floor at {c['rate']:g} msg/s (a plain write loop read by a plain epoll loop, "
                        "no server, no generator): context, not a target",
                        f"p99 {c['p99_us'] / 1000:.1f} ms, {c['deliveries_per_sec']:,.0f} deliveries/s: "
                        "a server within noise of it is at this machine's limit", None))
    cap = fanout["json"].get("capacity", {})
    node = cap.get("node")
    for name, ours in cap.items():
        if not name.startswith("switchboard"):
            continue
        label = f"fan-out {name}: ≥ {FANOUT_VS_NODE:g}× Node's deliveries/s at p99 < {bound:g} ms"
        if not ours:
            out.append((label, f"no rate of this run stays under p99 {bound:g} ms", False))
        elif not node:
            out.append((label, f"{ours['deliveries_per_sec']:,.0f}/s under the bound; Node has no rate under it", None))
        else:
            r = ours["deliveries_per_sec"] / node["deliveries_per_sec"]
            out.append((label, f"{r:.2f}× ({ours['deliveries_per_sec']:,.0f} against {node['deliveries_per_sec']:,.0f})", r >= FANOUT_VS_NODE))
    return out


def targets(parts):
    rows = []
    for key, fn in (("echo", echo_targets), ("sio_echo", sio_targets),
                    ("sio_idle", sio_idle_targets), ("fanout", fanout_targets)):
        if parts[key] is not None:
            rows.extend(fn(parts[key]))
    return rows


def demote(md, levels=2):
    """A part's markdown inside the section: its headings one level lower."""
    out = []
    for line in md.strip().splitlines():
        if line.startswith("#"):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out)


def machine_line(m):
    cpu = m.get("cpu_model") or "unknown CPU"
    mem = f", {m['mem_total_kb'] / 1048576:.0f} GiB" if m.get("mem_total_kb") else ""
    vm = ", virtual machine" if m.get("hypervisor") else ""
    return f"{cpu}{vm}, {m.get('nproc')} cores{mem}, Linux {m.get('kernel')} ({m.get('arch')})"


def git_rev(root):
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if rev and dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def section(parts, charts, when, rev, machine):
    lines = [BEGIN, TITLE, "",
             f"One run of `benches/compare.sh` on {when}, switchboard at `{rev or 'unknown'}`; "
             f"{machine_line(machine)}. Every server pinned to core 0 and every load generator to "
             "core 1; servers alternate in rotated order each round; cells are medians over rounds. "
             "Each part keeps its own method (`benches/README.md`). The sections after this one are "
             "the record of earlier runs.", ""]
    missing = [k.replace("_", "-") for k, v in parts.items() if v is None]
    if missing:
        lines += [f"Parts missing from this run (not run, or failed): {', '.join(missing)}.", ""]
    lines += ["### Issue 8's targets against this run", "",
              "| target | this run | |", "|---|---|---|"]
    for label, text, ok in targets(parts):
        lines.append(f"| {label} | {text} | {'n/a' if ok is None else verdict(ok)} |")
    lines += ["", "Scale (200,000 connections) is not part of this run: see "
              "\"200,000 connections on one machine\" below.", ""]
    if parts["echo"]:
        lines += ["### WebSocket echo", ""]
        if "echo" in charts:
            lines += [f"![WebSocket echo, msgs/s relative to switchboard]({charts['echo']})", ""]
        lines += [demote(parts["echo"]["md"]), ""]
    if parts["sio_echo"]:
        lines += ["### Socket.IO echo", ""]
        if "sio_echo" in charts:
            lines += [f"![Socket.IO round trips per second]({charts['sio_echo']})", ""]
        lines += [parts["sio_echo"]["md"].strip(), ""]
        if parts["sio_echo"]["errors"]:
            lines += [f"{parts['sio_echo']['errors']} run(s) failed and are left out.", ""]
    if parts["sio_idle"]:
        idle = parts["sio_idle"]
        lines += ["### Idle Socket.IO connections", "",
                  f"{idle['count']:,} connections over the WebSocket transport, {idle['rounds']} round(s), "
                  f"{idle['settle_s']} s settle; growth of the server's VmRSS per connection.", ""]
        if "sio_idle" in charts:
            lines += [f"![Idle Socket.IO, bytes per connection]({charts['sio_idle']})", ""]
        lines += ["| server | bytes/conn (median) | rounds | errors |", "|---|---:|---|---|"]
        for name, s in idle["servers"].items():
            m = s.get("median_bytes_per_conn")
            lines.append(f"| {name} | {'n/a' if m is None else f'{m:,.0f}'} | "
                         f"{' · '.join(f'{b:,}' for b in s['bytes_per_conn'])} | {len(s['errors'])} |")
        lines.append("")
    if parts["fanout"]:
        lines += ["### Room fan-out", ""]
        if "fanout" in charts:
            lines += [f"![Room fan-out, p99 latency]({charts['fanout']})", ""]
        lines += [demote(parts["fanout"]["md"]), ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(doc, sec):
    """The document with its generated section replaced by `sec` (inserted
    before the first section after "How to reproduce" the first time)."""
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + sec.rstrip("\n") + tail
    lines = doc.splitlines(keepends=True)
    at = None
    seen = False
    for i, line in enumerate(lines):
        if line.startswith("## How to reproduce"):
            seen = True
        elif seen and line.startswith("## "):
            at = i
            break
    if at is None:
        return doc.rstrip("\n") + "\n\n" + sec
    return "".join(lines[:at]) + sec + "\n" + "".join(lines[at:])


def chart_inputs(parts):
    """{name: (jsonl lines, title, y label)} for `switchboard bench chart`."""
    inputs = {}
    if parts["echo"]:
        load = parts["echo"]["json"]["summary"].get("load", [])
        base = {c["row"]: c["msgs_per_sec"] for c in load if c["server"] == "switchboard" and c.get("msgs_per_sec")}
        lines = [{"group": c["row"], "series": c["server"], "value": c["msgs_per_sec"] / base[c["row"]]}
                 for c in load if c["row"] in base and c.get("msgs_per_sec")]
        if lines:
            inputs["echo"] = (lines, "WebSocket echo msgs/s relative to switchboard (conns x bytes x in flight)",
                              "x switchboard")
    if parts["sio_idle"]:
        lines = [{"group": "idle Socket.IO", "series": n, "value": s["median_bytes_per_conn"]}
                 for n, s in parts["sio_idle"]["servers"].items() if s.get("median_bytes_per_conn")]
        if lines:
            inputs["sio_idle"] = (lines, "Idle Socket.IO connection: server RSS per connection", "bytes")
    if parts["fanout"]:
        lines = [{"group": f"{c['rate']:g} msg/s", "series": c["server"], "value": c["p99_us"] / 1000}
                 for c in parts["fanout"]["json"]["cells"] if c.get("p99_us") is not None]
        if lines:
            inputs["fanout"] = (lines, "Room fan-out: p99 latency (lower is better)", "ms")
    return inputs


def write_charts(parts, out, img, chart_bin):
    """Draws the charts into `img`; returns {name: path relative to the doc}."""
    os.makedirs(img, exist_ok=True)
    made = {}
    for name, (lines, title, ylabel) in chart_inputs(parts).items():
        src = os.path.join(out, f"chart_{name}.jsonl")
        with open(src, "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in lines)
        svg = os.path.join(img, f"compare_{name}.svg")
        r = subprocess.run([chart_bin, "bench", "chart", src, "-o", svg, "--title", title, "--y-label", ylabel],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            made[name] = f"img/compare_{name}.svg"
        else:
            print(f"compare_report: chart {name} failed: {r.stderr.strip()}", file=sys.stderr)
    if parts["sio_echo"] and os.path.exists(parts["sio_echo"]["svg"]):
        shutil.copyfile(parts["sio_echo"]["svg"], os.path.join(img, "compare_sio_echo.svg"))
        made["sio_echo"] = "img/compare_sio_echo.svg"
    return made


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--doc", help="docs/BENCHMARKS.md to rewrite the section of")
    p.add_argument("--img", help="directory for the charts (default: OUT_DIR/img)")
    p.add_argument("--chart-bin", default="switchboard", help="the switchboard binary, for `bench chart`")
    p.add_argument("--date", help="the run's date (default: now, UTC)")
    a = p.parse_args(argv)
    parts = load_parts(a.out_dir)
    if all(v is None for v in parts.values()):
        print(f"compare_report: no results in {a.out_dir}", file=sys.stderr)
        return 1
    img = a.img or os.path.join(a.out_dir, "img")
    charts = write_charts(parts, a.out_dir, img, a.chart_bin) if shutil.which(a.chart_bin) or os.path.exists(a.chart_bin) else {}
    when = a.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    echo_meta = (parts["echo"] or {}).get("json", {}).get("meta", {})
    machine = echo_meta.get("machine") or machine_info()
    rev = echo_meta.get("versions", {}).get("git_rev") or git_rev(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sec = section(parts, charts, when, rev, machine)
    with open(os.path.join(a.out_dir, "section.md"), "w") as f:
        f.write(sec)
    if a.doc:
        with open(a.doc) as f:
            doc = f.read()
        with open(a.doc, "w") as f:
            f.write(splice(doc, sec))
        print(f"compare_report: rewrote the section in {a.doc}", file=sys.stderr)
    for label, text, ok in targets(parts):
        print(f"{'n/a' if ok is None else ('met' if ok else 'NOT MET'):>8}  {label}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
