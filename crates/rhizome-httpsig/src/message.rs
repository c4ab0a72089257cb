//! The HTTP message as the signature sees it, in plain values any HTTP stack can produce: a
//! method string, an absolute target URI string, a status code, and (name, value) header
//! pairs. Owns the derivation of the component values of RFC 9421 section 2.2 from the target
//! URI and the canonicalization of field values (section 2.1).

use crate::error::AuthError;

/// Header fields in message order: (name in any case, value). A name may repeat.
pub type Headers<'a> = &'a [(&'a str, &'a str)];

/// An HTTP request: what a signature over it can cover.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method, case-sensitive (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The absolute target URI, `scheme://authority/path?query` (RFC 9110 section 7.1): a
    /// server rebuilds it from its scheme, the `Host` (or `:authority`) and the request target.
    pub target_uri: &'a str,
    /// The header fields.
    pub headers: Headers<'a>,
}

/// An HTTP response: what a signature over it can cover.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The three-digit status code.
    pub status: u16,
    /// The header fields.
    pub headers: Headers<'a>,
}

/// A target URI split into the parts the derived components use, already normalized
/// (RFC 9110 section 4.2.3: lowercase scheme and host, default port omitted, empty path `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetUri {
    pub scheme: String,
    pub authority: String,
    pub path: String,
    /// Without the leading `?`; `None` when the URI has no `?`.
    pub query: Option<String>,
}

/// Longest target URI accepted, in bytes.
pub const MAX_TARGET_URI: usize = 8192;

