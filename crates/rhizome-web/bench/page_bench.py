#!/usr/bin/env python3
"""Measures the local web page from outside, over loopback (BENCHMARKS.md, "Web page").

  page_bench.py feed URL [N]        median time to serve the feed page (50 items), N requests
  page_bench.py upload URL FILE PID streams FILE to /import/raw, then prints the server's VmHWM

URL is the line `rhizome ui` printed (with its token). Python standard library only.
"""
import http.client, os, re, statistics, sys, time, urllib.parse

def login(url):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    conn.request("GET", "/?" + u.query)
    r = conn.getresponse(); r.read()
    assert r.status == 303, r.status
    cookie = r.getheader("Set-Cookie").split(";")[0]
    return conn, cookie, u

def feed(url, n):
    conn, cookie, _ = login(url)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/", headers={"Cookie": cookie})
        r = conn.getresponse(); body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200 and body.count(b'class="post"') == 50, (r.status, body.count(b'class="post"'))
    times.sort()
    print(f"feed page of 50: median {statistics.median(times):.1f} ms, p90 {times[int(n*0.9)]:.1f} ms, "
          f"min {times[0]:.1f} ms over {n} requests ({len(body)} bytes)")

def upload(url, path, pid):
    conn, cookie, u = login(url)
    conn.request("GET", "/carry", headers={"Cookie": cookie})
    page = conn.getresponse().read().decode()
    csrf = re.search(r'name="csrf" content="([0-9a-f]{64})"', page).group(1)
    size = os.path.getsize(path)
    t = time.perf_counter()
    with open(path, "rb") as f:
        conn.request("POST", "/import/raw", body=f, headers={
            "Cookie": cookie, "Origin": f"http://{u.hostname}:{u.port}", "X-CSRF-Token": csrf,
            "Content-Type": "application/octet-stream", "Content-Length": str(size)})
        r = conn.getresponse(); body = r.read().decode()
    secs = time.perf_counter() - t
    words = re.sub(r"<[^>]+>", " ", body)
    m = re.search(r"<h1>([^<]*)</h1>", body)
    print(f"upload {size/1048576:.1f} MB: {r.status} {m.group(1) if m else '?'} in {secs:.1f} s")
    print(" ".join(re.search(r"(\d+\s+new events)", words).groups()) if "new events" in words else words[:400])
    status = open(f"/proc/{pid}/status").read()
    print(re.search(r"VmHWM:\s*(\d+ kB)", status).group(0), re.search(r"VmRSS:\s*(\d+ kB)", status).group(0))

if __name__ == "__main__":
    if sys.argv[1] == "feed":
        feed(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 200)
    else:
        upload(sys.argv[2], sys.argv[3], sys.argv[4])
