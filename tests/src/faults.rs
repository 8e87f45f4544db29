//! A fault-injecting TCP proxy: it sits between a client (typically a running mount)
//! and a real test server on 127.0.0.1 and, on demand, makes that server unreachable,
//! hung, slow or resetting, so a test can watch how the client copes and recovers.
//! std threads and sockets only; every thread ends when the proxy is dropped.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What the proxy does with connections.
///
/// Every change of fault ([`FaultProxy::set`]) first cuts every open connection (both
/// of its sockets are shut down, so the client reads EOF): a pooled keep-alive
/// connection cannot slip past the new fault, and a hung one is released. The new
/// fault then applies to each connection the client opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes both ways untouched: the server as it is.
    Pass,
    /// Nothing listens on the port: connect fails at once with ECONNREFUSED
    /// ([`io::ErrorKind::ConnectionRefused`]), as when the server is down.
    Refuse,
    /// Accept connections but never forward a byte, and never close them while this
    /// fault lasts: connect succeeds, writes are buffered, and a read never returns
    /// (only the client's own timeout ends it). A server that hangs.
    Hang,
    /// Forward, but wait this long before forwarding each chunk, in both directions:
    /// a request/response round trip takes at least twice the delay, and a large
    /// transfer crawls. A slow server or a throttled link.
    Slow(Duration),
    /// Accept, then close at once with `SO_LINGER` 0, which sends RST: connect succeeds,
    /// then the next read fails with ECONNRESET ([`io::ErrorKind::ConnectionReset`];
    /// a write may fail with ECONNRESET or EPIPE). A server that crashes on each request.
    Reset,
}

