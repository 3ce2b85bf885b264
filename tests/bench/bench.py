#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# painwatch benchmark driver: fake FHIR server (nginx), baselines, gateway runs, table B1-B7.
"""Runs the painwatch benchmark on loopback and prints the B1-B7 table (issue 9).

Every figure is set next to a ceiling measured in the same run on the same bytes. Correctness is
checked in every gateway run: the If-None-Exist keys nginx logged equal the ground truth computed
by `painwatch check` (0 missing, 0 extra, 0 duplicates), else the benchmark fails (exit 1).
--smoke: a small population, correctness only (the ctest); no timing is asserted anywhere.
"""
import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM = "urn:painwatch:flag-episode"
MAX_CONCURRENT = 4  # requests in flight per server, so connections a run may open (B6)
CHILDREN = []  # every process we started, killed at exit whatever happens


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port(prefer=0):
    """An unused loopback port: @prefer when it is free (the port generated pages were written
    for: their next links carry it, so --reuse can keep them), else any."""
    for want in ((prefer, 0) if prefer else (0,)):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", want))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("no free loopback port")


def reused_port(a, n):
    """The port of an earlier population of @n patients (its meta.json), 0 without --reuse."""
    try:
        with open(os.path.join(a.work, f"data-{n}", "meta.json")) as f:
            base = json.load(f).get("base", "")
        return int(base.rsplit(":", 1)[1]) if a.reuse else 0
    except (OSError, ValueError, IndexError):
        return 0


def kill_children():
    # SIGTERM first: `timeout` forwards it to nginx (a SIGKILL would orphan nginx).
    for p in CHILDREN:
        if p.poll() is None:
            p.terminate()
    for p in CHILDREN:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---- the fake FHIR server ---------------------------------------------------------------------


