//! Blocking client for the Hoist (Heroku Platform API v3) HTTP API.

use crate::error::{ApiFailure, CliError, CliResult};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

pub const ACCEPT: &str = "application/vnd.heroku+json; version=3";
const USER_AGENT: &str = concat!("hoist-cli/", env!("CARGO_PKG_VERSION"));
/// Ordinary API calls; streams (logs, build output) have no overall timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Pages followed through `Next-Range` before giving up (a server bug could loop).
const MAX_PAGES: usize = 1000;

/// Characters escaped in one path segment (app names are safe; emails, URLs and
/// hostnames used as identifiers may not be).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// Percent-encodes one path segment.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

pub struct Response {
    pub headers: HeaderMap,
    pub body: Value,
}

/// How a request authenticates.
pub enum Auth<'a> {
    Bearer,
    Basic(&'a str, &'a str),
    Token(&'a str),
}

pub struct Api {
    base: String,
    token: Option<String>,
    http: Client,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> CliResult<Self> {
        let mut builder = Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .timeout(None);
        // A proxy from the environment must not capture a platform on this machine.
        if is_loopback(base) {
            builder = builder.no_proxy();
        }
        let http = builder
            .build()
            .map_err(|e| CliError::failed(format!("Could not set up the HTTP client: {e}")))?;
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn http(&self) -> &Client {
        &self.http
    }

    pub fn require_token(&self) -> CliResult<&str> {
        self.token.as_deref().ok_or_else(|| {
            CliError::usage("Not logged in. Run \"hoist login\" or set HOIST_API_KEY.")
        })
    }

    fn builder(&self, method: Method, path: &str, auth: Auth<'_>) -> CliResult<RequestBuilder> {
        let url = format!("{}{}", self.base, path);
        let rb = self
            .http
            .request(method, url)
            .header("Accept", ACCEPT)
            .timeout(CALL_TIMEOUT);
        Ok(match auth {
            Auth::Bearer => rb.bearer_auth(self.require_token()?),
            Auth::Token(t) => rb.bearer_auth(t),
            Auth::Basic(user, pass) => rb.basic_auth(user, Some(pass)),
        })
    }

    /// Sends one request; non-2xx answers become [`CliError::Api`].
    pub fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        range: Option<&str>,
        auth: Auth<'_>,
    ) -> CliResult<Response> {
        let mut rb = self.builder(method.clone(), path, auth)?;
        if let Some(r) = range {
            rb = rb.header("Range", r);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().map_err(|e| network_error(&self.base, &e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp
            .text()
            .map_err(|e| CliError::failed(format!("Reading the API response failed: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(CliError::Api(api_failure(
                status,
                &method,
                &format!("{}{}", self.base, path),
                &text,
            )));
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| {
                CliError::failed(format!(
                    "The API sent a response that is not JSON ({e}) for {method} {path}."
                ))
            })?
        };
        Ok(Response { headers, body })
    }

    pub fn send(&self, method: Method, path: &str, body: Option<&Value>) -> CliResult<Value> {
        Ok(self.send_with(method, path, body, None, Auth::Bearer)?.body)
    }

    pub fn get(&self, path: &str) -> CliResult<Value> {
        self.send(Method::GET, path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.send(Method::POST, path, Some(body))
    }
    pub fn patch(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.send(Method::PATCH, path, Some(body))
    }
    pub fn put(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.send(Method::PUT, path, Some(body))
    }
    pub fn delete(&self, path: &str) -> CliResult<Value> {
        self.send(Method::DELETE, path, None)
    }

    /// One page of a list with an explicit `Range` (no `Next-Range` following).
    pub fn get_page(&self, path: &str, range: &str) -> CliResult<Vec<Value>> {
        let r = self.send_with(Method::GET, path, None, Some(range), Auth::Bearer)?;
        Ok(as_list(r.body))
    }

    /// A whole list: follows `Next-Range` and appends each page.
    pub fn get_all(&self, path: &str, range: Option<&str>) -> CliResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut range = range.map(str::to_string);
        for _ in 0..MAX_PAGES {
            let r = self.send_with(Method::GET, path, None, range.as_deref(), Auth::Bearer)?;
            let next = r
                .headers
                .get("next-range")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            out.extend(as_list(r.body));
            match next {
                Some(n) if Some(&n) != range.as_ref() => range = Some(n),
                _ => return Ok(out),
            }
        }
        Err(CliError::failed(format!(
            "The API kept paginating {path}; stopped after {MAX_PAGES} pages."
        )))
    }

    /// True when `url` is on the API's own origin, so the token may be sent there.
    pub fn same_origin(&self, url: &str) -> bool {
        match (url::Url::parse(url), url::Url::parse(&self.base)) {
            (Ok(a), Ok(b)) => a.origin() == b.origin(),
            _ => false,
        }
    }

    /// A GET for a long-lived stream (build output): no timeout; the token is only
    /// attached on the API's own origin.
    pub fn open_stream(&self, url: &str, accept: &str) -> CliResult<reqwest::blocking::Response> {
        let mut rb = self.http.get(url).header("Accept", accept);
        if self.same_origin(url) {
            if let Some(t) = &self.token {
                rb = rb.bearer_auth(t);
            }
        }
        let resp = rb.send().map_err(|e| network_error(url, &e))?;
        check_status(resp, "GET", url)
    }
}

fn is_loopback(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Turns a non-2xx streaming response into an API error.
pub fn check_status(
    resp: reqwest::blocking::Response,
    method: &str,
    url: &str,
) -> CliResult<reqwest::blocking::Response> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let text = resp.text().unwrap_or_default();
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    Err(CliError::Api(api_failure(status, &method, url, &text)))
}

fn as_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Builds the error for a failed response from its `{"id","message"}` body, or a
/// raw description when the body has no message.
pub fn api_failure(status: u16, method: &Method, url: &str, body: &str) -> ApiFailure {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let app = parsed
        .as_ref()
        .and_then(|v| v.pointer("/app/name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // The server's catch-all 404 (`resource: "resource"`) means it lacks the route.
    let unknown_route = status == 404 && field("resource").as_deref() == Some("resource");
    match field("message") {
        Some(message) if unknown_route => ApiFailure {
            status,
            id: field("id"),
            message: format!("{message}\nThis Hoist server does not support {method} {url} yet."),
            app,
            url: field("url"),
        },
        Some(message) => ApiFailure {
            status,
            id: field("id"),
            message,
            app,
            url: field("url"),
        },
        None => {
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let hint = match status {
                404 | 405 | 501 => "\nThis Hoist server does not support this request (is it older than this CLI?).",
                _ => "",
            };
            ApiFailure {
                status,
                id: None,
                message: format!("HTTP Error {status} {reason} for {method} {url}{hint}"),
                app: None,
                url: None,
            }
        }
    }
}

pub fn network_error(target: &str, e: &reqwest::Error) -> CliError {
    if e.is_connect() {
        CliError::failed(format!(
            "Could not connect to the Hoist API at {target}. Is `hoist server` running? Set HOIST_API_URL to its address."
        ))
    } else if e.is_timeout() {
        CliError::failed(format!("The request to {target} timed out."))
    } else {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        CliError::failed(format!("Request to {target} failed: {msg}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        assert!(is_loopback("http://127.0.0.1:5000"));
        assert!(is_loopback("http://localhost:5000"));
        assert!(is_loopback("http://[::1]:5000"));
        assert!(!is_loopback("https://paas.example.org"));
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(seg("demo"), "demo");
        assert_eq!(seg("me+x@ex.com"), "me+x@ex.com");
        assert_eq!(seg("https://logs.x/a?b"), "https:%2F%2Flogs.x%2Fa%3Fb");
    }

    #[test]
    fn failure_from_json_and_raw_bodies() {
        let f = api_failure(
            404,
            &Method::GET,
            "http://h/apps/x",
            r#"{"id":"not_found","message":"Couldn't find that app.","resource":"app"}"#,
        );
        assert_eq!(f.id.as_deref(), Some("not_found"));
        assert_eq!(f.message, "Couldn't find that app.");
        let f = api_failure(405, &Method::DELETE, "http://h/apps/x/dynos", "");
        assert!(f.id.is_none());
        assert!(
            f.message
                .starts_with("HTTP Error 405 Method Not Allowed for DELETE http://h/apps/x/dynos"),
            "{}",
            f.message
        );
    }
}