/// A TCP proxy on 127.0.0.1:[`port`](Self::port) to a server on 127.0.0.1, that
/// injects the current [`Fault`]. Starts as [`Fault::Pass`].
pub struct FaultProxy {
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

struct Shared {
    port: u16,
    upstream: u16,
    state: Mutex<State>,
    stop: AtomicBool,
    accepted: AtomicU64,
}

/// Everything `set` changes, under one lock with accepting, so a connection is either
/// accepted (and registered) before a change, and cut by it, or handled by the new fault.
struct State {
    fault: Fault,
    /// `None` while refusing: a closed listener is what makes connect fail fast.
    listener: Option<TcpListener>,
    conns: Vec<Arc<Conn>>,
    threads: Vec<JoinHandle<()>>,
}

/// One client connection's sockets (the upstream one once connected), kept so that
/// another thread can cut it.
struct Conn {
    sockets: Mutex<Vec<TcpStream>>,
    cut: AtomicBool,
}

/// How long `Drop` waits for the proxy's threads before leaving them.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop polls (the listener is nonblocking, so `set` and `Drop`
/// never wait for a blocked accept).
const POLL: Duration = Duration::from_millis(5);

impl FaultProxy {
    /// Listens on 127.0.0.1 at a free port and forwards to 127.0.0.1:`upstream_port`.
    /// Panics if it cannot listen or start its thread.
    #[must_use = "dropping the proxy stops it"]
    pub fn start(upstream_port: u16) -> FaultProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("fault proxy: bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("fault proxy: nonblocking listener");
        let port = listener.local_addr().expect("fault proxy: local_addr").port();
        let shared = Arc::new(Shared {
            port,
            upstream: upstream_port,
            state: Mutex::new(State {
                fault: Fault::Pass,
                listener: Some(listener),
                conns: Vec::new(),
                threads: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let accept_thread =
            thread_named(port).spawn(move || s.accept_loop()).expect("fault proxy: spawn accept thread");
        FaultProxy { shared, accept_thread: Some(accept_thread) }
    }

    /// The port clients should connect to (stays the same across `Refuse`).
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Switches to `fault`, cutting every open connection if it differs from the
    /// current one. Synchronous: once it returns, new connects see the new fault.
    /// Panics if the port cannot be bound again after `Refuse` (someone else took it).
    pub fn set(&self, fault: Fault) {
        let mut st = self.shared.lock();
        if st.fault == fault {
            return;
        }
        st.fault = fault;
        for conn in st.conns.drain(..) {
            conn.cut();
        }
        if fault == Fault::Refuse {
            st.listener = None;
        } else if st.listener.is_none() {
            let listener = rebind(self.shared.port)
                .unwrap_or_else(|e| panic!("fault proxy: cannot listen on 127.0.0.1:{} again: {e}", self.shared.port));
            st.listener = Some(listener);
        }
    }

    /// Connections accepted so far, under any fault (so a test can assert the client
    /// retried). Connects refused under `Refuse` are not counted.
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let mut st = self.shared.lock();
            st.listener = None;
            for conn in st.conns.drain(..) {
                conn.cut();
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let mut stuck = 0;
        // The accept loop first: once it has stopped, no new thread can appear.
        if let Some(h) = self.accept_thread.take() {
            stuck += usize::from(!join_by(h, deadline));
        }
        let threads = std::mem::take(&mut self.shared.lock().threads);
        for h in threads {
            stuck += usize::from(!join_by(h, deadline));
        }
        if stuck > 0 {
            eprintln!("fault proxy on port {}: {stuck} thread(s) did not stop in {STOP_TIMEOUT:?}", self.shared.port);
        }
    }
}

impl Shared {
    /// Ignores poisoning: a panic elsewhere (say, in `set`) must not stop `Drop` from
    /// closing everything.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn accept_loop(self: Arc<Self>) {
        while !self.stop.load(Ordering::SeqCst) {
            let accepted = {
                let mut st = self.lock();
                match st.listener.as_ref().map(TcpListener::accept) {
                    Some(Ok((client, _))) => {
                        self.accepted.fetch_add(1, Ordering::SeqCst);
                        if let Err(e) = self.admit(&mut st, client) {
                            eprintln!("fault proxy on port {}: dropped a connection: {e}", self.port);
                        }
                        true
                    }
                    Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => false,
                    Some(Err(e)) => {
                        // Transient (ECONNABORTED, EMFILE): keep serving.
                        eprintln!("fault proxy on port {}: accept: {e}", self.port);
                        false
                    }
                    None => false,
                }
            };
            if !accepted {
                thread::sleep(POLL);
            }
        }
    }

    /// Handles a just-accepted connection according to the current fault.
    fn admit(self: &Arc<Self>, st: &mut State, client: TcpStream) -> io::Result<()> {
        // Accepted sockets do not inherit O_NONBLOCK on Linux; make sure anyway, as the
        // forwarding threads rely on blocking reads that `Conn::cut` wakes.
        client.set_nonblocking(false)?;
        // Forget connections and threads that have ended.
        st.conns.retain(|c| !c.is_cut());
        st.threads.retain(|h| !h.is_finished());
        let delay = match st.fault {
            Fault::Pass => Duration::ZERO,
            Fault::Slow(d) => d,
            // Unreachable: there is no listener while refusing (and `set` holds the lock).
            Fault::Refuse => return Ok(()),
            Fault::Reset => {
                reset(client);
                return Ok(());
            }
            Fault::Hang => {
                st.conns.push(Arc::new(Conn::new(client)));
                return Ok(());
            }
        };
        let conn = Arc::new(Conn::new(client.try_clone()?));
        let (port, upstream, c) = (self.port, self.upstream, Arc::clone(&conn));
        // Registering after the spawn is safe: `set` cannot cut before we unlock.
        let h = thread_named(port).spawn(move || forward(port, upstream, &c, client, delay))?;
        st.conns.push(conn);
        st.threads.push(h);
        Ok(())
    }
}

impl Conn {
    fn new(client: TcpStream) -> Self {
        Conn { sockets: Mutex::new(vec![client]), cut: AtomicBool::new(false) }
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Shuts down both sockets: this wakes the forwarding threads blocked on them and
    /// sends the client a FIN, whichever thread still holds a descriptor.
    fn cut(&self) {
        let sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        self.cut.store(true, Ordering::SeqCst);
        for s in sockets.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Registers the upstream socket so `cut` reaches it; false if already cut (under
    /// the same lock, so a cut cannot fall between the check and the push).
    fn add(&self, upstream: TcpStream) -> bool {
        let mut sockets = self.sockets.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_cut() {
            return false;
        }
        sockets.push(upstream);
        true
    }

    /// Sleeps for `d`, waking early if cut; returns whether it was not cut.
    fn pause(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.is_cut() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(Duration::from_millis(10)));
        }
        false
    }
}

/// Connects upstream and copies both ways until both sides are done or the
/// connection is cut; then closes both sockets.
fn forward(port: u16, upstream_port: u16, conn: &Conn, client: TcpStream, delay: Duration) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port));
    let upstream = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    // If the server itself is down the client just sees the connection close.
    if let Ok(upstream) = upstream
        && let Ok(registered) = upstream.try_clone()
        && conn.add(registered)
    {
        thread::scope(|s| {
            let back = thread_named(port).spawn_scoped(s, || pump(&upstream, &client, delay, conn));
            if back.is_ok() {
                pump(&client, &upstream, delay, conn);
            }
        });
    }
    conn.cut();
}

/// Copies `from` to `to` (waiting `delay` before each chunk) until EOF, which it
/// passes on as a half-close; an error or a cut ends the whole connection.
fn pump(from: &TcpStream, to: &TcpStream, delay: Duration, conn: &Conn) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match (&*from).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.cut();
                return;
            }
        };
        if !delay.is_zero() && !conn.pause(delay) {
            return;
        }
        if (&*to).write_all(&buf[..n]).is_err() {
            conn.cut();
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Closes `s` with SO_LINGER 0, so the kernel sends RST instead of FIN.
fn reset(s: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `s` owns a valid socket descriptor for the whole call, and we pass a
    // pointer to a live `linger` together with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        eprintln!("fault proxy: SO_LINGER: {} (closing with FIN instead)", io::Error::last_os_error());
    }
}

/// Listens on `port` again after `Refuse`. Retries briefly: bind can race with the
/// kernel tearing down the old listener.
fn rebind(port: u16) -> io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        // std sets SO_REUSEADDR on Linux, so TIME_WAIT leftovers do not block this.
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(e) if tries >= 50 => return Err(e),
            Err(_) => {
                tries += 1;
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Threads are named after the proxy's port (`fproxy-PORT`, within Linux's 15-byte
/// limit) so a test can find them in /proc/self/task.
fn thread_named(port: u16) -> thread::Builder {
    thread::Builder::new().name(format!("fproxy-{port}"))
}

/// Joins `h` if it finishes by `deadline`; false (leaving it detached) otherwise, so a
/// stuck thread cannot hang the test.
fn join_by(h: JoinHandle<()>, deadline: Instant) -> bool {
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = h.join();
    true
}