class Nginx:
    """nginx serving DATA: search pages, /metadata, POST /Flag -> 201 (503 while flag-503 exists)."""

    def __init__(self, work, data, port):
        self.dir = os.path.join(work, "nginx")
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        os.makedirs(self.dir, exist_ok=True)
        for t in ("body", "proxy", "fcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, f"tmp-{t}"), exist_ok=True)
        with open(os.path.join(HERE, "nginx.conf.in")) as f:
            conf = f.read()
        for k, v in {"@DIR@": self.dir, "@PORT@": str(port),
                     "@DATA@": data, "@BASE@": self.base}.items():
            conf = conf.replace(k, v)
        with open(os.path.join(self.dir, "nginx.conf"), "w") as f:
            f.write(conf)
        self.log = os.path.join(self.dir, "access.log")
        open(self.log, "w").close()
        # `timeout` bounds nginx's life even if this driver is killed.
        self.proc = subprocess.Popen(["timeout", "3600", shutil.which("nginx") or "/usr/sbin/nginx",
                                      "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        CHILDREN.append(self.proc)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit("nginx did not start: " + self.proc.stderr.read().decode())
                time.sleep(0.05)
        raise SystemExit("nginx did not listen")

    def mark(self):
        return os.path.getsize(self.log)

    def lines(self, since):
        """Parsed access-log lines written after offset @p since."""
        out = []
        with open(self.log) as f:
            f.seek(since)
            for line in f:
                m = re.match(r'(\S+) (\d+) (\S+) (\S+) (\d+) "(.*)"$', line.rstrip("\n"))
                if m:
                    out.append({"t": float(m[1]), "conn": int(m[2]), "method": m[3],
                                "uri": m[4], "status": int(m[5]), "ine": m[6]})
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wrk_ceiling(url, seconds):
    """Requests/s nginx serves for @p url (wrk, 1 thread, 4 connections), or None."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None
    out = subprocess.run([wrk, "-t1", "-c4", f"-d{seconds}s", url], capture_output=True,
                         text=True, timeout=seconds + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m[1]) if m else None


# ---- the daemon ---------------------------------------------------------------------------------


def write_config(path, state, base, count, once_poll_s=None, timeout="60s"):
    with open(path, "w") as f:
        f.write(f"""# painwatch benchmark configuration (generated by tests/bench/bench.py)
state_dir: {state}
log_level: notice
shadow_mode: false
scope: cohort
health: {{enabled: false}}
audit: {{allow_local_key: true}}
servers:
  - name: ehr
    base_url: {base}
    auth: {{type: none}}
    cohort: {{type: server-wide}}
    dialect: {{max_count: {count}}}
    max_concurrent: {MAX_CONCURRENT}
    poll_interval: {once_poll_s or 300}s
    timeout: {timeout}
sink: {{type: fhir-flag}}
""")


class Daemon:
    """painwatchd under a NOTIFY_SOCKET we own: start time, READY time, rusage, VmHWM."""

    def __init__(self, exe, config, once, logfile):
        self.sockdir = tempfile.mkdtemp(prefix="pwb-notify-")
        self.sockpath = os.path.join(self.sockdir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sockpath)
        self.sock.setblocking(False)
        env = dict(os.environ, NOTIFY_SOCKET=self.sockpath)
        env.pop("PAINWATCH_LOG_LEVEL", None)
        self.logfile = open(logfile, "w")
        self.t0 = time.time()
        args = [exe, "--config", config] + (["--once"] if once else [])
        self.proc = subprocess.Popen(args, env=env, stdout=self.logfile, stderr=subprocess.STDOUT)
        CHILDREN.append(self.proc)
        self.ready = None
        self.rusage = None
        self.status = None
        # Peak RSS of painwatchd itself. Not ru_maxrss: Python starts children with vfork, and
        # at exec the kernel records the parent's (this driver's) RSS as the child's maxrss,
        # 66 MB at 100,000 patients against the daemon's own 32 MB (GNU time agrees with
        # VmHWM). VmHWM is read while it runs; the last read is at most one poll old.
        self.hwm_kb = 0
        self.hwm_at = 0.0

    def poll_notify(self):
        while True:
            try:
                msg = self.sock.recv(4096).decode(errors="replace")
            except BlockingIOError:
                return
            if self.ready is None and re.search(r"(^|\n)READY=1", msg):
                self.ready = time.time() - self.t0

    def vm(self, key):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def smaps(self):
        """Resident kB per mapping (shared object, [heap], [stack], anonymous), from
        /proc/PID/smaps: where the RSS is (B3). Each value: rss, private dirty (written by
        this process: heap, relocated data), shared/private clean (file pages, reclaimable)."""
        out = {}
        name = None
        try:
            with open(f"/proc/{self.proc.pid}/smaps") as f:
                for line in f:
                    m = re.match(r"[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
                    if m:
                        name = os.path.basename(m[1]) or "[anon]"
                        out.setdefault(name, {"rss": 0, "dirty": 0, "clean": 0})
                        continue
                    key, _, val = line.partition(":")
                    if key == "Rss":
                        out[name]["rss"] += int(val.split()[0])
                    elif key in ("Private_Dirty", "Shared_Dirty"):
                        out[name]["dirty"] += int(val.split()[0])
                    elif key in ("Private_Clean", "Shared_Clean"):
                        out[name]["clean"] += int(val.split()[0])
        except OSError:
            return None
        return out

    def wait(self, limit_s):
        """Wait for exit (bounded); returns the exit status."""
        deadline = time.time() + limit_s
        while True:
            self.poll_notify()
            pid, st, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(st)
                self.wall = time.time() - self.t0
                self.rusage = ru
                self.status = self.proc.returncode
                break
            if time.time() > deadline:
                self.proc.kill()
                raise SystemExit(f"painwatchd did not finish within {limit_s} s")
            if time.time() - self.hwm_at > 0.02:
                self.hwm_at = time.time()
                self.hwm_kb = max(self.hwm_kb, self.vm("VmHWM") or 0)
            time.sleep(0.005)
        self.poll_notify()
        self.sock.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        self.logfile.close()
        return self.status

    def stop(self, limit_s=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(limit_s)


def check_keys(lines, truth):
    posted = [urllib.parse.unquote(l["ine"]) for l in lines
              if l["method"] == "POST" and l["uri"] == "/Flag"]
    # "identifier=<system>|<key>": a key under another system counts as extra
    keys = [k[len("identifier=" + SYSTEM + "|"):] if k.startswith("identifier=" + SYSTEM + "|")
            else k for k in posted]
    seen, dups = set(), 0
    for k in keys:
        dups += k in seen
        seen.add(k)
    return {"posted": len(keys), "missing": len(truth - seen), "extra": len(seen - truth),
            "duplicates": dups}


def best_run(a, srv, data, work, count, truth, tag, state_root, all_runs):
    """--repeat gateway runs on fresh state; every one must be correct (all go to all_runs), the
    one with the least CPU time is reported: on a shared machine the least disturbed one."""
    runs = []
    for _ in range(a.repeat):
        g = gateway_run(a, srv, data, work, count, truth, tag, state_root)
        all_runs.append(g)
        runs.append(g)
    best = dict(min(runs, key=lambda g: g["cpu_s"]))
    best["cpu_s_runs"] = [round(g["cpu_s"], 2) for g in runs]
    best["wall_s_runs"] = [round(g["wall_s"], 2) for g in runs]
    return best


def gateway_run(a, srv, data, work, count, truth, tag, state_root=None):
    """One painwatchd --once run on a fresh state; returns its figures (correctness included)."""
    state = os.path.join(state_root or work, f"state-{tag}")
    shutil.rmtree(state, ignore_errors=True)
    cfg = os.path.join(work, f"{tag}.yaml")
    write_config(cfg, state, srv.base, count)
    mark = srv.mark()
    d = Daemon(a.painwatchd, cfg, True, os.path.join(work, f"{tag}.log"))
    rc = d.wait(a.run_limit)
    time.sleep(0.2)  # nginx has logged the last response by now
    lines = srv.lines(mark)
    with open(os.path.join(work, f"{tag}.log")) as f:
        text = f.read()
    m = re.search(r"cycle done: (\d+) page\(s\), (\d+) resource\(s\), (\d+) evaluation", text)
    res = {"tag": tag, "count": count, "exit": rc, "wall_s": d.wall, "ready_s": d.ready,
           "cpu_s": d.rusage.ru_utime + d.rusage.ru_stime, "user_s": d.rusage.ru_utime,
           "sys_s": d.rusage.ru_stime, "maxrss_kb": d.hwm_kb or d.rusage.ru_maxrss,
           "pages": int(m[1]) if m else None, "resources": int(m[2]) if m else None,
           "evaluations": int(m[3]) if m else None,
           "gets": sum(1 for l in lines if l["method"] == "GET"),
           "requests": len(lines), "connections": len({l["conn"] for l in lines}),
           "state": state}
    res.update(check_keys(lines, truth))
    res["correct"] = (rc == 0 and res["missing"] == 0 and res["extra"] == 0
                      and res["duplicates"] == 0)
    log(f"{tag}: {json.dumps({k: v for k, v in res.items() if k != 'state'})}")
    return res


# ---- ground truth -------------------------------------------------------------------------------


def ground_truth(a, data):
    """Episode keys `painwatch check` finds on the qualifying patients; the clean sample must
    give none (else the generator's design assumption broke and the benchmark stops)."""
    term = os.path.join(a.source, "config", "terminology")
    keys = set()
    for name, want_empty in (("qualifying.ndjson", False), ("sample-clean.ndjson", True)):
        out = subprocess.run([a.painwatch, "check", "--terminology", term, "--format", "json", "--scope", "cohort",
                              os.path.join(data, name)], capture_output=True, text=True,
                             timeout=600)
        if out.returncode != 0:
            raise SystemExit(f"painwatch check {name}: {out.stderr}")
        doc = json.loads(out.stdout)
        found = {f["key"] for p in doc["patients"] for f in p["findings"]}
        if want_empty and found:
            raise SystemExit(f"{name}: clean patients raised {len(found)} finding(s)")
        if not want_empty:
            keys |= found
    return keys


def generate(a, n, data, base, counts="100,1000"):
    if os.path.exists(os.path.join(data, "meta.json")) and a.reuse:
        with open(os.path.join(data, "meta.json")) as f:
            meta = json.load(f)
        if meta.get("base") == base and meta.get("counts") == counts:
            log(f"{n} patients: reusing {data}")
            return meta
    shutil.rmtree(data, ignore_errors=True)
    t = time.time()
    out = subprocess.run([sys.executable, os.path.join(HERE, "gen.py"), "--patients", str(n),
                          "--resources", str(a.resources), "--counts", counts, "--base", base,
                          "--out", data], capture_output=True, text=True, check=True)
    meta = json.loads(out.stdout)
    meta["base"] = base
    meta["counts"] = counts
    shutil.copy(os.path.join(HERE, "metadata.json"), data)
    os.makedirs(os.path.join(data, "delta"), exist_ok=True)
    for typ in ("Observation", "MedicationRequest"):
        write_bundle(os.path.join(data, "delta", f"{typ}-1.json"), [])
    # What --reuse compares: the pages' next links carry the base, and the page sizes made.
    with open(os.path.join(data, "meta.json"), "w") as f:
        json.dump(meta, f)
    log(f"generated {n} patients in {time.time() - t:.1f} s: {json.dumps(meta)}")
    return meta


def write_bundle(path, resources):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"resourceType": "Bundle", "type": "searchset",
                   "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources]}, f)
    os.replace(tmp, path)


# ---- baselines ----------------------------------------------------------------------------------


def pages_of(data, count):
    d = os.path.join(data, f"p{count}")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".json"))


def baselines(a, srv, data, n_resources, quick):
    b = {}
    files = pages_of(data, 1000)
    reps = 1 if quick else max(1, int(100000 / max(1, n_resources)))
    # The ceiling is the fastest of --repeat measurements, as the gateway runs are.
    for _ in range(1 if quick else a.repeat):
        out = subprocess.run([a.base_tool, "parse", str(reps)] + files, capture_output=True,
                             text=True, check=True, timeout=600)
        got = json.loads(out.stdout)
        if "parse" not in b or (got.get("resources_per_cpu_s", 0)
                                > b["parse"].get("resources_per_cpu_s", 0)):
            b["parse"] = got
    b["parse"]["reps"] = reps
    # The same parse through the daemon's page arena (jarena.h): shown next to the ceiling,
    # which stays plain jansson + malloc.
    out = subprocess.run([a.base_tool, "parse-arena", str(reps)] + files, capture_output=True,
                         text=True, check=True, timeout=600)
    b["parse_arena"] = json.loads(out.stdout)
    rel = [os.path.relpath(f, data) for f in pages_of(data, 100)]
    out = subprocess.run([a.base_tool, "curl", srv.base, "1" if quick else "3"] + rel,
                         capture_output=True, text=True, check=True, timeout=600)
    b["curl"] = json.loads(out.stdout)
    state_fs = a.state_dir or a.work
    out = subprocess.run([a.base_tool, "fsync", state_fs, "50" if quick else "300"],
                         capture_output=True, text=True, check=True, timeout=600)
    b["fsync"] = json.loads(out.stdout)
    if not quick:
        secs = 3
        b["wrk_page1000_rps"] = wrk_ceiling(f"{srv.base}/p1000/Observation-1.json", secs)
        b["wrk_page100_rps"] = wrk_ceiling(f"{srv.base}/p100/Observation-1.json", secs)
        b["wrk_metadata_rps"] = wrk_ceiling(f"{srv.base}/metadata", secs)
    log(f"baselines: {json.dumps(b)}")
    return b


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"{path}: no callgrind total")


def instructions(a, port):
    """B2 on a small population: daemon instructions per resource (minus the fixed cost of a
    run on an empty population: start, terminology, /metadata, stop) and jansson's on the same
    pages, both counted by callgrind."""
    out = {}
    for n in (0, a.callgrind_patients):
        data = os.path.join(a.work, f"data-cg{n}")
        meta = generate(a, n, data, f"http://127.0.0.1:{port}", "1000")
        srv = Nginx(a.work, data, port)
        try:
            out[n] = callgrind_daemon(a, srv, a.work, 1000, f"cg-n{n}")
        finally:
            srv.stop()
        log(f"callgrind: {n} patients: {out[n]} instructions")
    files = pages_of(data, 1000)
    cg = os.path.join(a.work, "callgrind.parse-cg.out")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
                    "--toggle-collect=parse_all", a.base_tool, "parse", "1"] + files,
                   capture_output=True, check=True, timeout=900)
    cga = os.path.join(a.work, "callgrind.parse-arena-cg.out")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cga}",
                    "--toggle-collect=parse_all_arena", a.base_tool, "parse-arena", "1"] + files,
                   capture_output=True, check=True, timeout=900)
    res = meta["observations"] + meta["medication_requests"]
    return {"patients": a.callgrind_patients, "resources": res, "total": out[a.callgrind_patients],
            "fixed": out[0], "per_resource": (out[a.callgrind_patients] - out[0]) / res,
            "parse_per_resource": callgrind_total(cg) / res,
            "parse_arena_per_resource": callgrind_total(cga) / res}


