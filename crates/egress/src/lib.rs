//! The daemon's outbound connections to addresses a tenant chose: source and buildpack
//! URLs, log drains, app webhooks, add-on partner APIs. Each goes through
//! [`EgressPolicy`], which refuses the platform's own side of the network (loopback,
//! link-local, private and other non-public ranges, and any subnet the operator adds,
//! such as the dyno bridge) unless the operator allowed that host by name
//! (`--allow-internal-url`). Without it a tenant could make the daemon fetch
//! `http://169.254.169.254/` or post logs to `127.0.0.1:5000` (blind SSRF).
//!
//! Names are checked after resolution, and HTTP clients built here resolve through the
//! policy and check every redirect, so a name that resolves (or re-resolves) to an
//! internal address is refused too. **This crate must not open a connection that
//! [`EgressPolicy::resolve`] did not check.**

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use url::{Host, Url};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    Unspecified,
    Loopback,
    LinkLocal,
    Private,
    SharedCgnat,
    Multicast,
    Reserved,
    /// A subnet the operator added (e.g. the dyno bridge).
    Platform,
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Internal::Unspecified => "an unspecified address",
            Internal::Loopback => "a loopback address",
            Internal::LinkLocal => "a link-local address",
            Internal::Private => "a private address",
            Internal::SharedCgnat => "a carrier-grade NAT address",
            Internal::Multicast => "a multicast address",
            Internal::Reserved => "a reserved address",
            Internal::Platform => "an address of the platform's own network",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("{host} resolves to {addr}, {class}; Hoist does not connect there (an operator can allow this host with --allow-internal-url)")]
    Refused {
        host: String,
        addr: IpAddr,
        class: Internal,
    },
    #[error("couldn't resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} resolves to no address")]
    NoAddress(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("--allow-internal-url {0:?} is not a host name, an IP address or a URL")]
    BadAllowance(String),
}

/// A subnet: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Subnet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let bits = usize::from(prefix).min(net.len() * 8);
    let (whole, rest) = (bits / 8, bits % 8);
    if net[..whole] != ip[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        net[whole] & mask == ip[whole] & mask
    }
}

#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Hosts (lower-case names or IP literals as written in URLs) the operator trusts.
    allowed_hosts: Vec<String>,
    platform_subnets: Vec<Subnet>,
}

impl EgressPolicy {
    /// Refuses every internal address; nothing allowed.
    pub fn strict() -> EgressPolicy {
        EgressPolicy::default()
    }

    /// Trusts one host, given as a name, an IP address or a URL naming it.
    pub fn allow(mut self, spec: &str) -> Result<EgressPolicy, EgressError> {
        let spec = spec.trim();
        let host = if spec.contains("://") {
            Url::parse(spec)
                .ok()
                .and_then(|u| u.host().map(host_key))
                .ok_or_else(|| EgressError::BadAllowance(spec.to_owned()))?
        } else {
            Url::parse(&format!("http://{spec}/"))
                .ok()
                .filter(|u| u.port().is_none() && u.path() == "/")
                .and_then(|u| u.host().map(host_key))
                .ok_or_else(|| EgressError::BadAllowance(spec.to_owned()))?
        };
        self.allowed_hosts.push(host);
        Ok(self)
    }

    /// Adds a subnet of the platform's own network to what is refused.
    pub fn deny_subnet(mut self, subnet: Subnet) -> EgressPolicy {
        self.platform_subnets.push(subnet);
        self
    }

    pub fn is_allowed_host(&self, host: &str) -> bool {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.contains(&key)
    }

    /// Whether `ip` is on the platform's side of the network, and why.
    pub fn classify(&self, ip: IpAddr) -> Option<Internal> {
        if self.platform_subnets.iter().any(|s| s.contains(ip)) {
            return Some(Internal::Platform);
        }
        classify(ip)
    }

