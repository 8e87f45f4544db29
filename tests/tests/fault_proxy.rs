//! The fault proxy itself, in front of a tiny echo server (no mount): each fault does
//! to the bytes and to the client what its documentation says.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use oxidrive_tests::faults::{Fault, FaultProxy};
use oxidrive_tests::{pattern, wait_until};

/// An echo server on 127.0.0.1 that counts what reaches it.
struct Echo {
    port: u16,
    /// Bytes received, over all connections.
    received: Arc<AtomicUsize>,
    /// Connections accepted.
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind echo server");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local_addr").port();
        let received = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, a, s) = (Arc::clone(&received), Arc::clone(&accepted), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        let r = Arc::clone(&r);
                        // Ends when the peer (the proxy) closes its side.
                        thread::spawn(move || echo(conn, &r));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo { port, received, accepted, stop, thread: Some(thread) }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo(mut conn: TcpStream, received: &AtomicUsize) {
    conn.set_nonblocking(false).expect("blocking");
    let mut buf = [0u8; 8192];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                received.fetch_add(n, Ordering::SeqCst);
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

/// A client connection through the proxy, with a read timeout so no test can hang.
fn connect(p: &FaultProxy) -> TcpStream {
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, p.port())).expect("connect through the proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    s
}

/// Sends `msg` and reads back as many bytes (writing from another thread, so a large
/// message cannot deadlock on full socket buffers).
fn round_trip(s: &TcpStream, msg: &[u8]) -> Vec<u8> {
    let mut got = vec![0; msg.len()];
    thread::scope(|scope| {
        scope.spawn(|| (&*s).write_all(msg).expect("send"));
        (&*s).read_exact(&mut got).expect("read the echo");
    });
    got
}

/// A read that ends the connection: EOF or a reset, within the read timeout.
fn assert_closed(s: &mut TcpStream, what: &str) {
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected EOF or a reset, got {other:?}"),
    }
}

/// Threads of this proxy still running (they are named `fproxy-PORT`).
fn proxy_threads(port: u16) -> usize {
    let name = format!("fproxy-{port}");
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name))
        .count()
}

#[test]
fn pass_forwards_bytes_exactly() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    let mut s = connect(&p);
    assert_eq!(round_trip(&s, b"hello"), b"hello");
    let big = pattern(3 << 20, 7);
    assert!(round_trip(&s, &big) == big, "3 MiB came back changed");
    // A half-close reaches the server, and its close comes back as EOF.
    s.shutdown(Shutdown::Write).expect("shutdown write");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read to EOF");
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    assert_eq!(echo.received.load(Ordering::SeqCst), 5 + (3 << 20));
}

#[test]
fn refuse_fails_connect_fast_and_pass_listens_again_on_the_same_port() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    let port = p.port();
    p.set(Fault::Refuse);
    let t = Instant::now();
    let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("connect while refusing");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1), "refusal took {:?}", t.elapsed());
    assert_eq!(p.connections(), 0);

    p.set(Fault::Pass);
    assert_eq!(p.port(), port);
    let s = connect(&p);
    assert_eq!(round_trip(&s, b"back"), b"back");
    assert_eq!(p.connections(), 1);

    // And again: the port can be given up and taken back repeatedly.
    drop(s);
    p.set(Fault::Refuse);
    let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("connect while refusing");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    p.set(Fault::Pass);
    assert_eq!(round_trip(&connect(&p), b"again"), b"again");
}

#[test]
fn hang_accepts_but_never_forwards_until_pass() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    p.set(Fault::Hang);
    let mut s = connect(&p);
    s.write_all(b"anyone there?").expect("writes are buffered");
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("read timeout");
    let mut buf = [0u8; 64];
    let t = Instant::now();
    let err = s.read(&mut buf).expect_err("a read under Hang must not return");
    assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(250), "read gave up after {:?}", t.elapsed());
    // Still hanging, not closed, a while later.
    thread::sleep(Duration::from_millis(300));
    let err = s.read(&mut buf).expect_err("still hanging");
    assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err}");
    assert_eq!(p.connections(), 1, "the connection was accepted");
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0, "nothing reached the server");
    assert_eq!(echo.received.load(Ordering::SeqCst), 0);

    // Pass releases the hung connection and serves new ones.
    p.set(Fault::Pass);
    assert_closed(&mut s, "hung connection after set(Pass)");
    assert_eq!(round_trip(&connect(&p), b"ok"), b"ok");
}