def callgrind_daemon(a, srv, work, count, tag):
    """Instructions of one painwatchd --once run (whole process) under callgrind."""
    state = os.path.join(work, f"state-{tag}")
    shutil.rmtree(state, ignore_errors=True)
    cfg = os.path.join(work, f"{tag}.yaml")
    # Under callgrind a page takes ~50x longer while the next requests are in flight: a request
    # timeout would count the loop's busy time against the server.
    write_config(cfg, state, srv.base, count, timeout="30m")
    cg = os.path.join(work, f"callgrind.{tag}.out")
    with open(os.path.join(work, f"{tag}.log"), "w") as lf:
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
                        a.painwatchd, "--config", cfg, "--once"], stdout=lf,
                       stderr=subprocess.STDOUT, timeout=a.run_limit * 4, check=True)
    return callgrind_total(cg)


# ---- B5, B7: periodic mode ----------------------------------------------------------------------


def backlog_ready(a, nginx, work):
    """Fill the outbox while the server answers 503 to POST /Flag, then time start->READY with
    that backlog (periodic mode, stopped right after READY)."""
    srv = nginx.base
    state = os.path.join(work, "state-backlog")
    shutil.rmtree(state, ignore_errors=True)
    cfg = os.path.join(work, "backlog-fill.yaml")
    write_config(cfg, state, srv, 1000)
    switch = os.path.join(nginx.dir, "flag-503")
    open(switch, "w").close()
    try:
        d = Daemon(a.painwatchd, cfg, True, os.path.join(work, "backlog-fill.log"))
        d.wait(a.run_limit)
    finally:
        os.unlink(switch)
    out = subprocess.run([a.painwatch, "outbox", "list", "--config", cfg], capture_output=True,
                         text=True, timeout=120)
    pending = sum(1 for line in out.stdout.splitlines() if "pending" in line)
    cfg2 = os.path.join(work, "backlog-ready.yaml")
    write_config(cfg2, state, srv, 1000)
    times = []
    for _ in range(3):
        d = Daemon(a.painwatchd, cfg2, False, os.path.join(work, "backlog-ready.log"))
        deadline = time.time() + 60
        while d.ready is None and time.time() < deadline and d.proc.poll() is None:
            d.poll_notify()
            time.sleep(0.002)
        # SIGTERM right away: what the outbox delivered meanwhile stays correct (it is keyed).
        d.stop()
        times.append(d.ready)
        log(f"backlog ready: {d.ready}")
    return {"pending_rows": pending, "ready_s": min(t for t in times if t is not None)
            if any(times) else None}


