//! The tenant a request's `Host` names: `acme.rollcall.example` → `acme` when the server's base
//! domain is `rollcall.example`. Hosts are validated strictly; a host outside the base domain
//! (an IP address, `localhost`) names no tenant, and the credential alone decides.

/// What the `Host` header says about the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTenant {
    /// No base domain configured, or a host outside it.
    Unnamed,
    Named(String),
}

/// Why a `Host` header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("the Host header is not a valid host name")]
    Malformed,
    #[error("the host `{0}` is not a tenant of this server")]
    NotATenant(String),
}

/// Parses `host[:port]` (case-insensitive) against `base_domain`.
pub fn tenant_of_host(host: &str, base_domain: Option<&str>) -> Result<HostTenant, HostError> {
    let name = strip_port(host).ok_or(HostError::Malformed)?;
    if name.starts_with('[') {
        return Ok(HostTenant::Unnamed); // an IPv6 literal
    }
    let name = name.to_ascii_lowercase();
    if !valid_hostname(&name) {
        return Err(HostError::Malformed);
    }
    let Some(base) = base_domain else {
        return Ok(HostTenant::Unnamed);
    };
    if name == base {
        return Ok(HostTenant::Unnamed);
    }
    match name.strip_suffix(base).and_then(|p| p.strip_suffix('.')) {
        Some(label) if crate::server::tenants::resolve::valid_slug(label) => {
            Ok(HostTenant::Named(label.to_owned()))
        }
        Some(_) => Err(HostError::NotATenant(name)),
        None => Ok(HostTenant::Unnamed),
    }
}

fn strip_port(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        return (rest.is_empty() || valid_port(rest.strip_prefix(':')?)).then_some(&host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) => valid_port(port).then_some(name),
        None => Some(host),
    }
}

fn valid_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok()
}

/// RFC 1123 host name (lowercase): labels of 1–63 `a-z0-9-`, not starting or ending with `-`,
/// 253 characters at most. Dotted IPv4 addresses pass too.
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASE: Option<&str> = Some("rollcall.example");

    #[test]
    fn tenant_labels_under_the_base_domain() {
        let named = |s: &str| Ok(HostTenant::Named(s.into()));
        assert_eq!(tenant_of_host("acme.rollcall.example", BASE), named("acme"));
        assert_eq!(
            tenant_of_host("ACME.Rollcall.Example:8443", BASE),
            named("acme")
        );
        assert_eq!(
            tenant_of_host("rollcall.example", BASE),
            Ok(HostTenant::Unnamed)
        );
        assert_eq!(
            tenant_of_host("127.0.0.1:8080", BASE),
            Ok(HostTenant::Unnamed)
        );
        assert_eq!(tenant_of_host("[::1]:8080", BASE), Ok(HostTenant::Unnamed));
        assert_eq!(
            tenant_of_host("acme.rollcall.example", None),
            Ok(HostTenant::Unnamed)
        );
        assert_eq!(
            tenant_of_host("evilrollcall.example", BASE),
            Ok(HostTenant::Unnamed)
        );
        assert!(matches!(
            tenant_of_host("a.b.rollcall.example", BASE),
            Err(HostError::NotATenant(_))
        ));
        assert!(matches!(
            tenant_of_host("x.rollcall.example", BASE),
            Err(HostError::NotATenant(_))
        ));
        for bad in [
            "",
            "acme..rollcall.example",
            "acme_1.rollcall.example",
            "-a.rollcall.example",
            "acme.rollcall.example:",
            "acme.rollcall.example:99999",
            "acme.rollcall.example:80:80",
            "a cme.rollcall.example",
            "acme.rollcall.example/",
            "[::1",
            "ä.rollcall.example",
        ] {
            assert_eq!(
                tenant_of_host(bad, BASE),
                Err(HostError::Malformed),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_a_named_tenant_is_a_valid_slug(host in "\\PC{0,80}") {
            if let Ok(HostTenant::Named(slug)) = tenant_of_host(&host, BASE) {
                prop_assert!(crate::server::tenants::resolve::valid_slug(&slug));
                let prefix = format!("{slug}.");
                prop_assert!(host.to_ascii_lowercase().starts_with(&prefix));
            }
        }
    }
}
