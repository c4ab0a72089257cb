//! Bad links for the network tests: a TCP proxy on 127.0.0.1 that cuts every connection after
//! N bytes or goes silent, a client that sends one byte a second, and two network namespaces
//! joined by a veth pair with loss and delay (root only; cleaned up on drop).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct ProxyState {
    /// Bytes (both directions together) a connection may carry before it is cut; 0: never.
    cut_every: AtomicU64,
    silent: AtomicBool,
    stop: AtomicBool,
    cuts: AtomicUsize,
    connections: AtomicUsize,
    bytes: AtomicU64,
    live: Mutex<Vec<TcpStream>>,
}

/// A TCP proxy from an ephemeral 127.0.0.1 port to `target`, one thread per direction.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Forwards to `target`; each connection is cut (both sockets shut down) once it has
    /// carried `cut_every` bytes in all (0: never).
    pub fn start(target: SocketAddr, cut_every: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState::default());
        state.cut_every.store(cut_every, Ordering::SeqCst);
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut live = st.live.lock().unwrap();
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                let carried = Arc::new(AtomicU64::new(0));
                let cut = Arc::new(AtomicBool::new(false));
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (st, carried, cut) = (st.clone(), carried.clone(), cut.clone());
                    std::thread::spawn(move || pump(from, to, &st, &carried, &cut));
                }
            }
        });
        Proxy {
            addr,
            state,
            accept: Some(accept),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> usize {
        self.state.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::SeqCst)
    }

    pub fn set_cut_every(&self, bytes: u64) {
        self.state.cut_every.store(bytes, Ordering::SeqCst);
    }

    /// Silent: connections stay open but no byte passes either way (a black-holed link).
    pub fn set_silent(&self, silent: bool) {
        self.state.silent.store(silent, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        for s in self.state.live.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    st: &ProxyState,
    carried: &AtomicU64,
    cut: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let hold = |st: &ProxyState| {
        while st.silent.load(Ordering::SeqCst) && !st.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    loop {
        hold(st);
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        hold(st);
        if st.stop.load(Ordering::SeqCst) || cut.load(Ordering::SeqCst) {
            break;
        }
        let limit = st.cut_every.load(Ordering::SeqCst);
        let before = carried.fetch_add(n as u64, Ordering::SeqCst);
        let pass = if limit > 0 && before + n as u64 >= limit {
            limit.saturating_sub(before) as usize
        } else {
            n
        };
        if to.write_all(&buf[..pass]).is_err() {
            break;
        }
        st.bytes.fetch_add(pass as u64, Ordering::SeqCst);
        if pass < n || (limit > 0 && before + n as u64 >= limit) {
            if !cut.swap(true, Ordering::SeqCst) {
                st.cuts.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
    }
    // One side ended (or the cut): end both, so neither peer waits on a half-open link.
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// What a slow client saw.
#[derive(Debug)]
pub struct Slow {
    /// When the server closed the connection (None: still open after `max`).
    pub dropped_after: Option<Duration>,
    pub bytes_sent: usize,
}

/// Connects to `addr` and sends the start of a TLS ClientHello one byte a second (a record
/// header announcing 512 bytes, so the server can neither parse nor reject it early), until
/// the server closes the connection or `max` passes.
pub fn slow_tls_client(addr: SocketAddr, max: Duration) -> Slow {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // record: handshake, TLS 1.0 record version, length 512; handshake: client_hello, 508,
    // client_version 1.2, then the 32-byte random and the rest: zeros.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    hello.resize(5 + 512, 0);
    let t = Instant::now();
    let mut sent = 0;
    let mut next_byte = t;
    let mut buf = [0u8; 1024];
    while t.elapsed() < max {
        if Instant::now() >= next_byte && sent < hello.len() {
            if s.write_all(&hello[sent..=sent]).is_err() {
                return Slow {
                    dropped_after: Some(t.elapsed()),
                    bytes_sent: sent,
                };
            }
            sent += 1;
            next_byte += Duration::from_secs(1);
        }
        match s.read(&mut buf) {
            // Closed by the server (an alert before the close counts as the same).
            Ok(0) => {
                return Slow {
                    dropped_after: Some(t.elapsed()),
                    bytes_sent: sent,
                }
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                return Slow {
                    dropped_after: Some(t.elapsed()),
                    bytes_sent: sent,
                }
            }
        }
    }
    Slow {
        dropped_after: None,
        bytes_sent: sent,
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Two network namespaces joined by a veth pair (A at `addr_a`, B at `addr_b`, a /24), each
/// end impaired by `tc`. Deleted (with the veth pair) when dropped, whatever happened.
pub struct Netns {
    pub a: String,
    pub b: String,
    pub addr_a: String,
    pub addr_b: String,
    veth_a: String,
    veth_b: String,
    /// How the link is impaired, for the test's output.
    pub impairment: String,
    created: Vec<String>,
}

impl Netns {
    /// Sets up the pair with netem `loss 10% delay 300ms` on both ends; Err(reason) when this
    /// machine cannot (not root, no `ip`/`tc`, no namespaces, no netem).
    pub fn setup() -> Result<Netns, String> {
        if !is_root() {
            return Err("not running as root".into());
        }
        run(&["ip", "-V"]).map_err(|e| format!("no usable `ip`: {e}"))?;
        run(&["tc", "-V"]).map_err(|e| format!("no usable `tc`: {e}"))?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:x}{n}", pid % 0xfffff);
        let subnet = format!("10.{}.{}", 200 + (pid % 50), n % 250);
        let mut ns = Netns {
            a: format!("rzt{tag}a"),
            b: format!("rzt{tag}b"),
            addr_a: format!("{subnet}.1"),
            addr_b: format!("{subnet}.2"),
            veth_a: format!("rzv{tag}a"),
            veth_b: format!("rzv{tag}b"),
            impairment: String::new(),
            created: Vec::new(),
        };
        for name in [ns.a.clone(), ns.b.clone()] {
            run(&["ip", "netns", "add", &name])
                .map_err(|e| format!("cannot create a network namespace: {e}"))?;
            ns.created.push(name);
        }
        let (a, b, va, vb) = (&ns.a, &ns.b, &ns.veth_a, &ns.veth_b);
        let (aa, ab) = (format!("{}/24", ns.addr_a), format!("{}/24", ns.addr_b));
        for cmd in [
            vec!["ip", "link", "add", va, "type", "veth", "peer", "name", vb],
            vec!["ip", "link", "set", va, "netns", a],
            vec!["ip", "link", "set", vb, "netns", b],
            vec!["ip", "-n", a, "addr", "add", &aa, "dev", va],
            vec!["ip", "-n", b, "addr", "add", &ab, "dev", vb],
            vec!["ip", "-n", a, "link", "set", "lo", "up"],
            vec!["ip", "-n", b, "link", "set", "lo", "up"],
            vec!["ip", "-n", a, "link", "set", va, "up"],
            vec!["ip", "-n", b, "link", "set", vb, "up"],
        ] {
            run(&cmd)?;
        }
        // netem where the kernel has it; otherwise a token bucket, whose overflowing queue
        // drops packets and whose backlog delays them (said loudly: not the same link).
        let netem = ["netem", "loss", "10%", "delay", "300ms"];
        let tbf = ["tbf", "rate", "512kbit", "burst", "4kb", "latency", "300ms"];
        let qdisc = |kind: &[&str]| -> Result<(), String> {
            for (space, dev) in [(a, va), (b, vb)] {
                let mut cmd = vec!["ip", "netns", "exec", space, "tc", "qdisc", "replace"];
                cmd.extend(["dev", dev, "root"]);
                cmd.extend(kind);
                run(&cmd)?;
            }
            Ok(())
        };
        ns.impairment = match qdisc(&netem) {
            Ok(()) => "netem loss 10% delay 300ms on both ends of the veth pair".into(),
            Err(netem_err) => {
                qdisc(&tbf).map_err(|e| {
                    format!("neither tc netem ({netem_err}) nor tbf ({e}) is available")
                })?;
                format!(
                    "NOT netem, which this kernel lacks ({netem_err}): tbf rate 512kbit burst \
                     4kb latency 300ms on both ends of the veth pair (tail drops when the \
                     queue overflows, up to 300 ms of queueing delay)"
                )
            }
        };
        Ok(ns)
    }

    /// `ip netns exec NS PROGRAM`, to which the caller adds arguments.
    pub fn exec(&self, ns: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// `tc -s qdisc` of both ends (sent, dropped), for the test's output.
    pub fn stats(&self) -> String {
        let mut s = String::new();
        for (space, dev) in [(&self.a, &self.veth_a), (&self.b, &self.veth_b)] {
            let out = run(&[
                "ip", "netns", "exec", space, "tc", "-s", "qdisc", "show", "dev", dev,
            ])
            .unwrap_or_else(|e| e);
            s.push_str(&format!(
                "{space}/{dev}: {}\n",
                out.trim().replace('\n', " | ")
            ));
        }
        s
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and so the pair.
        for name in &self.created {
            if let Err(e) = run(&["ip", "netns", "del", name]) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}

/// Whether the namespace exists (for the cleanup assertion).
pub fn netns_exists(name: &str) -> bool {
    run(&["ip", "netns", "list"])
        .map(|l| l.lines().any(|x| x.split_whitespace().next() == Some(name)))
        .unwrap_or(false)
}
