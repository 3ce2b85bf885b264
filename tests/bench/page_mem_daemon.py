#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Issue 18: painwatchd's peak RSS on one hostile page per shape (the worst shapes the 32 MiB
body cap lets in). A loopback server answers every Observation search with the shape's page,
whatever the _count (a hostile server: the daemon asks again smaller down to 1, then gives up);
`painwatchd --once` runs against it and its VmHWM is read while it runs. Prints a table;
asserts nothing (tests/bench/README.md has the figures).

    tests/bench/page_mem_daemon.py --build build/release [--shapes empty-32M,obs-32M]
"""
import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BODY_MAX = 32 * 1024 * 1024
HEAD = b'{"resourceType":"Bundle","type":"searchset","entry":['
TAIL = b']}'


def fill(limit, entry):
    parts, n, i = [HEAD], len(HEAD) + len(TAIL), 0
    while True:
        e = entry(i)
        if n + len(e) + 1 > limit:
            break
        if i:
            parts.append(b",")
            n += 1
        parts.append(e)
        n += len(e)
        i += 1
    parts.append(TAIL)
    return b"".join(parts), i


def small(i):
    return (b'{"resource":{"resourceType":"Observation","id":"o%d","meta":{"versionId":"1",'
            b'"lastUpdated":"2024-05-01T10:00:00Z"}}}' % i)


def obs(i):
    return (b'{"fullUrl":"http://ehr/fhir/Observation/o%d","resource":{"resourceType":'
            b'"Observation","id":"o%d","meta":{"versionId":"1","lastUpdated":'
            b'"2024-05-01T10:00:00Z"},"status":"final","code":{"coding":[{"system":'
            b'"http://loinc.org","code":"72514-3","display":"Pain severity - 0-10 verbal '
            b'numeric rating [Score] - Reported"}]},"subject":{"reference":"Patient/p%d"},'
            b'"effectiveDateTime":"2024-05-01T09:00:00Z","valueQuantity":{"value":5,'
            b'"unit":"{score}","system":"http://unitsofmeasure.org","code":"{score}"}},'
            b'"search":{"mode":"match"}}' % (i, i, i % 1000))


def huge(idx, n):
    return (b'{"resource":{"resourceType":"Observation","id":"h%d","meta":{"versionId":"1",'
            b'"lastUpdated":"2024-05-01T10:00:00Z"},"note":[{"text":"' % idx + b"x" * n +
            b'"}]}}')


def shape(name):
    if name == "empty-32M":
        return fill(BODY_MAX, lambda i: b"{}")
    if name == "empty-1M-in-3MB":
        return fill(3000000, lambda i: b"{}")
    if name == "small-32M":
        return fill(BODY_MAX, small)
    if name == "obs-32M":
        return fill(BODY_MAX, obs)
    if name == "huge-4x8M":
        return HEAD + b",".join(huge(i, 8 * 1024 * 1024 - 4096) for i in range(4)) + TAIL, 4
    if name == "huge-1x31M":
        return HEAD + huge(0, BODY_MAX - 1024 * 1024) + TAIL, 1
    if name == "numbers-32M":
        body = HEAD + b'{"resource":{"resourceType":"Observation","id":"n","x":[1'
        k = (BODY_MAX - len(body) - 16) // 2
        return body + b",1" * k + b"]}}" + TAIL, 1
    raise SystemExit(f"unknown shape {name}")


SHAPES = ["empty-32M", "empty-1M-in-3MB", "small-32M", "obs-32M", "huge-4x8M", "huge-1x31M",
          "numbers-32M"]


def serve(page, metadata):
    counts = []

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path.endswith("/metadata"):
                body = metadata
            elif path.endswith("/Observation"):
                counts.append(next((p[7:] for p in query.split("&") if p.startswith("_count=")),
                                   "-"))
                body = page
            else:
                body = HEAD + TAIL
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, counts


def hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


def run(build, name, metadata, work):
    page, entries = shape(name)
    srv, counts = serve(page, metadata)
    base = f"http://127.0.0.1:{srv.server_address[1]}/fhir"
    state = os.path.join(work, name)
    os.makedirs(state, exist_ok=True)
    cfg = os.path.join(work, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""state_dir: {state}
log_level: notice
audit: {{allow_local_key: true}}
health: {{enabled: false}}
servers:
  - name: ehr
    base_url: {base}
    auth: {{type: none}}
    cohort: {{type: server-wide}}
    resources: [Observation]
    dialect: {{max_count: 100}}
    timeout: 120s
sink: {{type: fhir-flag}}
""")
    log = open(os.path.join(work, f"{name}.log"), "w")
    t0 = time.time()
    proc = subprocess.Popen([os.path.join(build, "painwatchd"), "--config", cfg, "--once"],
                            stdout=log, stderr=subprocess.STDOUT)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, hwm_kb(proc.pid))
        time.sleep(0.02)
        if time.time() - t0 > 600:
            proc.kill()
    wall = time.time() - t0
    srv.shutdown()
    log.close()
    return {"shape": name, "bytes": len(page), "entries": entries, "peak_mib": peak // 1024,
            "requests": len(counts), "counts": ",".join(counts), "exit": proc.returncode,
            "wall_s": round(wall, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    src = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(src, "metadata.json"), "rb") as f:
        metadata = f.read()
    work = tempfile.mkdtemp(prefix="pw-page-mem-")
    print("| shape | body bytes | entries | painwatchd peak RSS (MiB) | requests (_count asked) "
          "| exit | wall s |")
    print("|---|---:|---:|---:|---|---:|---:|")
    try:
        for name in a.shapes.split(","):
            r = run(a.build, name, metadata, work)
            print(f"| {r['shape']} | {r['bytes']} | {r['entries']} | {r['peak_mib']} | "
                  f"{r['requests']} ({r['counts']}) | {r['exit']} | {r['wall_s']} |", flush=True)
    finally:
        if a.keep:
            print(f"work: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