def periodic(a, srv, work, data, truth, samples, interval_s):
    """B3 idle RSS and B7 latency: a periodic daemon; after the first cycle's Flags are in, new
    orders appear on the server (delta page) and the time to their Flag's POST is measured."""
    state = os.path.join(work, "state-periodic")
    shutil.rmtree(state, ignore_errors=True)
    cfg = os.path.join(work, "periodic.yaml")
    write_config(cfg, state, srv.base, 1000, once_poll_s=interval_s)
    mark = srv.mark()
    d = Daemon(a.painwatchd, cfg, False, os.path.join(work, "periodic.log"))
    res = {"interval_s": interval_s, "latencies": []}
    try:
        deadline = time.time() + a.run_limit
        while True:
            d.poll_notify()
            c = check_keys(srv.lines(mark), truth)
            if c["posted"] >= len(truth):
                break
            if time.time() > deadline or d.proc.poll() is not None:
                raise SystemExit("periodic: first cycle did not deliver the expected Flags")
            time.sleep(0.2)
        time.sleep(1.0)
        res["first_cycle"] = check_keys(srv.lines(mark), truth)
        res["idle_rss_kb"] = d.vm("VmRSS")
        res["hwm_kb"] = d.vm("VmHWM")
        res["idle_smaps"] = d.smaps()
        first = srv.lines(mark)
        posted = len(first)
        first_conns = {l["conn"] for l in first}
        rng = random.Random(7)
        sys.path.insert(0, HERE)
        import gen  # the same resource builders as the population
        for j in range(samples):
            time.sleep(rng.uniform(0, interval_s))
            pid = f"lat{j:04d}"
            now = int(time.time())
            base = gen.REGIMENS[j % len(gen.REGIMENS)][0]
            r = gen.med(pid, f"{pid}-m1", now, base[1], base[0], base[2], base[3], False)
            # Written now, ordered 2 h ago: past the rescue rule's grace hour, so the order's
            # missing rescue is a finding on the first poll that sees it.
            r["authoredOn"] = gen.iso(now - 7200)
            m_before = srv.mark()
            t0 = time.time()
            write_bundle(os.path.join(data, "delta", "MedicationRequest-1.json"), [r])
            lat = None
            while time.time() < t0 + 3 * interval_s + 10:
                new = [l for l in srv.lines(m_before) if l["method"] == "POST"]
                if new:
                    lat = new[0]["t"] - t0
                    break
                time.sleep(0.02)
            res["latencies"].append(lat)
            log(f"B7 sample {j}: {lat}")
        write_bundle(os.path.join(data, "delta", "MedicationRequest-1.json"), [])
        time.sleep(1.0)
        res["idle_rss_end_kb"] = d.vm("VmRSS")  # idle again after the later polls' work
        after = srv.lines(mark)
        res["posts_after_first"] = sum(1 for l in after[posted:] if l["method"] == "POST")
        # B6 over the daemon's life. Every cycle reads page 1 of the Observation search once
        # (nginx logs the file it served: p1000/ on the first cycle, delta/ on later ones).
        res["polls"] = sum(1 for l in after if l["uri"].endswith("/Observation-1.json"))
        res["requests"] = len(after)
        res["connections"] = len({l["conn"] for l in after})
        res["new_connections_after_first"] = len({l["conn"] for l in after[posted:]} - first_conns)
        res["requests_after_first"] = len(after) - posted
    finally:
        d.stop()
    res["exit"] = d.status
    return res


