#![allow(clippy::unwrap_used)]
//! HTTPS sync on bad links and under load, with real `rhizome serve` processes on 127.0.0.1
//! ephemeral ports (and, as root, in network namespaces): relay through a hub, a hub on
//! PostgreSQL with two server processes, SIGKILL mid-sync, a link cut every N KiB, a slow
//! client, 50 clients at once. The machinery (proxy, slow client, namespaces, server processes)
//! is in tests/support and is itself tested first.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use support::net::{self, Netns, Proxy};

/// An echo server on an ephemeral port, one thread per connection.
fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Writes `bytes` and reads until EOF (or 5 s of silence); returns what came back.
fn echo_through(addr: std::net::SocketAddr, bytes: usize) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 1024];
        for _ in 0..bytes / 1024 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while got < bytes {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let _ = writer.join();
    got
}

#[test]
fn the_proxy_cuts_every_n_bytes_and_can_go_silent() {
    let echo = echo_server();
    // Uncut: everything comes back.
    let p = Proxy::start(echo, 0);
    assert_eq!(echo_through(p.addr, 64 * 1024), 64 * 1024);
    assert_eq!(p.cuts(), 0);

    // Cut at 8 KiB (both directions counted): at most 8 KiB pass, then the link ends.
    p.set_cut_every(8 * 1024);
    let back = echo_through(p.addr, 64 * 1024);
    assert!(
        back < 8 * 1024,
        "{back} bytes came back through an 8 KiB link"
    );
    assert_eq!(p.cuts(), 1);
    let back = echo_through(p.addr, 64 * 1024);
    assert!(back < 8 * 1024);
    assert_eq!(p.cuts(), 2);
    assert_eq!(p.connections(), 3);

    // Silent: the connection stays open and nothing passes, until the link speaks again.
    p.set_cut_every(0);
    p.set_silent(true);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(600)))
        .unwrap();
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    assert!(s.read(&mut buf).is_err(), "a byte passed a silent link");
    p.set_silent(false);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn the_slow_client_sees_when_a_server_drops_it() {
    // A server that reads nothing and closes after 3 s, and one that never closes.
    let closing = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closing.local_addr().unwrap();
    std::thread::spawn(move || {
        let (c, _) = closing.accept().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        drop(c);
    });
    let slow = net::slow_tls_client(addr, Duration::from_secs(10));
    let after = slow
        .dropped_after
        .expect("the closing server was not seen closing");
    assert!(
        after >= Duration::from_millis(2900) && after < Duration::from_secs(5),
        "{slow:?}"
    );
    assert!((3..=5).contains(&slow.bytes_sent), "{slow:?}");

    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = open.local_addr().unwrap();
    let slow = net::slow_tls_client(addr, Duration::from_secs(3));
    assert!(slow.dropped_after.is_none(), "{slow:?}");
    drop(open);
}

#[test]
fn the_namespace_harness_builds_and_removes_its_link() {
    let (a, b) = match Netns::setup() {
        Ok(ns) => {
            eprintln!("namespaces {} and {}: {}", ns.a, ns.b, ns.impairment);
            assert!(net::netns_exists(&ns.a) && net::netns_exists(&ns.b));
            let stats = ns.stats();
            assert!(stats.contains("qdisc"), "{stats}");
            (ns.a.clone(), ns.b.clone())
        }
        Err(reason) => {
            eprintln!("SKIPPED netns test: {reason}");
            return;
        }
    };
    assert!(
        !net::netns_exists(&a) && !net::netns_exists(&b),
        "namespaces left behind"
    );
}
