#!/usr/bin/env python3
"""Record and summarize runs of benches/echo.sh (stdlib only).

Subcommands (called by echo.sh; each record is one JSON line on stdout):
  record-load   one load run: generator output + server CPU ticks -> record
  record-idle   one idle-memory run: RSS before/after + opener status -> record
  brief         read one record on stdin, print a one-line human summary
  summarize     runs.jsonl -> results.json + results.md (medians, ratios, versions)
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

REQUIRED_GEN_KEYS = ("messages", "msgs_per_sec", "p50_us", "p99_us", "max_us")
SERVER_LABELS = {
    "switchboard": "switchboard",
    "tungstenite": "tokio-tungstenite",
    "fastwebsockets": "fastwebsockets",
    "node-ws": "Node.js ws",
    "uws": "uWebSockets",
}


def num(s, kind=float):
    if s is None or str(s).strip() == "":
        return None
    try:
        return kind(s)
    except ValueError:
        return None


def parse_gen_output(text):
    """The last line of the generator's stdout that parses as a JSON object.

    Tolerant: a whole-stdout JSON object (pretty-printed) also works."""
    text = (text or "").strip()
    if not text:
        return None, "load generator printed nothing on stdout"
    candidates = [text] + [ln.strip() for ln in reversed(text.splitlines()) if ln.strip().startswith("{")]
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            missing = [k for k in REQUIRED_GEN_KEYS if k not in obj]
            return obj, (f"generator JSON lacks {', '.join(missing)}" if missing else "")
    return None, "no JSON object in load generator output: " + text[:200]


def cmd_record_load(a):
    rec = {
        "kind": "load", "round": a.round, "row": a.row, "server": a.server,
        "connections": a.conns, "size": a.size, "duration_s": a.duration,
    }
    errors = [a.error] if a.error else []
    gen, gerr = (None, "")
    if a.gen_output is not None:
        gen, gerr = parse_gen_output(a.gen_output)
        if gerr:
            errors.append(gerr)
    rec["generator"] = gen
    tb, ta, tck = num(a.ticks_before, int), num(a.ticks_after, int), num(a.clk_tck, int)
    wb, wa = num(a.wall_before), num(a.wall_after)
    rec["server_cpu_ticks"] = (ta - tb) if tb is not None and ta is not None else None
    rec["clk_tck"] = tck
    rec["wall_s"] = round(wa - wb, 3) if wb is not None and wa is not None else None
    rec["server_rss_kb_end"] = num(a.rss_kb, int)
    cpu_us = None
    if rec["server_cpu_ticks"] is not None and tck:
        cpu_us = rec["server_cpu_ticks"] * 1e6 / tck
    rec["server_cpu_us"] = cpu_us
    msgs = gen.get("messages") if isinstance(gen, dict) else None
    rate = gen.get("msgs_per_sec") if isinstance(gen, dict) else None
    rec["messages"] = msgs
    rec["msgs_per_sec"] = rate
    for k in ("p50_us", "p99_us", "max_us"):
        rec[k] = gen.get(k) if isinstance(gen, dict) else None
    rec["server_cpu_us_per_msg"] = (cpu_us / msgs) if cpu_us is not None and msgs else None
    rec["server_cpu_pct"] = (100.0 * cpu_us / 1e6 / rec["wall_s"]) if cpu_us is not None and rec["wall_s"] else None
    if isinstance(msgs, (int, float)) and msgs <= 0 and not errors:
        errors.append("no messages echoed")
    rec["ok"] = not errors and rec["server_cpu_us_per_msg"] is not None and rate is not None
    rec["error"] = "; ".join(errors) if errors else None
    print(json.dumps(rec, sort_keys=True))


def kv_line(line, prefix):
    if not line or not line.startswith(prefix):
        return {}
    return {k: v for k, v in re.findall(r"(\w+)=(\S+)", line)}


def cmd_record_idle(a):
    rec = {"kind": "idle", "round": a.round, "server": a.server, "target_connections": a.target}
    errors = [a.error] if a.error else []
    ready, final = kv_line(a.ready, "READY"), kv_line(a.final, "FINAL")
    opened = num(ready.get("opened"), int)
    alive = num(final.get("alive"), int)
    rec["opened"] = opened
    rec["failed"] = num(ready.get("failed"), int)
    rec["open_elapsed_s"] = num(ready.get("elapsed_s"))
    rec["alive_at_end"] = alive
    b, af = num(a.rss_before_kb, int), num(a.rss_after_kb, int)
    rec["rss_before_kb"], rec["rss_after_kb"], rec["hwm_kb"] = b, af, num(a.hwm_kb, int)
    held = opened
    if alive is not None and opened is not None and alive < opened:
        errors.append(f"only {alive} of {opened} connections still open at the end")
        held = alive
    rec["held"] = held
    rec["bytes_per_conn"] = ((af - b) * 1024 / held) if b is not None and af is not None and held else None
    if opened is not None and a.target and opened < a.target:
        errors.append(f"opened {opened} of {a.target}")
    rec["ok"] = not errors and rec["bytes_per_conn"] is not None
    rec["error"] = "; ".join(errors) if errors else None
    print(json.dumps(rec, sort_keys=True))


def cmd_brief(_a):
    for line in sys.stdin:
        r = json.loads(line)
        if r["kind"] == "load":
            if r.get("msgs_per_sec") is not None:
                s = (f"  {r['server']:<15} {r['row']:>8}  {r['msgs_per_sec']:>11,.0f} msg/s  "
                     f"cpu {fmt(r.get('server_cpu_us_per_msg'), 3)} us/msg ({fmt(r.get('server_cpu_pct'), 0)}%)  "
                     f"p50 {r.get('p50_us')} p99 {r.get('p99_us')} us")
            else:
                s = f"  {r['server']:<15} {r['row']:>8}  -"
        else:
            s = (f"  {r['server']:<15}     idle  {r.get('opened')} opened, "
                 f"{fmt(r.get('bytes_per_conn'), 0)} B/conn (RSS {r.get('rss_before_kb')} -> {r.get('rss_after_kb')} kB)")
        if r.get("error"):
            s += f"  [{r['error']}]"
        print(s)


def fmt(v, digits=2, thousands=False):
    if v is None:
        return "n/a"
    if thousands:
        return f"{v:,.{digits}f}"
    return f"{v:.{digits}f}"


def short(v):
    """12,345 -> 12.3k; 1,234,567 -> 1.23M."""
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(v, base):
    if v is None or base in (None, 0):
        return None
    return v / base


def row_label(row):
    c, s, *k = (int(x) for x in row.split("x"))
    size = f"{s // 1024} KiB" if s >= 1024 and s % 1024 == 0 else f"{s} B"
    label = f"{c} conn{'s' if c != 1 else ''} × {size}"
    return label + (f" × {k[0]} in flight" if k and k[0] != 1 else "")


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def lock_versions(path):
    out = {}
    try:
        import tomllib
        with open(path, "rb") as f:
            lock = tomllib.load(f)
        for p in lock.get("package", []):
            out.setdefault(p["name"], p["version"])
    except Exception:  # noqa: BLE001 - best effort
        pass
    return out


def node_versions(node_dir):
    v = {"node": run(["node", "--version"]).lstrip("v") or None}
    ws = None
    for cand in ("node_modules/ws/package.json",):
        try:
            with open(os.path.join(node_dir, cand)) as f:
                ws = json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            pass
    if ws is None:
        try:
            with open(os.path.join(node_dir, "package-lock.json")) as f:
                ws = json.load(f)["packages"]["node_modules/ws"]["version"]
        except (OSError, ValueError, KeyError):
            pass
    v["ws"] = ws
    return v


def machine_info():
    info = {"nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "cpus_online": os.cpu_count(), "cpu_model": None, "kernel": platform.release(),
            "arch": platform.machine(), "mem_total_kb": None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k in ("model name", "Model", "cpu model", "uarch") and v and not info["cpu_model"]:
                    info["cpu_model"] = v
                elif k == "cpu family" and "cpu_family" not in info:
                    info["cpu_family"] = v
                elif k == "model" and "cpu_model_number" not in info:
                    info["cpu_model_number"] = v
                elif k == "cpu MHz" and "cpu_mhz" not in info:
                    info["cpu_mhz"] = v
                elif k == "flags" and "hypervisor" not in info:
                    info["hypervisor"] = "hypervisor" in v.split()
                elif not line.strip() and info["cpu_model"]:
                    break  # first processor block is enough
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_kb"] = int(line.split()[1])
    except OSError:
        pass
    return info


def cmd_summarize(a):
    runs = []
    with open(a.runs) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    servers = [s for s in a.servers.split(",") if s]
    rows = [r for r in a.rows.split(",") if r]

    load = []
    for row in rows:
        base = {}
        cells = []
        for srv in servers:
            rs = [r for r in runs if r["kind"] == "load" and r["row"] == row and r["server"] == srv]
            ok = [r for r in rs if r.get("ok")]
            cell = {
                "row": row, "server": srv, "runs": len(rs), "ok_runs": len(ok),
                "msgs_per_sec": med([r["msgs_per_sec"] for r in ok]),
                "server_cpu_us_per_msg": med([r["server_cpu_us_per_msg"] for r in ok]),
                "server_cpu_pct": med([r["server_cpu_pct"] for r in ok]),
                "p50_us": med([r["p50_us"] for r in ok]),
                "p99_us": med([r["p99_us"] for r in ok]),
                "max_us": med([r["max_us"] for r in ok]),
                "errors": sorted({r["error"] for r in rs if r.get("error")}),
            }
            if ok:
                vals = [r["msgs_per_sec"] for r in ok]
                cell["msgs_per_sec_min"], cell["msgs_per_sec_max"] = min(vals), max(vals)
            if srv == "switchboard":
                base = cell
            cells.append(cell)
        for c in cells:
            c["msgs_per_sec_vs_switchboard"] = ratio(c["msgs_per_sec"], base.get("msgs_per_sec"))
            c["cpu_per_msg_vs_switchboard"] = ratio(c["server_cpu_us_per_msg"], base.get("server_cpu_us_per_msg"))
        load.extend(cells)

    idle = []
    base = {}
    for srv in servers:
        rs = [r for r in runs if r["kind"] == "idle" and r["server"] == srv]
        if not rs:
            continue
        ok = [r for r in rs if r.get("ok")]
        cell = {
            "server": srv, "runs": len(rs), "ok_runs": len(ok),
            "connections": med([r["held"] for r in ok]),
            "rss_before_kb": med([r["rss_before_kb"] for r in ok]),
            "rss_after_kb": med([r["rss_after_kb"] for r in ok]),
            "bytes_per_conn": med([r["bytes_per_conn"] for r in ok]),
            "errors": sorted({r["error"] for r in rs if r.get("error")}),
        }
        if srv == "switchboard":
            base = cell
        idle.append(cell)
    for c in idle:
        c["bytes_per_conn_vs_switchboard"] = ratio(c["bytes_per_conn"], base.get("bytes_per_conn"))

    crates = lock_versions(a.peers_lock)
    sbv = (a.switchboard_version or "").strip()
    if sbv.lower().startswith("switchboard "):
        sbv = sbv.split(None, 1)[1]
    versions = {
        "switchboard": sbv or None,
        "git_rev": a.git_rev or None,
        "crates": {k: crates.get(k) for k in ("tokio-tungstenite", "tungstenite", "fastwebsockets",
                                               "hyper", "hyper-util", "tokio")},
        "rustc": run(["rustc", "--version"]) or None,
        "python": platform.python_version(),
    }
    versions.update(node_versions(a.node_dir))
    if a.uws_version:
        versions["uws"] = a.uws_version
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "versions": versions,
        "params": {
            "switchboard": a.switchboard, "loadgen": a.loadgen, "servers": servers, "rows": rows,
            "rounds": a.rounds, "duration_s": a.duration, "warmup_s": a.warmup,
            "idle_connections": a.idle_conns, "idle_rounds": a.idle_rounds,
            "server_cpu": a.server_cpu, "client_cpu": a.client_cpu, "clk_tck": a.clk_tck,
            "nofile": a.nofile, "permessage_deflate": False,
        },
    }
    results = {"meta": meta, "summary": {"load": load, "idle": idle}, "runs": runs}
    with open(os.path.join(a.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(a.out_dir, "results.md"), "w") as f:
        f.write(markdown(meta, load, idle))


def markdown(meta, load, idle):
    m, v, p = meta["machine"], meta["versions"], meta["params"]
    has_sb = "switchboard" in p["servers"]
    lines = ["## WebSocket echo: switchboard and peers", ""]
    cpu = m.get("cpu_model") or "unknown CPU"
    extra = []
    if m.get("cpu_family") and m.get("cpu_model_number"):
        extra.append(f"family {m['cpu_family']} model {m['cpu_model_number']}")
    if m.get("cpu_mhz"):
        extra.append(f"{float(m['cpu_mhz']):.0f} MHz")
    if m.get("hypervisor"):
        extra.append("virtual machine")
    if extra:
        cpu += f" ({', '.join(extra)})"
    mem = f", {m['mem_total_kb'] / 1048576:.0f} GiB" if m.get("mem_total_kb") else ""
    lines.append(f"Machine: {cpu}, {m['nproc']} cores{mem}, Linux {m['kernel']} ({m['arch']}). "
                 f"Run {meta['date']}.")
    lines.append("")
    lg = p["loadgen"].split()
    lg_txt = " ".join([os.path.basename(lg[0])] + lg[1:]) if lg else "?"
    lines.append(f"Each server is pinned to core {p['server_cpu']} (`taskset`), the load generator "
                 f"(`{lg_txt}`) to core "
                 f"{p['client_cpu']}. Every cell is the median of {p['rounds']} round(s) of {p['duration_s']:g} s "
                 f"(after {p['warmup_s']:g} s warm-up, fresh server process per run); the servers alternate "
                 "within each round. permessage-deflate is off everywhere. **Server CPU µs/msg** is the "
                 "server process's user+system CPU time (all threads, from `/proc/PID/stat`) over the run "
                 "divided by the messages echoed; **CPU %** is that time over wall time (100 % = the one "
                 "core it has); well below 100 % means the server was not the bottleneck. **msgs/s range** is "
                 "min–max over the rounds. Ratios are peer ÷ switchboard.")
    lines.append("")
    if load:
        hdr = ["workload", "server", "msgs/s"] + (["× sb"] if has_sb else []) + \
              ["server CPU µs/msg"] + (["× sb"] if has_sb else []) + ["CPU %", "p50 µs", "p99 µs", "msgs/s range"]
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "|".join(["---", "---"] + ["---:"] * (len(hdr) - 2)) + "|")
        prev = None
        for c in load:
            wl = row_label(c["row"]) if c["row"] != prev else ""
            prev = c["row"]
            cells = [wl, SERVER_LABELS.get(c["server"], c["server"]),
                     fmt(c["msgs_per_sec"], 0, thousands=True)]
            if has_sb:
                cells.append(fmt(c["msgs_per_sec_vs_switchboard"], 2))
            cells.append(fmt(c["server_cpu_us_per_msg"], 2))
            if has_sb:
                cells.append(fmt(c["cpu_per_msg_vs_switchboard"], 2))
            rng = "n/a"
            if c.get("msgs_per_sec_min") is not None:
                rng = f"{short(c['msgs_per_sec_min'])}–{short(c['msgs_per_sec_max'])}"
            cells += [fmt(c["server_cpu_pct"], 0), fmt(c["p50_us"], 0), fmt(c["p99_us"], 0), rng]
            if c["ok_runs"] < c["runs"]:
                cells[1] += f" ({c['ok_runs']}/{c['runs']} runs ok)"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if idle:
        lines.append(f"Idle connections: each server (pinned as above) is sent {p['idle_connections']} WebSocket "
                     "upgrades that then stay silent (`benches/idle_conns.py`); **bytes/conn** is the growth "
                     "of the server's VmRSS divided by the connections held, 2 s after the last handshake. "
                     "Kernel socket memory is not in RSS.")
        lines.append("")
        hdr = ["server", "connections", "RSS before (MiB)", "RSS after (MiB)", "bytes/conn"] + (["× sb"] if has_sb else [])
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
        for c in idle:
            mib = lambda kb: fmt(kb / 1024, 1) if kb is not None else "n/a"  # noqa: E731
            cells = [SERVER_LABELS.get(c["server"], c["server"]),
                     fmt(c["connections"], 0, thousands=True) if c["connections"] is not None else "n/a",
                     mib(c["rss_before_kb"]), mib(c["rss_after_kb"]),
                     fmt(c["bytes_per_conn"], 0, thousands=True)]
            if has_sb:
                cells.append(fmt(c["bytes_per_conn_vs_switchboard"], 2))
            if c["ok_runs"] < c["runs"]:
                cells[0] += f" ({c['ok_runs']}/{c['runs']} runs ok)"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    cr = v["crates"]
    lines.append("Versions: "
                 + ", ".join(x for x in [
                     f"switchboard {v['switchboard'] or '?'}" + (f" (`{v['git_rev']}`)" if v.get("git_rev") else ""),
                     f"tokio-tungstenite {cr.get('tokio-tungstenite') or '?'} (tungstenite {cr.get('tungstenite') or '?'}, default `WebSocketConfig`)",
                     f"fastwebsockets {cr.get('fastwebsockets') or '?'} (hyper {cr.get('hyper') or '?'}, `FragmentCollector`)",
                     f"tokio {cr.get('tokio') or '?'}",
                     f"Node.js {v.get('node') or '?'} with ws {v.get('ws') or '?'} (no bufferutil/utf-8-validate)",
                     *([f"uWebSockets {v['uws']} (C++, `benches/peers/uws/uws-echo.cpp`, one event loop, built outside the repository)"]
                       if v.get("uws") else []),
                     v.get("rustc") or "rustc ?",
                 ]) + ". Peers are built from `benches/peers/` with `cargo build --release`; "
                 "all use a multi-threaded runtime where they have one, which `taskset` confines to one core.")
    lines.append("")
    errs = [(c.get("row", "idle"), c["server"], e) for c in load + idle for e in c["errors"]]
    if errs:
        lines.append("Errors during the run:")
        lines.append("")
        for row, srv, e in errs:
            lines.append(f"- {row} / {srv}: {e}")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    rl = sub.add_parser("record-load")
    rl.add_argument("--round", type=int, required=True)
    rl.add_argument("--row", required=True)
    rl.add_argument("--server", required=True)
    rl.add_argument("--conns", type=int)
    rl.add_argument("--size", type=int)
    rl.add_argument("--duration", type=float)
    rl.add_argument("--clk-tck")
    rl.add_argument("--ticks-before")
    rl.add_argument("--ticks-after")
    rl.add_argument("--wall-before")
    rl.add_argument("--wall-after")
    rl.add_argument("--rss-kb")
    rl.add_argument("--gen-output")
    rl.add_argument("--error", default="")

    ri = sub.add_parser("record-idle")
    ri.add_argument("--round", type=int, required=True)
    ri.add_argument("--server", required=True)
    ri.add_argument("--target", type=int)
    ri.add_argument("--rss-before-kb")
    ri.add_argument("--rss-after-kb")
    ri.add_argument("--hwm-kb")
    ri.add_argument("--ready", default="")
    ri.add_argument("--final", default="")
    ri.add_argument("--error", default="")

    sub.add_parser("brief")

    sm = sub.add_parser("summarize")
    for name in ("runs", "out-dir", "peers-lock", "node-dir", "switchboard", "switchboard-version",
                 "git-rev", "loadgen", "servers", "rows", "uws-version"):
        sm.add_argument(f"--{name}", default="")
    for name in ("rounds", "idle-conns", "idle-rounds", "server-cpu", "client-cpu", "clk-tck"):
        sm.add_argument(f"--{name}", type=int, default=0)
    for name in ("duration", "warmup"):
        sm.add_argument(f"--{name}", type=float, default=0)
    sm.add_argument("--nofile", default="")

    a = ap.parse_args()
    {"record-load": cmd_record_load, "record-idle": cmd_record_idle,
     "brief": cmd_brief, "summarize": cmd_summarize}[a.cmd](a)


if __name__ == "__main__":
    main()
