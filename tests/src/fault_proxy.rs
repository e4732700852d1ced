//! A TCP proxy between a node and its cloud that misbehaves on purpose: it cuts requests and
//! responses midway, holds requests back, and sends requests a second time a little later
//! (duplicates that reach the cloud out of order, after newer ones). It speaks just enough
//! HTTP/1.1 to find where a request ends and asks for one request per connection
//! (`Connection: close`), so each fault lands on exactly one request and the response ends
//! where the connection does.
//!
//! Faults come in rounds of [`Fault::ALL`]: every round has each fault once, in an order
//! drawn from the seed, so a run of a few rounds is sure to have met each of them.

use parking_lot::Mutex;
use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::HarnessError;

/// xorshift64*: enough to spread faults and kill moments, and replayable from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced: xorshift never leaves it).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A seed from the clock, for a run that prints it so that it can be replayed.
    pub fn clock_seed() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes it through untouched.
    None,
    /// Sends the cloud part of the request, then closes both sides.
    CutRequest,
    /// Delivers the request, then sends the node part of the answer and closes.
    CutResponse,
    /// Holds the request back up to a second before sending it on.
    Delay,
    /// Delivers it, and sends it again on its own connection up to 1.5 s later.
    Duplicate,
}

impl Fault {
    /// One round: each fault once, and as many clean requests.
    pub const ALL: [Fault; 8] = [
        Fault::CutRequest,
        Fault::CutResponse,
        Fault::Delay,
        Fault::Duplicate,
        Fault::None,
        Fault::None,
        Fault::None,
        Fault::None,
    ];
}

/// What the proxy did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub requests: u64,
    /// Requests it could not deliver: the cloud was down.
    pub refused: u64,
    pub cut_requests: u64,
    pub cut_responses: u64,
    pub delayed: u64,
    /// Second copies delivered.
    pub duplicated: u64,
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    faulty: AtomicBool,
    rng: Mutex<Rng>,
    round: Mutex<Vec<Fault>>,
    stats: Mutex<FaultStats>,
    stop: AtomicBool,
}

impl Shared {
    fn next_fault(&self) -> Fault {
        if !self.faulty.load(Ordering::Relaxed) {
            return Fault::None;
        }
        let mut round = self.round.lock();
        if round.is_empty() {
            let mut rng = self.rng.lock();
            let mut fresh = Fault::ALL.to_vec();
            for i in (1..fresh.len()).rev() {
                fresh.swap(i, rng.below(i as u64 + 1) as usize);
            }
            *round = fresh;
        }
        round.pop().unwrap_or(Fault::None)
    }

    fn below(&self, n: u64) -> u64 {
        self.rng.lock().below(n)
    }

    fn count(&self, f: impl FnOnce(&mut FaultStats)) {
        f(&mut self.stats.lock());
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:port`: give it to the node as its cloud URL.
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`, faultless until
    /// [`FaultProxy::set_faulty`].
    pub fn start(upstream: SocketAddr, seed: u64) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| HarnessError::Io {
            what: "binding the fault proxy".into(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Io {
            what: "the fault proxy's address".into(),
            source,
        })?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            faulty: AtomicBool::new(false),
            rng: Mutex::new(Rng::new(seed)),
            round: Mutex::new(Vec::new()),
            stats: Mutex::new(FaultStats::default()),
            stop: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(client) = client {
                    let shared = accepting.clone();
                    std::thread::spawn(move || serve(client, &shared));
                }
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            shared,
        })
    }

    /// Where requests go from now on (a cloud restarted on another port).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock() = upstream;
    }

    /// Turns the faults on or off.
    pub fn set_faulty(&self, faulty: bool) {
        self.shared.faulty.store(faulty, Ordering::Relaxed);
    }

    pub fn stats(&self) -> FaultStats {
        self.shared.stats.lock().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

/// Reads one request from `client`: its head with `Connection: close` in place of any
/// connection header, and its body (by `Content-Length`); `None` if the client went away.
fn read_request(client: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = client.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut length = 0usize;
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if !lower.starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = client.read(&mut chunk).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let mut request = out.into_bytes();
    request.extend_from_slice(&body);
    Some(request)
}

fn connect(shared: &Shared) -> Option<TcpStream> {
    let upstream = *shared.upstream.lock();
    let stream = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    Some(stream)
}

/// Sends `request` upstream and reads the answer to its end (the cloud closes after it).
fn exchange(upstream: &mut TcpStream, request: &[u8]) -> Option<Vec<u8>> {
    upstream.write_all(request).ok()?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).ok()?;
    Some(response)
}

fn serve(mut client: TcpStream, shared: &Arc<Shared>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let Some(request) = read_request(&mut client) else {
        return;
    };
    shared.count(|s| s.requests += 1);
    let fault = shared.next_fault();
    if fault == Fault::Delay {
        std::thread::sleep(Duration::from_millis(shared.below(1000)));
        shared.count(|s| s.delayed += 1);
    }
    let Some(mut upstream) = connect(shared) else {
        shared.count(|s| s.refused += 1);
        return;
    };
    if fault == Fault::CutRequest {
        let cut = 1 + shared.below(request.len() as u64 - 1) as usize;
        let _ = upstream.write_all(&request[..cut]);
        let _ = upstream.shutdown(Shutdown::Both);
        shared.count(|s| s.cut_requests += 1);
        return;
    }
    let Some(response) = exchange(&mut upstream, &request) else {
        shared.count(|s| s.refused += 1);
        return;
    };
    if fault == Fault::CutResponse && response.len() > 1 {
        let cut = 1 + shared.below(response.len() as u64 - 1) as usize;
        let _ = client.write_all(&response[..cut]);
        shared.count(|s| s.cut_responses += 1);
        return;
    }
    let _ = client.write_all(&response);
    let _ = client.shutdown(Shutdown::Both);
    if fault == Fault::Duplicate {
        let shared = shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(shared.below(1500)));
            let delivered = connect(&shared)
                .and_then(|mut upstream| exchange(&mut upstream, &request))
                .is_some_and(|r| !r.is_empty());
            if delivered {
                shared.count(|s| s.duplicated += 1);
            }
        });
    }
}
