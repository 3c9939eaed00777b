//! Custom domains: which hostnames a tenant may claim for an app.
//!
//! The router picks an app by the request's Host. A name that is not a DNS name of
//! the tenant's own (an IP address, the platform's API host, the apps' domain) would
//! route to that app requests meant for the platform or for every other app.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DomainError {
    #[error("{0:?} is not a valid hostname.")]
    Invalid(String),
    #[error("{0:?} has a port; a custom domain is a hostname only (e.g. www.example.com).")]
    HasPort(String),
    #[error("{0} is an IP address; custom domains must be DNS names, since a request addressed to the router by IP would reach this app.")]
    IpAddress(String),
    #[error("{host} is the platform's API host and cannot be a custom domain.")]
    ApiHost { host: String },
    #[error(
        "{host} is under the platform domain {domain}; apps get <app>.{domain} automatically."
    )]
    PlatformDomain { host: String, domain: String },
    #[error("{0} would catch a whole top-level domain; a wildcard needs at least two labels after \"*.\".")]
    WildcardTooWide(String),
}

/// The names the platform itself answers to.
#[derive(Debug, Clone, Copy)]
pub struct PlatformHosts<'a> {
    /// Apps are `<app>.<domain>`.
    pub domain: &'a str,
    /// The host part of the API's public URL (a name or an IP literal).
    pub api_host: Option<&'a str>,
}

/// Checks a hostname a tenant asks for and returns it normalized (lowercase, no
/// trailing dot). Refused: anything that is not a DNS name, anything a resolver or
/// URL parser reads as an IP address (`127.0.0.1`, `127.1`, `0x7f.1`, `2130706433`,
/// `[::1]`, `::1`), names with a port, the platform's own names, and wildcards as wide
/// as a top-level domain.
pub fn validate_custom_domain(raw: &str, platform: &PlatformHosts) -> Result<String, DomainError> {
    let h = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let shown = || h.chars().take(80).collect::<String>();
    if looks_like_ip(&h) {
        return Err(DomainError::IpAddress(shown()));
    }
    if let Some((name, port)) = h.rsplit_once(':') {
        if !name.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::HasPort(shown()));
        }
    }
    let labels: Vec<&str> = h.split('.').collect();
    let ok = h.len() <= 253
        && labels.len() >= 2
        && labels.iter().enumerate().all(|(i, label)| {
            (i == 0 && *label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        });
    if !ok {
        return Err(DomainError::Invalid(shown()));
    }
    // A last label that is a number makes the whole name an IPv4 address to URL
    // parsers (WHATWG "ends in a number") and to inet_aton: `1.2.3.4`, `127.1`.
    if is_ipv4_number(labels[labels.len() - 1]) {
        return Err(DomainError::IpAddress(h));
    }
    if labels[0] == "*" && labels.len() < 3 {
        return Err(DomainError::WildcardTooWide(h));
    }
    let domain = platform.domain.trim_end_matches('.').to_ascii_lowercase();
    if h == domain || h.ends_with(&format!(".{domain}")) {
        return Err(DomainError::PlatformDomain { host: h, domain });
    }
    if let Some(api) = platform.api_host {
        let api = api
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if h == api {
            return Err(DomainError::ApiHost { host: h });
        }
    }
    Ok(h)
}

/// IPv6 in any spelling, or a whole name that is an IPv4 number (`2130706433`).
fn looks_like_ip(h: &str) -> bool {
    let unbracketed = h
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map_or(h, |(inner, _)| inner);
    if unbracketed.parse::<std::net::Ipv6Addr>().is_ok() || h.starts_with('[') {
        return true;
    }
    // `127.0.0.1:80`, `2130706433:8080`.
    let no_port = h.rsplit_once(':').map_or(h, |(name, _)| name);
    no_port.parse::<std::net::IpAddr>().is_ok()
        || no_port.rsplit('.').next().is_some_and(is_ipv4_number)
}

/// A label inet_aton and URL parsers take as (part of) an IPv4 address: decimal,
/// octal (leading 0) or hexadecimal (`0x`) digits.
fn is_ipv4_number(label: &str) -> bool {
    let digits = label
        .strip_prefix("0x")
        .map(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    match digits {
        Some(all_hex) => all_hex,
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLATFORM: PlatformHosts = PlatformHosts {
        domain: "apps.example.test",
        api_host: Some("api.hoist.test"),
    };

    #[test]
    fn ordinary_names_are_accepted_and_normalized() {
        for (raw, want) in [
            ("WWW.Example.test.", "www.example.test"),
            ("shop.example.co.uk", "shop.example.co.uk"),
            ("*.example.com", "*.example.com"),
            ("1password.example.com", "1password.example.com"),
            ("host-1.0x.example", "host-1.0x.example"),
        ] {
            assert_eq!(validate_custom_domain(raw, &PLATFORM).as_deref(), Ok(want));
        }
    }

    #[test]
    fn ip_literals_in_every_spelling_are_refused() {
        for raw in [
            "127.0.0.1",
            "127.0.0.1.",
            "127.1",
            "10.0.0.1:8080",
            "0x7f.0.0.1",
            "0x7f000001",
            "0177.0.0.1",
            "2130706433",
            "2130706433:80",
            "::1",
            "[::1]",
            "[::1]:8080",
            "::ffff:127.0.0.1",
            "fe80::1",
            "example.123",
        ] {
            assert!(
                matches!(
                    validate_custom_domain(raw, &PLATFORM),
                    Err(DomainError::IpAddress(_))
                ),
                "{raw}: {:?}",
                validate_custom_domain(raw, &PLATFORM)
            );
        }
    }

    #[test]
    fn the_platforms_own_names_are_refused() {
        for raw in [
            "apps.example.test",
            "other-app.apps.example.test",
            "*.apps.example.test",
        ] {
            assert!(matches!(
                validate_custom_domain(raw, &PLATFORM),
                Err(DomainError::PlatformDomain { .. })
            ));
        }
        assert!(matches!(
            validate_custom_domain("API.hoist.test", &PLATFORM),
            Err(DomainError::ApiHost { .. })
        ));
        let by_ip = PlatformHosts {
            domain: "localhost",
            api_host: Some("[::1]"),
        };
        assert!(validate_custom_domain("x.localhost", &by_ip).is_err());
    }

    #[test]
    fn malformed_names_ports_and_wide_wildcards_are_refused() {
        assert!(matches!(
            validate_custom_domain("www.example.com:443", &PLATFORM),
            Err(DomainError::HasPort(_))
        ));
        assert!(matches!(
            validate_custom_domain("*.com", &PLATFORM),
            Err(DomainError::WildcardTooWide(_))
        ));
        for raw in [
            "",
            "localhost",
            "bad host.com",
            "-a.com",
            "a..com",
            "a.*.com",
            "é.com",
        ] {
            assert!(
                matches!(
                    validate_custom_domain(raw, &PLATFORM),
                    Err(DomainError::Invalid(_))
                ),
                "{raw}"
            );
        }
    }
}