#[test]
fn slow_delays_each_chunk_and_keeps_the_bytes() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    p.set(Fault::Slow(Duration::from_millis(200)));
    let s = connect(&p);
    let t = Instant::now();
    assert_eq!(round_trip(&s, b"slowly"), b"slowly");
    assert!(t.elapsed() >= Duration::from_millis(200), "round trip took only {:?}", t.elapsed());
    let msg = pattern(40_000, 3);
    assert!(round_trip(&s, &msg) == msg, "40 kB came back changed");
}

#[test]
fn reset_resets_each_connection() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    p.set(Fault::Reset);
    for _ in 0..3 {
        let mut s = connect(&p);
        assert_closed(&mut s, "connection under Reset");
    }
    assert_eq!(p.connections(), 3);
    assert_eq!(echo.accepted.load(Ordering::SeqCst), 0, "nothing reached the server");
}

#[test]
fn reset_read_sees_econnreset() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    p.set(Fault::Reset);
    let mut s = connect(&p);
    // Once the proxy has accepted (and reset) it, the read must fail, not just end.
    assert!(wait_until(Duration::from_secs(5), || p.connections() == 1));
    let err = s.read(&mut [0u8; 8]).expect_err("read after RST");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn changing_fault_cuts_existing_connections() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    for fault in [Fault::Refuse, Fault::Hang, Fault::Slow(Duration::from_millis(50)), Fault::Reset] {
        p.set(Fault::Pass);
        let mut s = connect(&p);
        assert_eq!(round_trip(&s, b"keep-alive"), b"keep-alive");
        p.set(fault);
        assert_closed(&mut s, &format!("keep-alive connection after set({fault:?})"));
    }
    // Setting the current fault again changes nothing.
    p.set(Fault::Pass);
    let s = connect(&p);
    p.set(Fault::Pass);
    assert_eq!(round_trip(&s, b"still"), b"still");
}

#[test]
fn connections_counts_accepted_connections() {
    let echo = Echo::start();
    let p = FaultProxy::start(echo.port);
    assert_eq!(p.connections(), 0);
    for i in 0..3u8 {
        assert_eq!(round_trip(&connect(&p), &[i]), [i]);
    }
    assert_eq!(p.connections(), 3);
    p.set(Fault::Refuse);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, p.port())).is_err());
    p.set(Fault::Hang);
    let _hung = connect(&p);
    assert!(wait_until(Duration::from_secs(5), || p.connections() == 4), "got {}", p.connections());
}

#[test]
fn drop_closes_every_connection_and_ends_every_thread() {
    let echo = Echo::start();
    let pass = FaultProxy::start(echo.port);
    let mut open: Vec<TcpStream> = (0..3).map(|_| connect(&pass)).collect();
    for s in &open {
        assert_eq!(round_trip(s, b"x"), b"x");
    }
    let hang = FaultProxy::start(echo.port);
    hang.set(Fault::Hang);
    open.push(connect(&hang));
    let slow = FaultProxy::start(echo.port);
    slow.set(Fault::Slow(Duration::from_secs(60)));
    let mid_delay = connect(&slow);
    (&mid_delay).write_all(b"held for a minute").expect("send");
    open.push(mid_delay);
    assert!(wait_until(Duration::from_secs(5), || hang.connections() == 1 && slow.connections() == 1));

    let ports = [pass.port(), hang.port(), slow.port()];
    assert!(ports.iter().all(|&port| proxy_threads(port) > 0), "threads are named fproxy-PORT");
    let t = Instant::now();
    drop((pass, hang, slow));
    assert!(t.elapsed() < Duration::from_secs(2), "drop took {:?}", t.elapsed());
    for (i, s) in open.iter_mut().enumerate() {
        assert_closed(s, &format!("connection {i} after drop"));
    }
    for port in ports {
        assert_eq!(proxy_threads(port), 0, "threads of the proxy on port {port} left running");
        let err = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect_err("nothing listens after drop");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }
}

#[test]
fn upstream_down_closes_the_client_connection() {
    let closed = oxidrive_tests::servers::closed_port();
    let p = FaultProxy::start(closed);
    let mut s = connect(&p);
    assert_closed(&mut s, "connection to a server that is down");
    assert_eq!(p.connections(), 1);
}
