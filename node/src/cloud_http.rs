//! The HTTP client the node reaches its cloud with: HTTPS through rustls, trusting the
//! system's roots — or, with `cloud.ca_file`, only the CA(s) it names (a private PKI, an
//! air-gapped site). Plain `http://` stays possible for a cloud on the same box or LAN.

use std::time::Duration;

use crate::config::CloudSection;

/// The certificates of a PEM file; why it holds none that can be used.
pub fn certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate (-----BEGIN CERTIFICATE-----) in the file".into());
    }
    Ok(certs)
}

/// A request's error with the causes under it ("error sending request" alone would hide an
/// untrusted certificate or a refused connection).
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// A client for `cloud` whose requests time out after `timeout`.
pub fn client(cloud: &CloudSection, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5));
    if cloud.ca_roots.is_empty() {
        builder
    } else {
        builder.tls_certs_only(cloud.ca_roots.clone())
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_certificates() {
        assert!(certificates(b"").is_err());
        assert!(certificates(b"hello").is_err());
        assert!(
            certificates(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
                .is_err()
        );
    }
}
