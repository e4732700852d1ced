//! A node reaches its cloud over HTTPS: the cloud sits behind a TLS terminator (socat with
//! OpenSSL, as a reverse proxy would be) whose certificate a private CA signed — the node that
//! trusts that CA (`cloud.ca_file`) syncs its check-ins; one that does not refuses the certificate and
//! sends nothing (its doctor says why); a `ca_file` that holds no certificate is refused at
//! start-up, naming the key.

use std::{
    net::TcpListener,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use rollcall_tests::{
    AT_GATE, Cloud, Node, NodeOptions, bin_path, environment_ready, sample_photo, wait_for,
};

/// socat terminating TLS on a free port in front of `upstream`; killed on drop.
struct Terminator(std::process::Child, u16);

impl Terminator {
    fn start(cert: &Path, key: &Path, upstream: std::net::SocketAddr) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                cert.display(),
                key.display()
            ))
            .arg(format!("TCP:{upstream}"))
            .spawn()
            .expect("socat starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "socat listens");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child, port)
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn socat_and_openssl() -> Result<(), String> {
    for (tool, arg) in [("socat", "-V"), ("openssl", "version")] {
        let found = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "{tool} is not installed (cargo xtask test installs it)"
            ));
        }
    }
    Ok(())
}

#[test]
fn a_node_syncs_over_https_when_it_trusts_the_clouds_ca() {
    if !environment_ready(socat_and_openssl()) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = rollcall_tests::private_ca(dir.path());
    let cloud = Cloud::start(&dir.path().join("cloud"), None).expect("cloud starts");
    let tls = Terminator::start(&cert, &key, cloud.addr().expect("addr"));
    let https = format!("https://localhost:{}", tls.1);
    let (_, token) = cloud.register_node("hq").expect("registered");

    // Trusting the CA: the check-in reaches the cloud over TLS.
    let node = Node::start(
        &dir.path().join("trusting"),
        &NodeOptions {
            cloud_extra: format!("ca_file = \"{}\"", ca.display()),
            ..NodeOptions::synced(&https, token.clone())
        },
    )
    .expect("node starts");
    node.decide(
        &sample_photo("sample-obama2").expect("photo"),
        Some(AT_GATE),
    );
    wait_for(
        "the event in the cloud over HTTPS",
        Duration::from_secs(30),
        || cloud.events().is_ok_and(|e| e.len() == 1),
    );
    drop(node);

    // Not trusting it (the system's roots do not hold a private CA): nothing goes, and the
    // doctor names the certificate as the reason.
    let stranger = Node::start(
        &dir.path().join("stranger"),
        &NodeOptions::synced(&https, token.clone()),
    )
    .expect("node starts");
    stranger.decide(
        &sample_photo("sample-obama3").expect("photo"),
        Some(AT_GATE),
    );
    wait_for("a failed sync round", Duration::from_secs(30), || {
        stranger
            .get("/metrics")
            .and_then(|r| Ok(r.text()?))
            .is_ok_and(|t| {
                t.lines()
                    .any(|l| l.starts_with("rollcall_node_sync_errors_total") && !l.ends_with(" 0"))
            })
    });
    assert_eq!(
        cloud.events().expect("events").len(),
        1,
        "nothing from the stranger"
    );
    drop(stranger);
    let out = Command::new(bin_path("rollcall-node").expect("built"))
        .args(["doctor", "--config"])
        .arg(dir.path().join("stranger/node.toml"))
        .output()
        .expect("doctor runs");
    let doctor = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(doctor.contains("certificate"), "{doctor}");

    // A CA file without a certificate: refused at start-up with the key named.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let refused = Node::start(
        &dir.path().join("bad"),
        &NodeOptions {
            cloud_extra: format!("ca_file = \"{}\"", bad.display()),
            ..NodeOptions::synced(&https, token)
        },
    );
    let e = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("cloud.ca_file"), "{e}");
}