impl TargetUri {
    pub(crate) fn parse(uri: &str) -> Result<Self, AuthError> {
        let bad = |reason: &str| AuthError::malformed("target URI", reason);
        if uri.len() > MAX_TARGET_URI {
            return Err(AuthError::TooLarge {
                what: "target URI".into(),
            });
        }
        if !uri.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(bad("only printable ASCII without spaces is allowed"));
        }
        if uri.contains('#') {
            return Err(bad("a target URI has no fragment"));
        }
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| bad("not an absolute URI with an authority (scheme://...)"))?;
        let sb = scheme.as_bytes();
        let scheme_ok = sb.first().is_some_and(u8::is_ascii_alphabetic)
            && sb
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(bad("invalid scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(auth_end);
        let authority = normalize_authority(&scheme, authority)?;
        let (path, query) = match after.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (after, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Ok(TargetUri {
            scheme,
            authority,
            path: path.to_string(),
            query,
        })
    }

    /// `@target-uri`: the normalized absolute URI.
    pub(crate) fn target_uri(&self) -> String {
        let mut out = format!("{}://{}{}", self.scheme, self.authority, self.path);
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// `@query`: `?` and the query, or `?` alone when there is none.
    pub(crate) fn query_component(&self) -> String {
        format!("?{}", self.query.as_deref().unwrap_or(""))
    }

    /// `@request-target` in origin form: the path and, when present, `?` and the query.
    pub(crate) fn request_target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }
}

fn normalize_authority(scheme: &str, authority: &str) -> Result<String, AuthError> {
    let bad = |reason: &str| AuthError::malformed("target URI authority", reason);
    if authority.is_empty() {
        return Err(bad("empty"));
    }
    if authority.contains('@') {
        return Err(bad("user information is not allowed"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        if inside.is_empty()
            || !inside
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        {
            return Err(bad("invalid IPv6 literal"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() || host.bytes().any(|c| matches!(c, b'[' | b']' | b':')) {
            return Err(bad("invalid host"));
        }
        (host.to_ascii_lowercase(), port)
    };
    let default_port = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    match port {
        None | Some("") => Ok(host),
        Some(p) => {
            if p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad("invalid port"));
            }
            let n: u32 = p.parse().map_err(|_| bad("invalid port"))?;
            if n > 65535 {
                return Err(bad("port out of range"));
            }
            if Some(n) == default_port {
                Ok(host)
            } else {
                Ok(format!("{host}:{n}"))
            }
        }
    }
}

/// Checks that a method is an RFC 9110 token.
pub(crate) fn check_method(method: &str) -> Result<(), AuthError> {
    if method.is_empty() || method.len() > 64 || !method.bytes().all(crate::sfv::is_tchar) {
        return Err(AuthError::malformed("method", "not an HTTP token"));
    }
    Ok(())
}

/// The canonical component value of the field `name` (lowercase) per RFC 9421 section 2.1:
/// every field line with that name, in order, each stripped of leading and trailing
/// whitespace, joined with `", "`. `None` when the message has no such field.
///
/// A value with a control character (other than HTAB), a line break or a non-ASCII byte is
/// refused: RFC 9421 forbids them in a signature base, and HTTP stacks no longer send
/// obsolete line folding.
pub(crate) fn field_value(headers: Headers<'_>, name: &str) -> Result<Option<String>, AuthError> {
    let mut out: Option<String> = None;
    for (n, v) in headers {
        if !n.eq_ignore_ascii_case(name) {
            continue;
        }
        let v = v.trim_matches([' ', '\t']);
        if !v.bytes().all(|c| c == b'\t' || (0x20..=0x7e).contains(&c)) {
            return Err(AuthError::malformed(
                name,
                "field value has a control or non-ASCII character",
            ));
        }
        match &mut out {
            None => out = Some(v.to_string()),
            Some(acc) => {
                acc.push_str(", ");
                acc.push_str(v);
            }
        }
        if out.as_ref().is_some_and(|s| s.len() > crate::MAX_FIELD_LEN) {
            return Err(AuthError::TooLarge {
                what: format!("field {name}"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_uri_parts() {
        let u = TargetUri::parse("HTTPS://Example.COM:443/foo?param=Value&Pet=dog").unwrap();
        assert_eq!(
            u.target_uri(),
            "https://example.com/foo?param=Value&Pet=dog"
        );
        assert_eq!(u.authority, "example.com");
        assert_eq!(u.path, "/foo");
        assert_eq!(u.query_component(), "?param=Value&Pet=dog");
        assert_eq!(u.request_target(), "/foo?param=Value&Pet=dog");

        let u = TargetUri::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(u.target_uri(), "https://127.0.0.1:8443/");
        assert_eq!(u.query_component(), "?");
        assert_eq!(u.request_target(), "/");

        let u = TargetUri::parse("http://[::1]:80/v1/pull?").unwrap();
        assert_eq!(u.authority, "[::1]");
        assert_eq!(u.target_uri(), "http://[::1]/v1/pull?");
        assert_eq!(u.query_component(), "?");

        let u = TargetUri::parse("https://hub.example:8443/a%2Fb").unwrap();
        assert_eq!(u.authority, "hub.example:8443");
        assert_eq!(u.path, "/a%2Fb");

        for bad in [
            "/foo",
            "https:/x",
            "https://",
            "https:///path",
            "https://user@host/",
            "https://host/p#frag",
            "https://host:99999/",
            "https://host:12a/",
            "https://[::1/",
            "https://[zz]/",
            "https://host/a b",
            "1https://host/",
            "https://h\u{e9}/",
        ] {
            assert!(TargetUri::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn field_values_per_rfc9421_2_1() {
        // The RFC 9421 section 2.1 examples that a modern stack can deliver.
        let h = [
            ("Host", "www.example.com"),
            ("X-OWS-Header", "   Leading and trailing whitespace.   "),
            ("Cache-Control", "max-age=60"),
            ("Cache-Control", "   must-revalidate"),
            ("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)"),
            ("X-Empty-Header", ""),
        ];
        let f = |n| field_value(&h, n).unwrap();
        assert_eq!(f("host").as_deref(), Some("www.example.com"));
        assert_eq!(
            f("x-ows-header").as_deref(),
            Some("Leading and trailing whitespace.")
        );
        assert_eq!(
            f("cache-control").as_deref(),
            Some("max-age=60, must-revalidate")
        );
        assert_eq!(
            f("example-dict").as_deref(),
            Some("a=1,    b=2;x=1;y=2,   c=(a   b   c)")
        );
        assert_eq!(f("x-empty-header").as_deref(), Some(""));
        assert_eq!(f("absent"), None);
        assert!(field_value(&[("x", "a\r\nb")], "x").is_err());
        assert!(field_value(&[("x", "caf\u{e9}")], "x").is_err());
    }
}
