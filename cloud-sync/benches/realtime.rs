//! The real-time hub under load: 10 000 idle WebSockets on loopback, subscribed in fan-outs of
//! 100 (one site topic each), and 1 000 messages a second published to them — each a node's
//! push that stores an event and publishes it in its transaction — for 10 s: latency from
//! publish (the envelope's `time`) to receipt, p50/p99/max, and how many arrived; then the same
//! with one client that subscribed to the whole tenant and stopped reading (it must be closed
//! with 4008, the others unchanged). Memory per idle connection is the server's RSS growth over
//! the connections. Beside each figure, the same load through a plain tokio-tungstenite hub
//! (bounded queue per connection, no database) in a process of its own: the machine's ceiling.
//! Last, mails per second: a tamper alarm notifying 200 supervisors, through the cloud's mail
//! jobs to a local aiosmtpd, next to lettre sending 200 mails straight to it.
//!
//! `cargo bench -p rollcall-cloud --bench realtime` (the cloud is its built binary, in its own
//! process, so the two sides' 10 000 sockets each fit under the file limit). `ROLLCALL_WS_CONNS`,
//! `ROLLCALL_WS_RATE`, `ROLLCALL_WS_SECONDS`, `ROLLCALL_WS_FANOUT` change the load;
//! `ROLLCALL_WS_DIR` where the cloud's database goes (`/dev/shm`: without the disk's fsyncs).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use rollcall_service::clock::now_ms;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy)]
struct Load {
    conns: usize,
    fanout: usize,
    rate: u64,
    seconds: u64,
}