    /// Checks one address `host` resolved to.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        match self.classify(ip) {
            Some(class) if !self.is_allowed_host(host) => Err(EgressError::Refused {
                host: host.to_owned(),
                addr: ip,
                class,
            }),
            _ => Ok(()),
        }
    }

    /// Checks a URL whose host is an IP literal without resolving anything; a name is
    /// left to [`EgressPolicy::resolve`] (HTTP clients built here do that themselves).
    pub fn check_literal(&self, url: &Url) -> Result<(), EgressError> {
        match url.host() {
            None => Err(EgressError::NoHost),
            Some(Host::Domain(_)) => Ok(()),
            Some(h @ Host::Ipv4(ip)) => self.check(&host_key(h), IpAddr::V4(ip)),
            Some(h @ Host::Ipv6(ip)) => self.check(&host_key(h), IpAddr::V6(ip)),
        }
    }

    /// Resolves `host` and refuses it if any address it has is internal (a name with
    /// one public and one internal address is refused: the connection could take either).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = bare_host(host);
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|source| resolve_error(bare, source))?
                .collect(),
        };
        self.vet(bare, addrs)
    }

    /// [`EgressPolicy::resolve`] for blocking code (not on an async runtime thread).
    pub fn resolve_blocking(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        use std::net::ToSocketAddrs;
        let bare = bare_host(host);
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port)
                .to_socket_addrs()
                .map_err(|source| resolve_error(bare, source))?
                .collect(),
        };
        self.vet(bare, addrs)
    }

    fn vet(&self, bare: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, EgressError> {
        if addrs.is_empty() {
            return Err(EgressError::NoAddress(bare.to_owned()));
        }
        for a in &addrs {
            self.check(bare, a.ip())?;
        }
        Ok(addrs)
    }

    /// Checks a URL before a request, resolving its host: gives the clear error up front
    /// (the client's own resolver would refuse too, with reqwest's wording around it).
    pub async fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        self.check_literal(url)?;
        let host = url.host_str().ok_or(EgressError::NoHost)?;
        self.resolve(host, url.port_or_known_default().unwrap_or(443))
            .await
            .map(drop)
    }

    /// An async HTTP client builder that resolves through this policy and checks every
    /// redirect hop. Callers add timeouts and build it.
    pub fn http_client(self: &Arc<Self>) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(self.clone())))
            .redirect(self.redirect_policy())
    }

    /// The blocking twin of [`EgressPolicy::http_client`].
    pub fn blocking_http_client(self: &Arc<Self>) -> reqwest::blocking::ClientBuilder {
        reqwest::blocking::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(self.clone())))
            .redirect(self.redirect_policy())
    }

    fn redirect_policy(self: &Arc<Self>) -> reqwest::redirect::Policy {
        let policy = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("too many redirects");
            }
            // Names are checked by the resolver; IP literals never reach it.
            match policy.check_literal(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e),
            }
        })
    }
}

/// `[::1]` -> `::1`: URLs bracket IPv6 literals, resolvers do not.
fn bare_host(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

fn resolve_error(host: &str, source: std::io::Error) -> EgressError {
    EgressError::Resolve {
        host: host.to_owned(),
        source,
    }
}

/// The key a host is allowed under: lower-case name or the literal as URLs write it.
fn host_key(h: Host<&str>) -> String {
    match h {
        Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

struct PolicyResolver(Arc<EgressPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            // reqwest replaces the port with the URL's own.
            let addrs = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Non-public ranges (IANA special-purpose registries), IPv4-in-IPv6 forms included.
pub fn classify(ip: IpAddr) -> Option<Internal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Internal> {
    let o = ip.octets();
    Some(match o {
        [0, ..] => Internal::Unspecified,
        [127, ..] => Internal::Loopback,
        [169, 254, ..] => Internal::LinkLocal,
        [10, ..] | [192, 168, ..] => Internal::Private,
        [172, b, ..] if (16..32).contains(&b) => Internal::Private,
        [100, b, ..] if (64..128).contains(&b) => Internal::SharedCgnat,
        [a, ..] if (224..240).contains(&a) => Internal::Multicast,
        [a, ..] if a >= 240 => Internal::Reserved,
        [192, 0, 0, _] | [198, 18..=19, ..] => Internal::Reserved,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Internal> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some(Internal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Internal::Loopback);
    }
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), 64:ff9b::a.b.c.d (NAT64).
    let embedded = matches!(s, [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _])
        || matches!(s, [0x64, 0xff9b, 0, 0, 0, 0, _, _]);
    if embedded {
        let [.., hi, lo] = s;
        return classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    Some(match s[0] {
        x if x & 0xffc0 == 0xfe80 => Internal::LinkLocal,
        x if x & 0xffc0 == 0xfec0 => Internal::Private, // deprecated site-local
        x if x & 0xfe00 == 0xfc00 => Internal::Private, // unique local
        x if x & 0xff00 == 0xff00 => Internal::Multicast,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