# ---- the table ----------------------------------------------------------------------------------


def kn(n):
    return f"{n / 1000:g}k"


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def table(a, r):
    g1000, g100 = r["runs"]["p1000"], r["runs"]["p100"]
    b = r["baselines"]
    rows = []
    e2e = g1000["resources"] / g1000["wall_s"]
    e2e_cpu = g1000["resources"] / g1000["cpu_s"]
    parse = b["parse"]["resources_per_s"]
    parse_cpu = b["parse"].get("resources_per_cpu_s", parse)
    b1 = (f"whole run per CPU-s: {e2e_cpu:.0f} / {parse_cpu:.0f} = {e2e_cpu / parse_cpu:.3f}; "
          f"wall: {e2e:.0f} / {parse:.0f} = {e2e / parse:.3f}")
    sc = r.get("scaling", [])
    if len(sc) >= 2 and sc[-1]["cpu_s"] > sc[0]["cpu_s"] and sc[-1]["wall_s"] > sc[0]["wall_s"]:
        # The rate of the work itself: what the extra resources of the larger run cost, without
        # the start, terminology load, /metadata and stop every run pays once.
        dres = sc[-1]["resources"] - sc[0]["resources"]
        m_cpu = dres / (sc[-1]["cpu_s"] - sc[0]["cpu_s"])
        m_wall = dres / (sc[-1]["wall_s"] - sc[0]["wall_s"])
        b1 = (f"marginal ({kn(sc[0]['n'])} -> {kn(sc[-1]['n'])} patients) per CPU-s: "
              f"{m_cpu:.0f} / {parse_cpu:.0f} = {m_cpu / parse_cpu:.3f}; wall: {m_wall:.0f} / "
              f"{parse:.0f} = {m_wall / parse:.3f}; " + b1)
    rows.append(("B1", "end-to-end resources/s / jansson parse-only resources/s (_count=1000)",
                 b1, ">= 0.5"))
    if r.get("ir"):
        ir = r["ir"]
        rows.append(("B2", f"instructions/resource end to end / jansson parse-only ({ir['patients']} patients)",
                     f"{ir['per_resource']:.0f} / {ir['parse_per_resource']:.0f} = "
                     f"{ir['per_resource'] / ir['parse_per_resource']:.2f}", "<= 1.3"))
    else:
        rows.append(("B2", "instructions/resource end to end / jansson parse-only", "n/a", "<= 1.3"))
    p = r.get("periodic", {})
    end = (f" ({p['idle_rss_end_kb'] / 1024:.1f} MB after the B7 polls)"
           if p.get("idle_rss_end_kb") else "")
    rows.append(("B3", "peak RSS 1000-entry pages; idle RSS after the first poll",
                 f"{g1000['maxrss_kb'] / 1024:.1f} MB; {fmt((p.get('idle_rss_kb') or 0) / 1024, '.1f')} MB"
                 + end, "<= 48 MB; <= 16 MB"))
    sc = r.get("scaling", [])
    if len(sc) >= 2:
        parts, rss = [], []
        for x, y in zip(sc, sc[1:]):
            parts.append(f"T({kn(y['n'])})/T({kn(x['n'])}) = {y['wall_s'] / x['wall_s']:.1f}"
                         f" (CPU {y['cpu_s'] / x['cpu_s']:.1f})")
        hi, lo = sc[-1], sc[0]
        per_patient = (hi["maxrss_kb"] - lo["maxrss_kb"]) * 1024 / (hi["n"] - lo["n"])
        rows.append(("B4", f"scaling N = {', '.join(str(x['n']) for x in sc)} patients",
                     "; ".join(parts) + f"; RSS({kn(hi['n'])})/RSS({kn(lo['n'])}) = "
                     f"{hi['maxrss_kb'] / lo['maxrss_kb']:.2f} ({per_patient:.0f} B/patient)",
                     "<= 11; <= 1.5 (+256 B/patient)"))
    bl = r.get("backlog")
    rows.append(("B5", "start -> READY: no backlog; with N pending outbox rows",
                 f"{fmt(g1000['ready_s'] * 1000, '.0f')} ms; "
                 + (f"{fmt(bl['ready_s'] * 1000 if bl['ready_s'] else None, '.0f')} ms with "
                    f"{bl['pending_rows']} rows" if bl else "n/a"), "<= 100 ms; <= 1 s (10k rows)"))
    for g in (g100, g1000):
        rpr = g["gets"] / g["resources"]
        rows.append(("B6", f"GETs/resource (_count={g['count']})",
                     f"{rpr:.4f} (ideal {1 / g['count']:.4f} + /metadata)",
                     f"<= 1/{g['count']} + posts"))
    # Connections are a fixed cost (at most max_concurrent per server, kept alive), so their
    # share falls with the number of requests: shown over the run with the most requests and
    # over the periodic daemon's whole life, where reuse across polls is what counts.
    big = max(r["all_runs"], key=lambda g: g["requests"])
    rows.append(("B6", f"connection reuse, largest --once run ({big['tag']}, max_concurrent "
                 f"{MAX_CONCURRENT})",
                 f"{big['requests']} requests on {big['connections']} connection(s): "
                 f"{100 * (1 - big['connections'] / big['requests']):.2f}% reuse "
                 f"({1000 * big['connections'] / big['requests']:.2f} conns/1000 req)",
                 ">= 99% reuse"))
    if p.get("requests"):
        after = p["requests_after_first"]
        rows.append(("B6", f"connection reuse, periodic daemon ({p['polls']} cycles, polling "
                     f"every {p['interval_s']} s)",
                     f"after the first cycle {after} requests on "
                     f"{p['new_connections_after_first']} new connection(s)"
                     + (f" ({100 * (1 - p['new_connections_after_first'] / after):.1f}% reuse)"
                        if after else "")
                     + f"; whole life {p['requests']} requests on {p['connections']} "
                     f"connection(s) ({100 * (1 - p['connections'] / p['requests']):.2f}% reuse)",
                     ">= 99% reuse"))
    lats = [x for x in p.get("latencies", []) if x is not None]
    if p:
        lats_s = sorted(lats)
        p99 = lats_s[min(len(lats_s) - 1, int(0.99 * len(lats_s)))] if lats_s else None
        rows.append(("B7", f"update -> Flag accepted, poll every {p['interval_s']} s "
                     f"({len(lats)}/{len(p['latencies'])} samples)",
                     f"p99 {fmt(p99)} s (median {fmt(lats_s[len(lats_s) // 2] if lats_s else None)} s)",
                     f"<= {p['interval_s'] + 0.5} s"))
    print()
    print(f"painwatch benchmark, {r['date']}, {r['machine']}")
    print(f"population: {r['population']}")
    print()
    print("| id | figure | measured | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("ceilings (same run, same bytes): "
          f"jansson parse {parse:.0f} resources/s ({b['parse']['mb_per_s']:.0f} MB/s)"
          + (f", {r['ir']['parse_per_resource']:.0f} instructions/resource" if r.get("ir") else "")
          + (f" (through the daemon's page arena: {b['parse_arena']['resources_per_cpu_s']:.0f}"
             " resources/CPU-s"
             + (f", {r['ir']['parse_arena_per_resource']:.0f} instructions/resource"
                if r.get("ir", {}).get("parse_arena_per_resource") else "") + ")"
             if "parse_arena" in b else "")
          + (f"; storage {b['fsync']['syncs_per_s']:.0f} fdatasync/s where the state lives"
             if "fsync" in b else "")
          + f"; libcurl keep-alive {b['curl']['requests_per_s']:.0f} GET/s of 100-entry pages"
          f" ({b['curl']['mb_per_s']:.0f} MB/s)"
          + (f"; nginx (wrk) {fmt(b.get('wrk_page1000_rps'), '.0f')} req/s of 1000-entry pages, "
             f"{fmt(b.get('wrk_page100_rps'), '.0f')} of 100-entry pages, "
             f"{fmt(b.get('wrk_metadata_rps'), '.0f')} /metadata" if "wrk_page100_rps" in b else ""))
    for g in r["all_runs"]:
        print(f"run {g['tag']}: wall {g['wall_s']:.2f} s, CPU {g['cpu_s']:.2f} s"
              + (f" ({g['user_s']:.2f} user, {g['sys_s']:.2f} sys)" if "user_s" in g else "")
              + ", ready "
              f"{fmt(g['ready_s'] * 1000 if g['ready_s'] else None, '.0f')} ms, peak RSS "
              f"{g['maxrss_kb'] / 1024:.1f} MB, {g['resources']} resources, {g['pages']} pages, "
              f"{g['requests']} requests on {g['connections']} connection(s), {g['posted']} Flags")
    if p.get("idle_smaps"):
        print("idle RSS by mapping (periodic daemon after its first cycle): "
              + idle_breakdown(p["idle_smaps"]))
    ok = all(g["correct"] for g in r["all_runs"]) and (not p or (
        p.get("first_cycle", {}).get("missing") == 0 and p["first_cycle"]["extra"] == 0
        and p["first_cycle"]["duplicates"] == 0 and all(x is not None for x in p["latencies"])
        and p.get("posts_after_first") == len(p["latencies"])))
    print()
    for g in r["all_runs"]:
        print(f"correctness {g['tag']}: {g['posted']} posted, {g['missing']} missing, "
              f"{g['extra']} extra, {g['duplicates']} duplicates, exit {g['exit']}")
    if p:
        fc = p.get("first_cycle", {})
        print(f"correctness periodic: first cycle {fc.get('missing')} missing, {fc.get('extra')} "
              f"extra, {fc.get('duplicates')} duplicates; {p.get('posts_after_first')} POST(s) for "
              f"{len(p['latencies'])} update(s)")
    print(f"CORRECTNESS: {'PASS' if ok else 'FAIL'}")
    return ok


