//! The headers the router adds to every request it forwards (Heroku's
//! `X-Forwarded-*`, `X-Request-Id`, `X-Request-Start`, and `Via`) and the
//! hop-by-hop rules, for both paths: `proxy` renders them into a `HeaderMap`,
//! `fast` writes them as raw bytes. Each rule lives here once.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

pub(crate) const X_FORWARDED_FOR: &str = "x-forwarded-for";
pub(crate) const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
pub(crate) const X_FORWARDED_PORT: &str = "x-forwarded-port";
pub(crate) const X_REQUEST_START: &str = "x-request-start";
pub(crate) const X_REQUEST_ID: &str = "x-request-id";
pub(crate) const VIA: &str = "via";

/// The router's own entry in `Via`.
pub(crate) const VIA_VALUE: &str = "1.1 hoist";

/// Headers the router sets itself: a client's are never passed on as sent.
const ROUTER_SETS: [&str; 6] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_PORT,
    X_REQUEST_START,
    X_REQUEST_ID,
    VIA,
];

/// Headers that concern one connection only and are never passed on, either way.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

fn one_of(names: &[&str], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    one_of(&HOP_BY_HOP, name)
}

pub(crate) fn hop_by_hop() -> impl Iterator<Item = &'static str> {
    HOP_BY_HOP.into_iter()
}

pub(crate) fn is_router_set(name: &str) -> bool {
    one_of(&ROUTER_SETS, name)
}

/// The tokens of a `Connection` header value.
pub(crate) fn connection_tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Whether a header that a `Connection` header names is dropped: a peer may declare
/// any header hop-by-hop except the end-to-end ones it cannot demote.
pub(crate) fn demotable(name: &str) -> bool {
    !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length")
}

/// Request ids are kept when 20..=200 chars of `[A-Za-z0-9+=/-]`.
pub(crate) fn valid_request_id(v: &[u8]) -> bool {
    (20..=200).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b'/' | b'-'))
}

/// A new request id: a v4 UUID from a userspace RNG (no getrandom per request).
pub(crate) fn new_request_id() -> String {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_string()
}

/// What the client sent of the headers the router sets: kept in what it forwards.
#[derive(Debug, Default)]
pub(crate) struct FromClient {
    /// Earlier `X-Forwarded-For` values, each followed by ", ".
    fwd: String,
    /// The first valid `X-Request-Id`.
    request_id: Option<String>,
    /// Earlier `Via` entries, joined.
    via: Option<String>,
}

impl FromClient {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut seen = FromClient::default();
        for (name, value) in headers {
            seen.note(name.as_str(), value.as_bytes());
        }
        seen
    }

    /// Takes note of one client header; returns whether the router sets `name`
    /// itself, so the client's value is not passed on as sent.
    pub(crate) fn note(&mut self, name: &str, value: &[u8]) -> bool {
        if name.eq_ignore_ascii_case(X_FORWARDED_FOR) {
            if let Ok(v) = std::str::from_utf8(value) {
                self.fwd.push_str(v.trim());
                self.fwd.push_str(", ");
            }
        } else if name.eq_ignore_ascii_case(X_REQUEST_ID) {
            if self.request_id.is_none() && valid_request_id(value) {
                self.request_id = std::str::from_utf8(value).ok().map(str::to_string);
            }
        } else if name.eq_ignore_ascii_case(VIA) {
            if let Ok(v) = std::str::from_utf8(value) {
                match self.via.as_mut() {
                    Some(prev) => {
                        prev.push_str(", ");
                        prev.push_str(v.trim());
                    }
                    None => self.via = Some(v.trim().to_string()),
                }
            }
        } else {
            return is_router_set(name);
        }
        true
    }

    /// The values forwarded for a request from `peer_ip`: the `X-Forwarded-For`
    /// chain ending with the peer, the request id (the client's or a new one),
    /// and the earlier `Via` entries.
    pub(crate) fn finish(self, peer_ip: &str) -> (String, String, Option<String>) {
        let mut fwd = self.fwd;
        fwd.push_str(peer_ip);
        let request_id = self.request_id.unwrap_or_else(new_request_id);
        (fwd, request_id, self.via)
    }
}

/// The headers the dyno gets for one request.
pub(crate) struct Forwarded<'a> {
    /// The whole `X-Forwarded-For` chain, ending with the client's address.
    pub(crate) fwd: &'a str,
    pub(crate) proto: &'a str,
    /// The router port the request arrived on.
    pub(crate) port: u16,
    /// When the router received the request.
    pub(crate) received: Instant,
    pub(crate) request_id: &'a str,
    /// Earlier `Via` entries.
    pub(crate) via: Option<&'a str>,
}

struct ViaValue<'a>(Option<&'a str>);

impl fmt::Display for ViaValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(prev) => write!(f, "{prev}, {VIA_VALUE}"),
            None => f.write_str(VIA_VALUE),
        }
    }
}

impl Forwarded<'_> {
    /// Calls `set` with each header, by its lower-case name, in a fixed order.
    pub(crate) fn each(&self, mut set: impl FnMut(&'static str, &dyn fmt::Display)) {
        set(X_FORWARDED_FOR, &self.fwd);
        set(X_FORWARDED_PROTO, &self.proto);
        set(X_FORWARDED_PORT, &self.port);
        set(X_REQUEST_START, &epoch_ms(self.received));
        set(X_REQUEST_ID, &self.request_id);
        set(VIA, &ViaValue(self.via));
    }
}

/// `at` (a moment ago) in milliseconds since the Unix epoch.
fn epoch_ms(at: Instant) -> u64 {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now_ms.saturating_sub(at.elapsed().as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"abcdefghijklmnopqrst"));
        assert!(valid_request_id(b"0123456789+/=-ABCDEFabcdef"));
        assert!(!valid_request_id(b"short"));
        assert!(!valid_request_id(b"has spaces in it, which is bad"));
        assert!(!valid_request_id(&[b'a'; 201]));
        assert_eq!(new_request_id().len(), 36);
    }

    #[test]
    fn keeps_the_client_chain_and_the_first_valid_id() {
        let mut seen = FromClient::default();
        for (name, value, router_sets) in [
            ("X-Forwarded-For", " 10.0.0.1 ", true),
            ("x-forwarded-for", "10.0.0.2", true),
            ("X-Request-Id", "short", true),
            ("X-Request-Id", "abcdefghijklmnopqrstu", true),
            ("X-Request-Id", "zzzzzzzzzzzzzzzzzzzzzz", true),
            ("Via", "1.0 a", true),
            ("via", " 1.1 b", true),
            ("X-Forwarded-Port", "1", true),
            ("Accept", "*/*", false),
        ] {
            assert_eq!(seen.note(name, value.as_bytes()), router_sets, "{name}");
        }
        let (fwd, id, via) = seen.finish("127.0.0.1");
        assert_eq!(fwd, "10.0.0.1, 10.0.0.2, 127.0.0.1");
        assert_eq!(id, "abcdefghijklmnopqrstu");
        assert_eq!(via.as_deref(), Some("1.0 a, 1.1 b"));
    }
}