impl Load {
    fn sites(&self) -> usize {
        self.conns.div_ceil(self.fanout).max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Latencies in 1 ms buckets up to 10 s.
struct Hist(Vec<AtomicU64>);

impl Hist {
    fn new() -> Arc<Self> {
        Arc::new(Self((0..=10_000).map(|_| AtomicU64::new(0)).collect()))
    }
    fn record(&self, ms: i64) {
        let i = usize::try_from(ms.max(0)).unwrap_or(0).min(10_000);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }
    fn count(&self) -> u64 {
        self.0.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }
    fn quantile(&self, q: f64) -> u64 {
        let want = (self.count() as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.0.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want.max(1) {
                return i as u64;
            }
        }
        10_000
    }
    fn max(&self) -> u64 {
        self.0
            .iter()
            .rposition(|b| b.load(Ordering::Relaxed) > 0)
            .unwrap_or(0) as u64
    }
    fn clear(&self) {
        self.0.iter().for_each(|b| b.store(0, Ordering::Relaxed));
    }
}

/// The envelope's `time` without parsing the whole frame (the clients share two cores with
/// the server).
fn time_of(frame: &str) -> Option<i64> {
    let at = frame.find("\"time\":")? + 7;
    let digits: String = frame[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Opens one client: subscribes to `topic`, then records each message's latency until the
/// connection ends; `stall` subscribes and never reads again.
async fn client(
    url: String,
    topic: String,
    hist: Arc<Hist>,
    open: Arc<AtomicUsize>,
    stall: Option<Duration>,
) -> Result<Option<u16>, Error> {
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .ok_or("no address")?
        .parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    if stall.is_some() {
        // A small receive buffer, so the kernel does not soak up what the client leaves unread.
        socket.set_recv_buffer_size(4096)?;
    }
    let tcp = socket.connect(addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    let sub = json!({ "type": "subscribe", "topics": [topic] }).to_string();
    ws.send(Message::text(sub)).await?;
    while let Some(m) = ws.next().await {
        if let Message::Text(t) = m?
            && t.contains("subscribed")
        {
            break;
        }
    }
    open.fetch_add(1, Ordering::SeqCst);
    if let Some(d) = stall {
        // Hold the socket without reading for the whole phase; then see how it ended.
        tokio::time::sleep(d).await;
    }
    while let Some(m) = ws.next().await {
        match m {
            Ok(Message::Text(t)) => {
                if t.contains("\"attendance.events\"")
                    && let Some(t0) = time_of(t.as_str())
                {
                    hist.record(now_ms() - t0);
                }
            }
            Ok(Message::Close(f)) => return Ok(f.map(|f| u16::from(f.code))),
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
    }
    Ok(None)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// The plain hub: this bench's own binary in a second process.
async fn baseline_server(load: Load) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("addr {}", listener.local_addr()?);
    type Subscribers = Vec<Vec<mpsc::Sender<Arc<str>>>>;
    let sites: Arc<parking_lot::Mutex<Subscribers>> =
        Arc::new(parking_lot::Mutex::new(vec![Vec::new(); load.sites()]));
    let joined = Arc::new(AtomicUsize::new(0));
    let (s, j) = (sites.clone(), joined.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (s, j) = (s.clone(), j.clone());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let Some(Ok(Message::Text(sub))) = ws.next().await else {
                    return;
                };
                let site: usize = sub
                    .split("site:s")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let (tx, mut rx) = mpsc::channel::<Arc<str>>(256);
                {
                    let mut groups = s.lock();
                    let n = groups.len();
                    groups[site % n].push(tx);
                }
                if ws
                    .send(Message::text("{\"type\":\"subscribed\"}"))
                    .await
                    .is_err()
                {
                    return;
                }
                j.fetch_add(1, Ordering::SeqCst);
                while let Some(frame) = rx.recv().await {
                    if ws.send(Message::text(frame.as_ref())).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    while joined.load(Ordering::SeqCst) < load.conns {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while n < load.rate * load.seconds {
        let due = start + Duration::from_secs_f64(n as f64 / load.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let site = (n as usize) % load.sites();
        let frame: Arc<str> = json!({ "type": "attendance.events", "topic": format!("site:s{site}"),
            "seq": n + 1, "time": now_ms(), "data": { "node_id": "node-0123456789abcdef", "site_id": format!("s{site}"),
            "received_ms": now_ms(), "events": [{ "event_id": format!("01K{n:023}"), "node_seq": n, "person_id": "p1",
            "decision": "granted", "similarity": 0.8, "risk_score": 0.0, "reasons": [], "node_time_ms": now_ms() }] } })
            .to_string()
            .into();
        sites.lock()[site].retain(|tx| tx.try_send(frame.clone()).is_ok());
        n += 1;
    }
    println!("done");
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
}

fn progress(n: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {msg} {bar:40} {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Opens `load.conns` clients, `url(i)` each, on topic `site:s<i % sites>`.
async fn open_clients(
    load: Load,
    urls: Vec<String>,
    hist: Arc<Hist>,
) -> Result<Vec<tokio::task::JoinHandle<Result<Option<u16>, Error>>>, Error> {
    let open = Arc::new(AtomicUsize::new(0));
    let bar = progress(load.conns, "connecting");
    let mut tasks = Vec::new();
    for (i, url) in urls.into_iter().enumerate() {
        let topic = format!("site:s{}", i % load.sites());
        tasks.push(tokio::spawn(client(
            url,
            topic,
            hist.clone(),
            open.clone(),
            None,
        )));
        // A few hundred handshakes in flight at most.
        while i + 1 - open.load(Ordering::SeqCst) > 200 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        bar.set_position(open.load(Ordering::SeqCst) as u64);
    }
    while open.load(Ordering::SeqCst) < load.conns {
        tokio::time::sleep(Duration::from_millis(20)).await;
        bar.set_position(open.load(Ordering::SeqCst) as u64);
    }
    bar.finish_and_clear();
    Ok(tasks)
}

fn line(label: &str, hist: &Hist, expected: u64) {
    println!(
        "  {label:<34} p50 {:>4} ms  p99 {:>4} ms  max {:>5} ms  delivered {} of {expected}",
        hist.quantile(0.5),
        hist.quantile(0.99),
        hist.max(),
        hist.count()
    );
}

async fn baseline(load: Load) -> Result<(), Error> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .env("ROLLCALL_WS_BASELINE_SERVER", "1")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut first = String::new();
    out.read_line(&mut first)?;
    let addr = first
        .trim()
        .strip_prefix("addr ")
        .ok_or("no address")?
        .to_owned();
    let hist = Hist::new();
    let urls = (0..load.conns).map(|_| format!("ws://{addr}/")).collect();
    let tasks = open_clients(load, urls, hist.clone()).await?;
    let mut done = String::new();
    tokio::task::spawn_blocking(move || out.read_line(&mut done)).await??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    line(
        "plain tokio-tungstenite hub",
        &hist,
        load.rate * load.seconds * load.fanout as u64,
    );
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

struct Cloud {
    child: Child,
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cloud {
    async fn post(&self, path: &str, bearer: &str, body: &Value) -> Result<Value, Error> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {v}").into());
        }
        Ok(v)
    }
}

fn start_cloud(dir: &std::path::Path, smtp: Option<&str>) -> Result<Cloud, Error> {
    let addr_file = dir.join("addr");
    let token = "bench-admin-token-0123456789".to_owned();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollcall-cloud"));
    cmd.arg("serve")
        .arg("--db")
        .arg(dir.join("cloud.sqlite"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tenant",
            "acme",
            "--max-connections",
            "20000",
        ])
        .args([
            "--rate-limit-user",
            "100000000",
            "--rate-limit-tenant",
            "100000000",
        ])
        .args(["--mail-concurrency", "8"])
        .arg("--addr-file")
        .arg(&addr_file)
        .env("ROLLCALL_CLOUD_ADMIN_TOKEN", &token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = smtp {
        cmd.args(["--smtp-url", url]);
    }
    let child = cmd.spawn()?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Ok(a) = std::fs::read_to_string(&addr_file)
            && !a.trim().is_empty()
        {
            return Ok(Cloud {
                child,
                url: format!("http://{}", a.trim()),
                token,
                http: reqwest::Client::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("the cloud did not start".into())
}

/// Pushes `load.rate` events a second, round robin over the sites' nodes, for `load.seconds`
/// (open loop: each push starts when it is due).
async fn publish(
    cloud: &Cloud,
    nodes: &[String],
    load: Load,
    first_seq: u64,
) -> Result<u64, Error> {
    let start = Instant::now();
    let mut n = 0u64;
    let mut inflight = Vec::new();
    while n < load.rate * load.seconds {
        let due = start + Duration::from_secs_f64(n as f64 / load.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let site = (n as usize) % nodes.len();
        let seq = first_seq + n / nodes.len() as u64;
        let id = format!("01K{:05}{:018}", site, seq);
        let body = json!({ "protocol": 1, "events": [{ "id": id, "seq": seq, "site_id": format!("s{site}"),
            "person_id": "p1", "decision": "granted", "similarity": 0.8, "risk_score": 0.0,
            "position": null, "node_time_ms": now_ms(), "reasons": [] }] });
        let req = cloud
            .http
            .post(format!("{}/api/v1/sync/push", cloud.url))
            .bearer_auth(&nodes[site])
            .json(&body);
        inflight.push(tokio::spawn(async move {
            req.send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }));
        n += 1;
    }
    let mut ok = 0;
    for t in inflight {
        ok += u64::from(t.await.unwrap_or(false));
    }
    Ok(ok)
}

async fn rollcall(load: Load) -> Result<(), Error> {
    // `ROLLCALL_WS_DIR=/dev/shm` puts the database in memory (to tell the fsyncs' share).
    let dir = match std::env::var_os("ROLLCALL_WS_DIR") {
        Some(d) => tempfile::TempDir::new_in(d)?,
        None => tempfile::TempDir::new()?,
    };
    let sink = match rollcall_tests::smtp_python() {
        Ok(_) => Some(rollcall_tests::SmtpSink::start(&dir.path().join("smtp"))?),
        Err(why) => {
            println!("  (no mail figures: {why})");
            None
        }
    };
    let cloud = start_cloud(dir.path(), sink.as_ref().map(|s| s.url()).as_deref())?;
    let pid = cloud.child.id();
    let mut nodes = Vec::new();
    for s in 0..load.sites() {
        let n = cloud
            .post(
                "/api/v1/nodes",
                &cloud.token,
                &json!({ "site_id": format!("s{s}") }),
            )
            .await?;
        nodes.push(n["token"].as_str().ok_or("node token")?.to_owned());
    }
    let bar = progress(load.conns, "tickets");
    let mut urls = Vec::with_capacity(load.conns);
    let addr = cloud.url.trim_start_matches("http://").to_owned();
    for _ in 0..load.conns {
        let t = cloud
            .post("/api/v1/realtime/tickets", &cloud.token, &json!({}))
            .await?;
        urls.push(format!(
            "ws://{addr}/api/v1/realtime/ws?ticket={}",
            t["ticket"].as_str().ok_or("ticket")?
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let hist = Hist::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let tasks = open_clients(load, urls, hist.clone()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let expected = load.rate * load.seconds * load.fanout as u64;
    let pushed = publish(&cloud, &nodes, load, 1).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    line("rollcall hub", &hist, expected);
    println!(
        "  {:<34} {pushed} of {} pushes stored",
        "",
        load.rate * load.seconds
    );
    println!(
        "  memory: {:.1} KiB per idle connection (server RSS {} MiB -> {} MiB over {} connections)",
        after.saturating_sub(before) as f64 / load.conns as f64,
        before / 1024,
        after / 1024,
        load.conns
    );
    // Again, with one client of the whole tenant that has stopped reading.
    hist.clear();
    let t = cloud
        .post("/api/v1/realtime/tickets", &cloud.token, &json!({}))
        .await?;
    let stalled_url = format!(
        "ws://{addr}/api/v1/realtime/ws?ticket={}",
        t["ticket"].as_str().ok_or("ticket")?
    );
    let open = Arc::new(AtomicUsize::new(0));
    let stall = Duration::from_secs(load.seconds + 3);
    let stalled = tokio::spawn(client(
        stalled_url,
        "tenant".into(),
        Hist::new(),
        open.clone(),
        Some(stall),
    ));
    while open.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pushed = publish(&cloud, &nodes, load, 1 + load.rate * load.seconds).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    line("rollcall hub, one client stalled", &hist, expected);
    println!(
        "  {:<34} {pushed} of {} pushes stored",
        "",
        load.rate * load.seconds
    );
    let ended = tokio::time::timeout(Duration::from_secs(30), stalled).await;
    let how = match ended {
        Ok(Ok(Ok(Some(code)))) => format!("closed by the server with {code}"),
        Ok(Ok(Ok(None))) => "its connection ended without a close code".to_owned(),
        Ok(Ok(Err(e))) => format!("failed: {e}"),
        Ok(Err(e)) => format!("panicked: {e}"),
        Err(_) => "still open 30 s later".to_owned(),
    };
    println!("  the stalled client: {how}");
    tasks.iter().for_each(tokio::task::JoinHandle::abort);
    if let Some(sink) = sink {
        mail(&cloud, &nodes[0], &sink).await?;
    }
    Ok(())
}

/// Mails per second: one tamper alarm to `RECIPIENTS` supervisors through the cloud's mail
/// jobs, next to lettre sending as many straight to the same server.
async fn mail(cloud: &Cloud, node: &str, sink: &rollcall_tests::SmtpSink) -> Result<(), Error> {
    const RECIPIENTS: usize = 200;
    let bar = progress(RECIPIENTS, "supervisors");
    for i in 0..RECIPIENTS {
        cloud
            .post("/api/v1/users", &cloud.token, &json!({ "email": format!("sup{i}@acme.example"),
                "display_name": format!("Supervisor {i}"), "role": "supervisor", "password": "bench password 123" }))
            .await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let before = sink.messages().len();
    let start = Instant::now();
    let alarm = json!({ "id": "01HZZZZZZZZZZZZZZZZZZZA001", "seq": 1, "kind": "tamper", "pd": 101,
                        "node_time_ms": now_ms(), "detail": "bench" });
    cloud
        .post(
            "/api/v1/sync/push",
            node,
            &json!({ "protocol": 1, "events": [], "alarms": [alarm] }),
        )
        .await?;
    let got = tokio::task::block_in_place(|| {
        sink.wait_for(before + RECIPIENTS, Duration::from_secs(120))
            .len()
            - before
    });
    let through = got as f64 / start.elapsed().as_secs_f64();
    // lettre straight to the server, 8 at once (the cloud's --mail-concurrency here).
    let transport = std::sync::Arc::new(
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(sink.port)
            .build(),
    );
    let start = Instant::now();
    let mut sends = Vec::new();
    for chunk in 0..8 {
        let t = transport.clone();
        sends.push(tokio::spawn(async move {
            use lettre::AsyncTransport;
            for i in (chunk..RECIPIENTS).step_by(8) {
                let m = lettre::Message::builder()
                    .from(
                        "bench <bench@acme.example>"
                            .parse()
                            .map_err(|e| format!("{e}"))?,
                    )
                    .to(format!("direct{i}@acme.example")
                        .parse()
                        .map_err(|e| format!("{e}"))?)
                    .subject("direct")
                    .body(String::from("direct"))
                    .map_err(|e| format!("{e}"))?;
                t.send(m).await.map_err(|e| format!("{e}"))?;
            }
            Ok::<_, String>(())
        }));
    }
    for s in sends {
        s.await??;
    }
    let direct = RECIPIENTS as f64 / start.elapsed().as_secs_f64();
    println!(
        "  mail: {got} of {RECIPIENTS} notification mails in {:.1} s through the mail jobs = {through:.0} mails/s (lettre straight to the same aiosmtpd: {direct:.0} mails/s)",
        got as f64 / through.max(1e-9)
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let load = Load {
        conns: env_u64("ROLLCALL_WS_CONNS", 10_000) as usize,
        fanout: env_u64("ROLLCALL_WS_FANOUT", 100).max(1) as usize,
        rate: env_u64("ROLLCALL_WS_RATE", 1000).max(1),
        seconds: env_u64("ROLLCALL_WS_SECONDS", 10).max(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if std::env::var_os("ROLLCALL_WS_BASELINE_SERVER").is_some() {
        return runtime.block_on(baseline_server(load));
    }
    println!(
        "realtime fan-out: {} idle WebSockets, {} sites ({} per topic), {} messages/s for {} s",
        load.conns,
        load.sites(),
        load.fanout,
        load.rate,
        load.seconds
    );
    runtime.block_on(async {
        baseline(load).await?;
        rollcall(load).await
    })
}
