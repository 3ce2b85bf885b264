#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Peak memory of painwatchd on the worst page shapes the body cap lets in (issue 18, finding 2).

    python3 tests/bench/worst_shapes.py --build BUILD [--mib 31] [--shapes empty,small,huge]
                                        [--limit-mib 512]

A loopback HTTP server (python's http.server) answers /metadata, the first Observation search of
a run with one page of the chosen shape, every other search with an empty searchset, and writes
with 201. painwatchd --once (from BUILD: use a Release build without sanitizers) runs against it
on fresh state per shape; its peak RSS is VmHWM, sampled from /proc every 10 ms. Shapes, each just under
--mib MiB (the default cap, body_max, is 32 MiB):
  empty  one entry `{}` after another (the 2.56 GB case of the issue)
  small  minimal valid pain-score Observations (~250 bytes each), 1,000 patients
  huge   four Observations, each with one component array filling a quarter of the page
Prints one line per shape (entries, bytes, peak RSS, exit code, log lines, wall time); exits 1
when a shape takes painwatchd past --limit-mib (the acceptance bound: 512).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def shape_empty(size):
    head = b'{"resourceType":"Bundle","type":"searchset","entry":['
    n = (size - len(head) - 2) // 3
    return head + b",".join([b"{}"] * n) + b"]}", n


def obs(i):
    return ('{"fullUrl":"http://x/Observation/o%d","resource":{"resourceType":"Observation","id":"o%d",'
            '"meta":{"versionId":"1","lastUpdated":"2026-11-30T10:00:00Z"},"status":"final","code":{"coding":'
            '[{"system":"http://loinc.org","code":"72514-3"}]},"subject":{"reference":"Patient/p%d"},'
            '"effectiveDateTime":"2026-11-30T09:%02d:00Z","valueInteger":%d}}' % (i, i, i % 1000, i % 60, i % 11))


def shape_small(size):
    head = '{"resourceType":"Bundle","type":"searchset","entry":['
    parts, used, i = [], len(head) + 2, 0
    while True:
        e = obs(i)
        if used + len(e) + 1 > size:
            break
        parts.append(e)
        used += len(e) + 1
        i += 1
    return (head + ",".join(parts) + "]}").encode(), i


def shape_huge(size):
    head = '{"resourceType":"Bundle","type":"searchset","entry":['
    comp = '{"code":{"text":"c"},"valueInteger":1}'
    per = (size - len(head) - 2000) // 4
    n = per // (len(comp) + 1)
    entries = []
    for k in range(4):
        e = json.loads(obs(k))
        text = json.dumps(e)
        body = ",".join([comp] * n)
        text = text[:-2] + ',"component":[' + body + "]}}"
        entries.append(text)
    return (head + ",".join(entries) + "]}").encode(), 4


SHAPES = {"empty": shape_empty, "small": shape_small, "huge": shape_huge}


class Handler(BaseHTTPRequestHandler):
    page = b""
    served = 0
    metadata = b""

    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="application/fhir+json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/metadata"):
            return self.send(200, Handler.metadata)
        if path.endswith("/Observation") and Handler.served == 0:
            Handler.served += 1
            return self.send(200, Handler.page)
        return self.send(200, b'{"resourceType":"Bundle","type":"searchset","entry":[]}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send(201, b'{"resourceType":"Flag","id":"f1","meta":{"versionId":"1"}}')

    do_PUT = do_POST


def run(exe, base, work, shape):
    state = os.path.join(work, shape)
    os.makedirs(state)
    cfg = os.path.join(work, f"{shape}.yaml")
    with open(cfg, "w") as f:
        f.write(f"""state_dir: {state}
log_level: notice
health: {{enabled: false}}
servers:
  - name: ehr
    base_url: {base}
    auth: {{type: none}}
    cohort: {{type: server-wide}}
    resources: [Observation]
    timeout: 300s
sink: {{type: fhir-flag}}
""")
    log = os.path.join(work, f"{shape}.log")
    t0 = time.time()
    # VmHWM from /proc, sampled until exit: wait4()'s ru_maxrss would include this (large)
    # Python process, whose high-water mark a forked child keeps across exec.
    hwm = [0]
    with open(log, "w") as lf:
        p = subprocess.Popen([exe, "--config", cfg, "--once"], stdout=lf, stderr=subprocess.STDOUT)
        while p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/status") as st:
                    for line in st:
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.01)
        status = p.returncode
    wall = time.time() - t0
    with open(log, errors="replace") as lf:
        lines = lf.read().splitlines()
    code = status
    return hwm[0] / 1024.0, code, len(lines), wall, [l for l in lines if l.startswith(("err", "crit", "warning"))][:2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--mib", type=float, default=31)
    ap.add_argument("--shapes", default="empty,small,huge")
    ap.add_argument("--limit-mib", type=float, default=512)
    a = ap.parse_args()
    exe = os.path.join(a.build, "painwatchd")
    with open(os.path.join(HERE, "metadata.json"), "rb") as f:
        Handler.metadata = f.read()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    work = tempfile.mkdtemp(prefix="pw-worst-")
    over = False
    try:
        for shape in a.shapes.split(","):
            page, n = SHAPES[shape](int(a.mib * 1024 * 1024))
            Handler.page, Handler.served = page, 0
            rss, code, lines, wall, first = run(exe, base, work, shape)
            over = over or rss > a.limit_mib
            print(f"{shape:6} {n:>10,} entries {len(page) / 1048576:6.1f} MiB page: peak RSS {rss:8.1f} MiB, "
                  f"exit {code}, {lines:,} log lines, {wall:.1f} s{'  OVER ' + str(a.limit_mib) + ' MiB' if rss > a.limit_mib else ''}")
            for l in first:
                print(f"         {l[:160]}")
            sys.stdout.flush()
    finally:
        srv.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
