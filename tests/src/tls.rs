//! Certificates for the tests that speak TLS.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A private CA (OpenSSL) and a server certificate for localhost and 127.0.0.1 signed by it,
/// in `dir`: `(ca, cert, key)` (the cloud behind a TLS terminator, the SMTP server with
/// STARTTLS).
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=rollcall test CA"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "cloud.key",
                "-out",
                "cloud.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("cloud.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cloud.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "cloud.ext",
        "-out",
        "cloud.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cloud.pem"),
        dir.join("cloud.key"),
    )
}
