#!/usr/bin/env python3
"""Workspace start benchmarks (driven by bench/workspace_start.sh).

cold:  time from POST /api/workspace/start to feuilled's `ready` event (both
       health checks passed), for a new user each round, against the floor:
       the same two containers (same spec, same image, the same network mode:
       each in its own slirp4netns namespace, the editor in a pod whose infra
       container holds it) created and started directly through the Podman
       API and polled the same way, inside their namespaces (50 ms, then
       200 ms after 3 s, as feuilled does). Rounds alternate floor / feuilled.
fifty: 50 new users press start at once (retrying on 429 after Retry-After);
       wall time until all are running, and feuilled's peak RSS (VmHWM).
"""
import argparse
import ctypes
import http.client
import json
import os
import secrets
import socket
import statistics
import threading
import time
import urllib.parse


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("d", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Podman:
    """Keep-alive client of the libpod API (as feuilled's pool is)."""

    def __init__(self, url):
        assert url.startswith("unix://")
        self.path = url[len("unix://"):]
        self.conn = UnixConnection(self.path)

    def call(self, method, target, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body) if body is not None else None
        for attempt in range(2):
            try:
                self.conn.request(method, "/v4.0.0/libpod" + target, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read()
                return r.status, (json.loads(text) if text else None)
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = UnixConnection(self.path)
                if attempt:
                    raise

    def ok(self, method, target, body=None):
        status, j = self.call(method, target, body)
        if status >= 300:
            raise RuntimeError(f"{method} {target}: {status} {j}")
        return j


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def in_netns(ns_path, fn):
    """Runs fn on a thread of its own inside the network namespace at ns_path."""
    out = {}

    def run():
        fd = os.open(ns_path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns " + ns_path)
            out["value"] = fn()
        except BaseException as e:  # noqa: B902 - handed to the caller
            out["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def healthy(port, path, token=None):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path, headers={"X-Token": token} if token else {})
        status = c.getresponse().status
        c.close()
        return 200 <= status < 300
    except OSError:
        return False


def wait_healthy(port, path, token=None, limit=60):
    t0 = time.monotonic()
    while not healthy(port, path, token):
        elapsed = time.monotonic() - t0
        if elapsed > limit:
            raise RuntimeError(f"127.0.0.1:{port}{path} never answered")
        time.sleep(0.05 if elapsed < 3 else 0.2)


def sandbox_key(podman, name):
    return podman.ok("GET", f"/containers/{name}/json")["NetworkSettings"]["SandboxKey"]


def floor_round(podman, image, data_dir, egress, n):
    """The two containers exactly as feuilled makes them (docs/compute.md),
    without what feuilled adds: its records, the gateway."""
    user = f"floor-{os.getpid()}-{n}"
    home = os.path.join(data_dir, user)
    rt_port, ed_port, token = 40000 + n, 20000 + n, secrets.token_hex(32)
    labels = {"io.feuille.bench": "floor"}
    slirp = {"slirp4netns": ["allow_host_loopback=false", "enable_ipv6=false"] +
             ([f"outbound_addr={egress}"] if egress else [])}
    common = {"image": image, "labels": labels, "oci_runtime": "runc", "cap_drop": ["ALL"],
              "no_new_privileges": True, "restart_policy": "no", "stop_timeout": 5, "work_dir": "/home/user",
              "mounts": [{"destination": "/home/user", "source": home, "type": "bind", "options": ["rbind"]}]}
    t0 = time.monotonic()
    os.makedirs(os.path.join(home, "Projects", "Scratch"), exist_ok=True)
    rt = dict(common, name=f"feuille-bench-rt-{user}", apparmor_profile="unconfined",
              command=["/feuille-standin", "runtime", "--port", "8888", "--host", "0.0.0.0"],
              env={"HOME": "/home/user", "CLOUD_MODE": "1"}, netns={"nsmode": "slirp4netns"}, network_options=slirp,
              resource_limits={"memory": {"limit": 256 << 20}, "cpu": {"period": 100000, "quota": 50000}})
    podman.ok("POST", "/containers/create", rt)
    podman.ok("POST", f"/containers/{rt['name']}/start")
    in_netns(sandbox_key(podman, rt["name"]), lambda: wait_healthy(8888, "/mrp/v1/capabilities"))
    pod = {"name": f"feuille-bench-pod-{user}", "infra_name": f"feuille-bench-ns-{user}", "labels": labels,
           "netns": {"nsmode": "slirp4netns"}, "network_options": slirp}
    podman.ok("POST", "/pods/create", pod)
    podman.ok("POST", f"/pods/{pod['name']}/start")
    ed = dict(common, name=f"feuille-bench-ed-{user}", pod=pod["name"],
              command=["/feuille-standin", "editor", "--port", str(ed_port), "--host", "127.0.0.1", "--token", token],
              env={"HOME": "/home/user", "CLOUD_MODE": "1", "PORT": str(ed_port), "RUNTIME_PORT": str(rt_port),
                   "RUNTIME_HOST": "127.0.0.1", "BASE_PATH": f"/u/{user}/"},
              resource_limits={"memory": {"limit": 512 << 20}})
    podman.ok("POST", "/containers/create", ed)
    podman.ok("POST", f"/containers/{ed['name']}/start")
    in_netns(sandbox_key(podman, ed["name"]), lambda: wait_healthy(ed_port, "/health", token))
    elapsed = time.monotonic() - t0
    for name in (ed["name"], rt["name"]):
        podman.call("DELETE", f"/containers/{name}?force=true&timeout=0")
    podman.call("DELETE", f"/pods/{pod['name']}?force=true")
    return elapsed


class Feuilled:
    def __init__(self, port):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"

    def request(self, method, path, cookie=None, body=None, content_type=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Origin": self.origin}
        if cookie:
            headers["Cookie"] = f"feuille_session={cookie}"
        if content_type:
            headers["Content-Type"] = content_type
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def login(self, handle, n=0):
        # Sign-ins are rate-limited per client address: each bench user comes
        # from its own address (feuilled believes X-Forwarded-For from 127.0.0.1).
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", "/auth/dev", body=urllib.parse.urlencode({"handle": handle}),
                  headers={"Origin": self.origin, "Content-Type": "application/x-www-form-urlencoded",
                           "X-Forwarded-For": f"10.9.{n // 250}.{n % 250 + 1}"})
        r = c.getresponse()
        r.read()
        c.close()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie" and v.startswith("feuille_session="):
                return v.split(";")[0].split("=", 1)[1]
        raise RuntimeError(f"dev login failed: {r.status}")

    def start_and_follow(self, cookie):
        """POST start, then the event stream until ready; returns seconds."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request("GET", "/api/workspace/events", headers={"Cookie": f"feuille_session={cookie}"})
        stream = c.getresponse()
        assert stream.status == 200, stream.status
        t0 = time.monotonic()
        r, body = self.request("POST", "/api/workspace/start", cookie)
        if r.status not in (200, 202):
            raise RuntimeError(f"start: {r.status} {body!r}")
        seen = b""
        while b"event: ready" not in seen:
            chunk = stream.read1(65536)
            if not chunk:
                raise RuntimeError("event stream ended")
            seen += chunk
            if b"event: failed" in seen:
                raise RuntimeError("start failed: " + seen.decode(errors="replace")[-400:])
        elapsed = time.monotonic() - t0
        c.close()
        return elapsed

    def state(self, cookie):
        r, body = self.request("GET", "/api/workspace", cookie)
        return json.loads(body)["state"]

    def stop(self, cookie):
        r, body = self.request("POST", "/api/workspace/stop", cookie)
        return r.status


def cold(args):
    podman = Podman(args.podman)
    f = Feuilled(args.port)
    floor, ours = [], []
    for n in range(args.rounds):
        floor.append(floor_round(podman, args.image, args.data_dir, args.egress, n))
        cookie = f.login(f"cold{n}", n)
        ours.append(f.start_and_follow(cookie))
        f.stop(cookie)
    fm, om = statistics.median(floor), statistics.median(ours)
    print(f"{'':10} {'median s':>9} {'min s':>7} {'max s':>7}   rounds: {args.rounds}")
    print(f"{'floor':10} {fm:9.3f} {min(floor):7.3f} {max(floor):7.3f}   " + " ".join(f"{x:.3f}" for x in floor))
    print(f"{'feuilled':10} {om:9.3f} {min(ours):7.3f} {max(ours):7.3f}   " + " ".join(f"{x:.3f}" for x in ours))
    print(f"overhead: median {100 * (om - fm) / fm:+.1f}%, min {100 * (min(ours) - min(floor)) / min(floor):+.1f}% "
          f"(target <= 10%)")


def vm(pid, key):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def start_durations(f):
    """(count, sum) of feuilled's successful start durations so far (/metrics)."""
    _, body = f.request("GET", "/metrics")
    values = {}
    for line in body.decode().splitlines():
        for key in ("feuille_workspace_start_duration_seconds_count", "feuille_workspace_start_duration_seconds_sum"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    return values.get("feuille_workspace_start_duration_seconds_count", 0), \
        values.get("feuille_workspace_start_duration_seconds_sum", 0)


def start_all(f, cookies):
    """Starts every cookie's workspace at once (retrying on 429) until each
    runs or fails; returns (wall seconds, failed indexes, retries)."""
    retries = [0]
    lock = threading.Lock()

    def press(cookie):
        while True:
            r, body = f.request("POST", "/api/workspace/start", cookie)
            if r.status in (200, 202):
                return
            if r.status != 429:
                raise RuntimeError(f"start: {r.status} {body!r}")
            with lock:
                retries[0] += 1
            time.sleep(float(r.getheader("Retry-After", "1")))

    t0 = time.monotonic()
    threads = [threading.Thread(target=press, args=(c,)) for c in cookies]
    for t in threads:
        t.start()
    pending = set(range(len(cookies)))
    failed = []
    while pending:
        time.sleep(0.25)
        for i in list(pending):
            s = f.state(cookies[i])
            if s == "running":
                pending.discard(i)
            elif s == "failed":
                failed.append(i)
                pending.discard(i)
        if time.monotonic() - t0 > 600:
            raise RuntimeError(f"{len(pending)} workspaces still not running after 10 minutes")
    wall = time.monotonic() - t0
    for t in threads:
        t.join()
    return wall, failed, retries[0]


def stop_all(f, cookies):
    stoppers = [threading.Thread(target=f.stop, args=(c,)) for c in cookies]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()


def fifty(args):
    f = Feuilled(args.port)
    cookies = [f.login(f"crowd{n}", 100 + n) for n in range(args.users)]
    rss_before = vm(args.pid, "VmRSS")
    count0, sum0 = start_durations(f)
    wall, failed, retries = start_all(f, cookies)
    running = len(cookies) - len(failed)
    print(f"{len(cookies)} users at once: {running} running, {len(failed)} failed, wall {wall:.1f} s, "
          f"{retries} retries after 429")
    count1, sum1 = start_durations(f)
    if count1 > count0:
        print(f"one start took {(sum1 - sum0) / (count1 - count0):.2f} s on average "
              f"(feuille_workspace_start_duration_seconds over {int(count1 - count0)} starts)")
    print(f"feuilled RSS: {rss_before // 1024} MiB before, peak (VmHWM) {vm(args.pid, 'VmHWM') // 1024} MiB, "
          f"now {vm(args.pid, 'VmRSS') // 1024} MiB")
    t1 = time.monotonic()
    stop_all(f, cookies)
    print(f"stopped all in {time.monotonic() - t1:.1f} s")


def metric_sums(f, prefix):
    """(count, sum) of a histogram in /metrics."""
    _, body = f.request("GET", "/metrics")
    values = {}
    for line in body.decode().splitlines():
        for key in (prefix + "_count", prefix + "_sum"):
            if line.startswith(key + " ") or line.startswith(key + "{"):
                values[key] = float(line.split()[-1])
    return values.get(prefix + "_count", 0), values.get(prefix + "_sum", 0)


def monitor(args):
    """USERS workspaces running (2 containers each): feuilled's polls (one
    stats call per poll, wall and loop time from /metrics) against the same
    stats call made directly, over ROUNDS seconds."""
    f = Feuilled(args.port)
    cookies = [f.login(f"watched{n}", 300 + n) for n in range(args.users)]
    wall, failed, _ = start_all(f, cookies)
    print(f"{len(cookies) - len(failed)} workspaces running ({len(failed)} failed) in {wall:.1f} s")
    podman = Podman(args.podman)
    q = urllib.parse.quote(json.dumps({"label": [f"io.feuille.instance={args.instance}"]}))
    names = [c["Names"][0] for c in podman.ok("GET", f"/containers/json?filters={q}")
             if c["Names"][0].startswith(("feuille-ed-", "feuille-rt-"))]
    target = "/containers/stats?stream=false" + "".join("&containers=" + urllib.parse.quote(n) for n in names)
    c0, s0 = metric_sums(f, "feuille_monitor_poll_duration_seconds")
    l0, ls0 = metric_sums(f, "feuille_monitor_poll_loop_seconds")
    direct = []
    end = time.monotonic() + args.rounds
    while time.monotonic() < end:
        t = time.monotonic()
        stats = podman.ok("GET", target)["Stats"]
        direct.append(time.monotonic() - t)
        time.sleep(0.5)
    c1, s1 = metric_sums(f, "feuille_monitor_poll_duration_seconds")
    l1, ls1 = metric_sums(f, "feuille_monitor_poll_loop_seconds")
    polls = c1 - c0
    if polls <= 0:
        raise RuntimeError("feuilled made no poll")
    d = sorted(direct)[len(direct) // 2]
    through = (s1 - s0) / polls
    print(f"{len(names)} containers ({len(stats)} in a stats answer): feuilled {int(polls)} polls, "
          f"{through * 1000:.0f} ms wall each, {(ls1 - ls0) / max(l1 - l0, 1) * 1000:.2f} ms on the loop each; "
          f"direct call {d * 1000:.0f} ms (median of {len(direct)}); ratio {through / d:.2f}x")
    stop_all(f, cookies)


def cleanup(args):
    """Removes every container and pod of the feuilled instance and of the floor."""
    podman = Podman(args.podman)
    for label in (f"io.feuille.instance={args.instance}", "io.feuille.bench=floor"):
        q = urllib.parse.quote(json.dumps({"label": [label]}))
        for c in podman.ok("GET", f"/containers/json?all=true&filters={q}") or []:
            podman.call("DELETE", f"/containers/{c['Id']}?force=true&timeout=0")
        for p in podman.ok("GET", f"/pods/json?filters={q}") or []:
            podman.call("DELETE", f"/pods/{p['Id']}?force=true")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["cold", "fifty", "monitor", "cleanup"])
    p.add_argument("--port", type=int)
    p.add_argument("--pid", type=int)
    p.add_argument("--podman")
    p.add_argument("--image")
    p.add_argument("--data-dir")
    p.add_argument("--instance")
    p.add_argument("--egress", default="", help="feuilled's egress-address, for the floor's slirp4netns")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--users", type=int, default=50)
    args = p.parse_args()
    {"cold": cold, "fifty": fifty, "monitor": monitor, "cleanup": cleanup}[args.what](args)


if __name__ == "__main__":
    main()
