#!/usr/bin/python3
"""Redis's own work per send to a channel, in instructions (issue 9: "Redis time per
send stays flat from N = 1,000 to N = 10,000"; docs/benchmark.md, "Channels").

    /usr/bin/python3 bench/channel_ir.py [--members 1000,10000] [--sends 50]
    /usr/bin/python3 bench/channel_ir.py --slowlog [--sends 200]

Wall time per script (INFO commandstats) and even CPU time (INFO cpu) move with
the load of a 2-core machine where two workers fan out to N members next to Redis;
an instruction count does not. This runs build/bench/dsock-bench's channel scenario
(2 workers, --connections 0) with redis-server under `valgrind --tool=callgrind
--toggle-collect=evalShaCommand` (only instructions inside EVALSHA are counted),
zeroes the counters when the sends start (the bench's "[5] channel" line), dumps
them when they are over, and divides the instructions by the deliver scripts that
ran meanwhile (HGETALL calls: one per channel send, no other script of the window
calls it). The heartbeats' sweep scripts of the window are included (a few per
run, the same at every N).

With --slowlog, redis-server runs natively with `slowlog-log-slower-than 0`, and
the SLOWLOG entries of the deliver scripts of the sends (EVALSHA naming the
channel) give the distribution of their wall time: median, p90, mean and max.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_dump(path):
    ir, hgetall, publish = 0, 0, 0
    cfn = None
    with open(path) as f:
        lines = f.read().splitlines()
    for ln in lines:
        if ln.startswith("summary:"):  # this dump's part (totals: since the start)
            ir = int(ln.split()[1])
    # call counts: "cfn=(id) name" then "calls=N target"
    names = {}
    for ln in lines:
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", ln)
        if m:
            if m.group(2):
                names[m.group(1)] = m.group(2)
            if ln.startswith("cfn="):
                cfn = names.get(m.group(1))
            continue
        m = re.match(r"calls=(\d+)", ln)
        if m and cfn:
            if cfn == "hgetallCommand":
                hgetall += int(m.group(1))
            elif cfn == "publishCommand":
                publish += int(m.group(1))
    return ir, hgetall, publish


def slowlog_run(n, sends, bench, dsock, tmp):
    import redis
    wrapper = os.path.join(tmp, "redis-slowlog")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec /usr/bin/redis-server \"$@\" --slowlog-log-slower-than 0 "
                "--slowlog-max-len 1000000\n")
    os.chmod(wrapper, 0o755)
    p = subprocess.Popen([bench, "--dsock", dsock, "--spawn", "redis", "--workers", "2", "--connections",
                          "0", "--only", "channel", "--channel", str(n), "--channel-sends", str(sends),
                          "--fanout", "0", "--redis-server", wrapper],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    r, durations, text = None, [], []
    for ln in p.stdout:
        text.append(ln)
        if ln.startswith("  sampling redis pid"):
            with open("/proc/%s/cmdline" % ln.split()[-1], "rb") as f:
                title = f.read().replace(b"\0", b" ").decode()  # redis sets "redis-server HOST:PORT"
            r = redis.Redis(port=int(re.search(r"(?:--port |:)(\d+)", title).group(1)))
        if ln.startswith("[5] channel") and r:
            r.slowlog_reset()
        if "deliveries in" in ln and r:
            for e in r.execute_command("SLOWLOG", "GET", -1):
                args = e[3]
                if args and args[0].lower() == b"evalsha" and any(a.endswith(b"-ch") for a in args[3:]):
                    durations.append(e[2])
    p.wait()
    if p.returncode or not durations:
        sys.stderr.write("".join(text[-30:]))
        sys.exit("channel_ir: the run with N=%d failed" % n)
    d = sorted(durations)
    return (len(d), d[len(d) // 2], d[int(len(d) * 0.9)], sum(d) / len(d), d[-1],
            re.search(r"redis CPU during the sends.*?([\d.]+) us per send", "".join(text)))


def run(n, sends, bench, dsock, tmp):
    wrapper = os.path.join(tmp, "redis-vg")
    out = os.path.join(tmp, "cg.%d.out" % n)
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --toggle-collect=evalShaCommand "
                "--callgrind-out-file=%s /usr/bin/redis-server \"$@\"\n" % out)
    os.chmod(wrapper, 0o755)
    p = subprocess.Popen([bench, "--dsock", dsock, "--spawn", "redis", "--workers", "2", "--connections",
                          "0", "--only", "channel", "--channel", str(n), "--channel-sends", str(sends),
                          "--fanout", "0", "--redis-server", wrapper],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid = None
    text = []
    for ln in p.stdout:
        text.append(ln)
        if ln.startswith("  sampling redis pid"):
            pid = ln.split()[-1]
        if ln.startswith("[5] channel") and pid:
            subprocess.run(["callgrind_control", "-z", pid], stdout=subprocess.DEVNULL)
        if "deliveries in" in ln and pid:
            subprocess.run(["callgrind_control", "-d", "sends", pid], stdout=subprocess.DEVNULL)
    p.wait()
    dumps = sorted(glob.glob(out + ".*"))  # the -d dump: <out>.<n>
    if p.returncode or not dumps:
        sys.stderr.write("".join(text[-30:]))
        sys.exit("channel_ir: the run with N=%d failed" % n)
    ir, hg, pub = parse_dump(dumps[0])
    return ir, hg, pub, "".join(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="1000,10000")
    ap.add_argument("--sends", type=int, default=50)
    ap.add_argument("--slowlog", action="store_true", help="wall time of each deliver script (SLOWLOG)")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/bench/dsock-bench"))
    ap.add_argument("--dsock", default=os.path.join(ROOT, "build/dsock"))
    a = ap.parse_args()
    if a.slowlog:
        print("%8s %8s %10s %10s %10s %10s" % ("members", "scripts", "median us", "p90 us", "mean us", "max us"))
        with tempfile.TemporaryDirectory(prefix="channel-ir-") as tmp:
            for n in (int(x) for x in a.members.split(",")):
                k, med, p90, mean, mx, _ = slowlog_run(n, a.sends, a.bench, a.dsock, tmp)
                print("%8d %8d %10d %10d %10.1f %10d" % (n, k, med, p90, mean, mx))
                sys.stdout.flush()
        return
    print("%8s %8s %16s %14s %18s" % ("members", "sends", "EVALSHA instr.", "per send", "PUBLISH per send"))
    with tempfile.TemporaryDirectory(prefix="channel-ir-") as tmp:
        for n in (int(x) for x in a.members.split(",")):
            ir, hg, pub, _ = run(n, a.sends, a.bench, a.dsock, tmp)
            print("%8d %8d %16d %14.0f %18.2f" % (n, hg, ir, ir / hg if hg else 0, pub / hg if hg else 0))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