def idle_breakdown(smaps):
    """'14.7 MB = libcrypto 3.3, [heap] 1.5, ...': the largest mappings, then the rest summed,
    and how much the process wrote itself; file pages are mostly clean (shared with other
    processes, reclaimable)."""
    items = sorted(smaps.items(), key=lambda kv: -kv[1]["rss"])
    total = sum(v["rss"] for _, v in items)
    dirty = sum(v["dirty"] for _, v in items)
    top = [f"{re.sub(r'[.]so([.].*)?$', '', k)} {v['rss'] / 1024:.1f}" for k, v in items[:8]]
    rest = sum(v["rss"] for _, v in items[8:])
    return (f"{total / 1024:.1f} MB = " + ", ".join(top) + f", {max(0, len(items) - 8)} others "
            f"{rest / 1024:.1f} (MB); written by the process (heap, stack, relocations) "
            f"{dirty / 1024:.1f} MB, the rest clean file pages of the binary and its libraries")


def scaling_table(r):
    print(f"\npainwatch benchmark (B4 only), {r['date']}, {r['machine']}\n")
    print("| patients | resources | wall s | CPU s | CPU us/resource | peak RSS MB | Flags | correct "
          "| CPU s of each run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for g in r["scaling"]:
        print(f"| {g['n']} | {g['resources']} | {g['wall_s']:.1f} | {g['cpu_s']:.1f} | "
              f"{1e6 * g['cpu_s'] / g['resources']:.0f} | {g['maxrss_kb'] / 1024:.1f} | "
              f"{g['posted']} | {g['correct']} | {g.get('cpu_s_runs', '')} |")
    for x, y in zip(r["scaling"], r["scaling"][1:]):
        print(f"T({kn(y['n'])})/T({kn(x['n'])}) = {y['wall_s'] / x['wall_s']:.1f} wall, "
              f"{y['cpu_s'] / x['cpu_s']:.1f} CPU; RSS ratio {y['maxrss_kb'] / x['maxrss_kb']:.2f}")
    ok = all(g["correct"] for g in r["all_runs"])
    print(f"CORRECTNESS: {'PASS' if ok else 'FAIL'}")
    return ok


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPU(s) {model}, {platform.system()} {platform.release()}, "
            f"load {os.getloadavg()[0]:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build directory (painwatchd, painwatch, pw_bench_base)")
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(HERE)))
    ap.add_argument("--work", help="scratch directory (default BUILD/bench-run)")
    ap.add_argument("--patients", default="1000,10000", help="comma list, first one is the main run")
    ap.add_argument("--resources", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="small, correctness only")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--callgrind-patients", type=int, default=200,
                    help="B2 population (callgrind runs ~50x slower than native)")
    ap.add_argument("--backlog-patients", type=int, default=0,
                    help="B5: population whose Flags fill the outbox (0: the largest of --patients)")
    ap.add_argument("--latency-samples", type=int, default=5)
    ap.add_argument("--interval", type=int, default=10, help="B7 poll interval (s, >= 10)")
    ap.add_argument("--state-dir", help="where the daemon's state lives (default: under --work)")
    ap.add_argument("--run-limit", type=int, default=1500, help="seconds per daemon run")
    ap.add_argument("--reuse", action="store_true", help="keep generated populations")
    ap.add_argument("--repeat", type=int, default=3,
                    help="gateway runs per size and parse ceilings; the least CPU time counts")
    ap.add_argument("--render", metavar="RESULT_JSON", help="print the table of an earlier run")
    ap.add_argument("--scaling-only", action="store_true",
                    help="B4 only: one --once run (_count=1000) per population size")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    if a.render:
        with open(a.render) as f:
            return 0 if table(a, json.load(f)) else 1
    a.painwatchd = os.path.join(a.build, "painwatchd")
    a.painwatch = os.path.join(a.build, "painwatch")
    a.base_tool = os.path.join(a.build, "tests", "bench", "pw_bench_base")
    a.work = a.work or os.path.join(a.build, "bench-run")
    os.makedirs(a.work, exist_ok=True)
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        raise SystemExit("nginx not found: apt-get install nginx-light (and wrk for the ceiling)")
    if a.smoke:
        a.repeat = 1
    a.repeat = max(1, a.repeat)
    sizes = [int(x) for x in a.patients.split(",")]
    if a.smoke:
        sizes = sizes[:1]
    port = free_port(reused_port(a, sizes[0]))
    r = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
         "runs": {}, "all_runs": [], "scaling": []}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        for i, n in enumerate(sizes):
            data = os.path.join(a.work, f"data-{n}")
            meta = generate(a, n, data, f"http://127.0.0.1:{port}",
                            "100,1000" if i == 0 else "1000")
            truth = ground_truth(a, data)
            log(f"{n} patients: {len(truth)} Flags expected")
            srv = Nginx(a.work, data, port)
            try:
                if a.scaling_only:
                    g = best_run(a, srv, data, a.work, 1000, truth, f"n{n}-p1000", a.state_dir,
                                 r["all_runs"])
                    r["scaling"].append(dict(g, n=n))
                elif i == 0:
                    r["population"] = (f"{n} patients, {meta['observations']} Observations + "
                                       f"{meta['medication_requests']} MedicationRequests, "
                                       f"{meta['kinds']}, {len(truth)} Flags expected")
                    r["baselines"] = baselines(a, srv, data, meta["observations"]
                                               + meta["medication_requests"], a.smoke)
                    for count in (100, 1000):
                        g = best_run(a, srv, data, a.work, count, truth, f"n{n}-p{count}",
                                     a.state_dir, r["all_runs"])
                        r["runs"][f"p{count}"] = g
                    g = r["runs"]["p1000"]
                    r["scaling"].append(dict(g, n=n))
                    if not a.smoke:
                        r["periodic"] = periodic(a, srv, a.work, data, truth,
                                                 a.latency_samples, a.interval)
                else:
                    g = best_run(a, srv, data, a.work, 1000, truth, f"n{n}-p1000", a.state_dir,
                                 r["all_runs"])
                    r["scaling"].append(dict(g, n=n))
                if not a.smoke and not a.scaling_only and i == len(sizes) - 1:
                    r["backlog"] = backlog_ready(a, srv, a.work)
            finally:
                srv.stop()
        if not a.smoke and not a.no_callgrind and not a.scaling_only and shutil.which("valgrind"):
            r["ir"] = instructions(a, port)
        with open(os.path.join(a.work, "result.json"), "w") as f:
            json.dump(r, f, indent=1, default=str)
        ok = scaling_table(r) if a.scaling_only else table(a, r)
    finally:
        kill_children()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
