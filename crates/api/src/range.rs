//! `Range` / `Next-Range` pagination as the Heroku Platform API does it:
//! `Range: <field> [<first>]..[<last>][; max=<n>][, order=asc|desc]`, with `]first..`
//! for an exclusive start. The CLI sends several spellings; all are accepted.

use crate::error::ApiError;

pub const DEFAULT_MAX: usize = 200;
pub const LIMIT_MAX: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSpec {
    pub field: String,
    pub first: Option<String>,
    pub first_exclusive: bool,
    pub last: Option<String>,
    pub max: usize,
    pub desc: bool,
}

impl RangeSpec {
    pub fn default_for(field: &str) -> Self {
        RangeSpec {
            field: field.to_string(),
            first: None,
            first_exclusive: false,
            last: None,
            max: DEFAULT_MAX,
            desc: false,
        }
    }

    /// The `Next-Range` value continuing after `last_value`.
    pub fn next(&self, last_value: &str) -> String {
        format!(
            "{} ]{}..; max={}, order={}",
            self.field,
            last_value,
            self.max,
            if self.desc { "desc" } else { "asc" }
        )
    }
}

/// Parses a Range header; `None` or an empty value gives the default for `default_field`.
/// `allowed` lists the fields this list can be sorted by.
pub fn parse_range(
    header: Option<&str>,
    default_field: &str,
    allowed: &[&str],
) -> Result<RangeSpec, ApiError> {
    let raw = header.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(RangeSpec::default_for(default_field));
    }
    let bad = || {
        ApiError::bad_request(format!(
            "Invalid Range header {:?}. Expected e.g. `{default_field} ..; max=200, order=asc`.",
            raw.chars().take(100).collect::<String>()
        ))
    };
    // Split "<field> <range>" from the options after the first ';'.
    let (head, opts) = match raw.split_once(';') {
        Some((h, o)) => (h.trim(), o),
        None => (raw, ""),
    };
    let (field, span) = match head.split_once(char::is_whitespace) {
        Some((f, s)) => (f.trim(), s.trim()),
        None => (head, ".."),
    };
    if field.is_empty()
        || !field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(bad());
    }
    if !allowed.contains(&field) {
        return Err(ApiError::new(
            axum::http::StatusCode::RANGE_NOT_SATISFIABLE,
            "requested_range_not_satisfiable",
            format!(
                "Cannot sort by {field:?}; use one of: {}.",
                allowed.join(", ")
            ),
        ));
    }
    let (first_raw, last_raw) = span.split_once("..").ok_or_else(bad)?;
    let (first_raw, first_exclusive) = match first_raw.trim().strip_prefix(']') {
        Some(f) => (f, true),
        None => (first_raw.trim(), false),
    };
    let nonempty = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    let mut spec = RangeSpec {
        field: field.to_string(),
        first: nonempty(first_raw),
        first_exclusive,
        last: nonempty(last_raw),
        max: DEFAULT_MAX,
        desc: false,
    };
    for opt in opts.split([',', ';']) {
        let opt = opt.trim();
        if opt.is_empty() {
            continue;
        }
        let (k, v) = opt.split_once('=').ok_or_else(bad)?;
        match (k.trim(), v.trim()) {
            ("max", n) => {
                let n: usize = n.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                spec.max = n.min(LIMIT_MAX);
            }
            ("order", "asc") => spec.desc = false,
            ("order", "desc") => spec.desc = true,
            _ => return Err(bad()),
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RangeSpec {
        parse_range(Some(s), "id", &["id", "name", "version", "created_at"]).unwrap()
    }

    #[test]
    fn accepts_every_spelling_the_cli_sends() {
        let r = p("version ..; max=15, order=desc");
        assert_eq!((r.max, r.desc, r.field.as_str()), (15, true, "version"));
        let r = p("version ..; order=desc,max=1");
        assert_eq!((r.max, r.desc), (1, true));
        let r = p("id ..; max=1000;");
        assert_eq!(r.max, 1000);
        let r = p("created_at ..; max=15, order=desc");
        assert!(r.desc);
        let r = p("id ]abc..; max=1");
        assert_eq!((r.first.as_deref(), r.first_exclusive), (Some("abc"), true));
        let r = p("name a..z");
        assert_eq!(
            (r.first.as_deref(), r.last.as_deref()),
            (Some("a"), Some("z"))
        );
        assert_eq!(
            parse_range(Some(""), "id", &["id"]).unwrap(),
            RangeSpec::default_for("id")
        );
        assert_eq!(p("id ..; max=99999").max, LIMIT_MAX);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "id ..; max=abc",
            "id ..; max=0",
            "id ..; bogus=1",
            "id xx",
            "!!! ..",
            "id ..; order=up",
        ] {
            assert!(parse_range(Some(bad), "id", &["id"]).is_err(), "{bad}");
        }
        let e = parse_range(Some("size .."), "id", &["id"]).unwrap_err();
        assert_eq!(e.status.as_u16(), 416);
    }
}
