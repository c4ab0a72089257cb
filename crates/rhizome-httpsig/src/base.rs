//! The signature base of RFC 9421 section 2.5: the one function that makes the bytes an HTTP
//! message signature signs ([`signature_base`]), the covered component identifiers
//! ([`Component`]) and the signature parameters ([`SignatureParams`], section 2.3), with
//! their serialization as an RFC 8941 Inner List.

use crate::error::AuthError;
use crate::message::{check_method, field_value, Request, Response, TargetUri};
use crate::sfv::{self, BareItem, InnerList, Item};
use crate::{MAX_BASE_LEN, MAX_COMPONENTS};

/// The derived components this crate can compute (RFC 9421 section 2.2). `@query-param` is
/// not among them.
pub const DERIVED: [&str; 8] = [
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
    "@status",
];

/// A covered component identifier: a derived component name or a lowercase field name,
/// optionally with the `req` flag (the value comes from the request a response answers).
/// No other component parameter (`sf`, `key`, `bs`, `tr`, `name`) is supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    name: String,
    req: bool,
}

impl Component {
    /// A component taken from the target message. Fails for an unknown derived name or a
    /// field name that is not a lowercase token.
    pub fn new(name: &str) -> Result<Self, AuthError> {
        Self::build(name, false)
    }

    /// A component taken from the request that the signed response answers (`;req`).
    pub fn from_request(name: &str) -> Result<Self, AuthError> {
        Self::build(name, true)
    }

    /// For the names this crate's policy uses, which are valid by construction.
    pub(crate) fn known(name: &'static str, req: bool) -> Self {
        Self {
            name: name.to_string(),
            req,
        }
    }

    fn build(name: &str, req: bool) -> Result<Self, AuthError> {
        let ok = if name.starts_with('@') {
            DERIVED.contains(&name) && !(req && name == "@status")
        } else {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|c| crate::sfv::is_tchar(c) && !c.is_ascii_uppercase())
        };
        if !ok {
            let mut shown = format!("{name:?}");
            if req {
                shown.push_str(";req");
            }
            return Err(AuthError::UnsupportedComponent { component: shown });
        }
        Ok(Self {
            name: name.to_string(),
            req,
        })
    }

    /// The component name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the value comes from the request (`req` flag).
    pub fn is_from_request(&self) -> bool {
        self.req
    }

    /// The component identifier as serialized in a signature base: `"name"` or `"name";req`.
    pub fn identifier(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        sfv::write_item(out, &self.to_item());
    }

    fn to_item(&self) -> Item {
        Item {
            bare: BareItem::String(self.name.clone()),
            params: if self.req {
                vec![("req".into(), BareItem::Boolean(true))]
            } else {
                Vec::new()
            },
        }
    }

    fn from_item(item: &Item) -> Result<Self, AuthError> {
        let BareItem::String(name) = &item.bare else {
            return Err(AuthError::malformed(
                "signature-input",
                "a covered component is not a string",
            ));
        };
        match item.params.as_slice() {
            [] => Self::new(name),
            [(k, BareItem::Boolean(true))] if k == "req" => Self::from_request(name),
            _ => {
                let mut shown = String::new();
                sfv::write_item(&mut shown, item);
                Err(AuthError::UnsupportedComponent { component: shown })
            }
        }
    }
}

/// A signature parameter (RFC 9421 section 2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// `created`: creation time, Unix seconds.
    Created(i64),
    /// `expires`: expiration time, Unix seconds.
    Expires(i64),
    /// `nonce`: a unique value for this signature.
    Nonce(String),
    /// `keyid`: the key's identifier.
    KeyId(String),
    /// `alg`: the algorithm (`ed25519` here).
    Alg(String),
    /// `tag`: an application-specific tag.
    Tag(String),
}

impl Param {
    /// The parameter's name.
    pub fn name(&self) -> &'static str {
        match self {
            Param::Created(_) => "created",
            Param::Expires(_) => "expires",
            Param::Nonce(_) => "nonce",
            Param::KeyId(_) => "keyid",
            Param::Alg(_) => "alg",
            Param::Tag(_) => "tag",
        }
    }

    fn to_bare(&self) -> BareItem {
        match self {
            Param::Created(t) | Param::Expires(t) => BareItem::Integer(*t),
            Param::Nonce(s) | Param::KeyId(s) | Param::Alg(s) | Param::Tag(s) => {
                BareItem::String(s.clone())
            }
        }
    }

    fn from_sfv(key: &str, value: &BareItem) -> Result<Self, AuthError> {
        let unsupported = || AuthError::UnsupportedParam { param: key.into() };
        match (key, value) {
            ("created", BareItem::Integer(t)) => Ok(Param::Created(*t)),
            ("expires", BareItem::Integer(t)) => Ok(Param::Expires(*t)),
            ("nonce", BareItem::String(s)) => Ok(Param::Nonce(s.clone())),
            ("keyid", BareItem::String(s)) => Ok(Param::KeyId(s.clone())),
            ("alg", BareItem::String(s)) => Ok(Param::Alg(s.clone())),
            ("tag", BareItem::String(s)) => Ok(Param::Tag(s.clone())),
            _ => Err(unsupported()),
        }
    }
}

/// What a signature covers and says about itself: the ordered covered components and the
/// ordered parameters. Its [`serialize`](SignatureParams::serialize) is both the value of
/// the `@signature-params` line and the value of the `Signature-Input` member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    components: Vec<Component>,
    params: Vec<Param>,
}

impl SignatureParams {
    /// Checks that no component or parameter repeats, that there are at most
    /// [`MAX_COMPONENTS`](crate::MAX_COMPONENTS) components, that integers fit RFC 8941 and
    /// that strings are printable ASCII.
    pub fn new(components: Vec<Component>, params: Vec<Param>) -> Result<Self, AuthError> {
        if components.len() > MAX_COMPONENTS {
            return Err(AuthError::TooLarge {
                what: format!(
                    "covered components ({} > {MAX_COMPONENTS})",
                    components.len()
                ),
            });
        }
        for (i, c) in components.iter().enumerate() {
            if components[..i].contains(c) {
                return Err(AuthError::malformed(
                    "signature-input",
                    format!("component {} is covered twice", c.identifier()),
                ));
            }
        }
        for (i, p) in params.iter().enumerate() {
            if params[..i].iter().any(|q| q.name() == p.name()) {
                return Err(AuthError::malformed(
                    "signature-input",
                    format!("parameter {} occurs twice", p.name()),
                ));
            }
            if !sfv::check_bare(&p.to_bare()) {
                return Err(AuthError::malformed(
                    p.name(),
                    "not representable (integer over 15 digits, or string not printable ASCII)",
                ));
            }
        }
        Ok(Self { components, params })
    }

    /// The covered components, in order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// The parameters, in order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Whether `component` is covered.
    pub fn covers(&self, component: &Component) -> bool {
        self.components.contains(component)
    }

    /// `created`, if present.
    pub fn created(&self) -> Option<i64> {
        self.params.iter().find_map(|p| match p {
            Param::Created(t) => Some(*t),
            _ => None,
        })
    }

    /// `expires`, if present.
    pub fn expires(&self) -> Option<i64> {
        self.params.iter().find_map(|p| match p {
            Param::Expires(t) => Some(*t),
            _ => None,
        })
    }

    fn string_param(&self, name: &str) -> Option<&str> {
        self.params.iter().find_map(|p| match p {
            Param::Nonce(s) | Param::KeyId(s) | Param::Alg(s) | Param::Tag(s)
                if p.name() == name =>
            {
                Some(s.as_str())
            }
            _ => None,
        })
    }

    /// `nonce`, if present.
    pub fn nonce(&self) -> Option<&str> {
        self.string_param("nonce")
    }

    /// `keyid`, if present.
    pub fn keyid(&self) -> Option<&str> {
        self.string_param("keyid")
    }

    /// `alg`, if present.
    pub fn alg(&self) -> Option<&str> {
        self.string_param("alg")
    }

    /// `tag`, if present.
    pub fn tag(&self) -> Option<&str> {
        self.string_param("tag")
    }

    /// The strict RFC 8941 serialization as a parameterized Inner List (RFC 9421 section
    /// 2.3), e.g. `("@method" "@target-uri");created=1;keyid="k"`.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        sfv::write_inner_list(&mut out, &self.to_inner_list());
        out
    }

    pub(crate) fn to_inner_list(&self) -> InnerList {
        InnerList {
            items: self.components.iter().map(Component::to_item).collect(),
            params: self
                .params
                .iter()
                .map(|p| (p.name().to_string(), p.to_bare()))
                .collect(),
        }
    }

    pub(crate) fn from_inner_list(list: &InnerList) -> Result<Self, AuthError> {
        let components = list
            .items
            .iter()
            .map(Component::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let params = list
            .params
            .iter()
            .map(|(k, v)| Param::from_sfv(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(components, params)
    }

    /// Parses one `Signature-Input` member value (an Inner List with parameters) strictly.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let list = sfv::parse_inner_list(value, crate::signature::FIELD_LIMITS)
            .map_err(|e| AuthError::from_sfv("signature-input", e))?;
        Self::from_inner_list(&list)
    }
}

/// The message a signature is made for: a request, or a response (with, for components
/// flagged `req`, the request it answers).
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// A request.
    Request(Request<'a>),
    /// A response, and the request it answers if the signature covers request components.
    Response {
        /// The response.
        response: Response<'a>,
        /// The request it answers.
        request: Option<Request<'a>>,
    },
}

fn derived_value(name: &str, req: &Request<'_>) -> Result<String, AuthError> {
    if name == "@method" {
        check_method(req.method)?;
        return Ok(req.method.to_string());
    }
    let uri = TargetUri::parse(req.target_uri)?;
    Ok(match name {
        "@target-uri" => uri.target_uri(),
        "@authority" => uri.authority,
        "@scheme" => uri.scheme,
        "@request-target" => uri.request_target(),
        "@path" => uri.path,
        "@query" => uri.query_component(),
        other => {
            return Err(AuthError::UnsupportedComponent {
                component: format!("{other:?}"),
            })
        }
    })
}

fn component_value(msg: &Message<'_>, c: &Component) -> Result<String, AuthError> {
    let not_applicable = || AuthError::UnsupportedComponent {
        component: c.identifier(),
    };
    let missing = || AuthError::MissingHeader {
        name: c.name.clone(),
    };
    match (msg, c.req) {
        (Message::Request(_), true) => Err(not_applicable()),
        (Message::Response { request: None, .. }, true) => Err(not_applicable()),
        (
            Message::Response {
                request: Some(r), ..
            },
            true,
        )
        | (Message::Request(r), false) => {
            if c.name == "@status" {
                Err(not_applicable())
            } else if c.name.starts_with('@') {
                derived_value(&c.name, r)
            } else {
                field_value(r.headers, &c.name)?.ok_or_else(missing)
            }
        }
        (Message::Response { response, .. }, false) => {
            if c.name == "@status" {
                if !(100..=999).contains(&response.status) {
                    return Err(AuthError::malformed("@status", "not a three-digit code"));
                }
                Ok(response.status.to_string())
            } else if c.name.starts_with('@') {
                // Request-only derived components need `req` on a response.
                Err(not_applicable())
            } else {
                field_value(response.headers, &c.name)?.ok_or_else(missing)
            }
        }
    }
}

/// Builds the signature base of RFC 9421 section 2.5 for `params` over `msg`: one line
/// `"identifier": value` per covered component, in order, each followed by `\n`, then
/// `"@signature-params": ` and the serialized parameters, with no final newline.
///
/// Fails if a covered component does not apply to the message, a covered field is absent, or
/// a value is malformed. This is the only function that makes the bytes a signature signs.
pub fn signature_base(msg: &Message<'_>, params: &SignatureParams) -> Result<String, AuthError> {
    let mut out = String::new();
    for c in &params.components {
        let value = component_value(msg, c)?;
        c.write(&mut out);
        out.push_str(": ");
        out.push_str(&value);
        out.push('\n');
        if out.len() > MAX_BASE_LEN {
            return Err(AuthError::TooLarge {
                what: "signature base".into(),
            });
        }
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(&params.serialize());
    // Every value was checked to be printable ASCII (or HTAB inside field values).
    debug_assert!(out.is_ascii());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_names() {
        assert!(Component::new("@method").is_ok());
        assert!(Component::new("content-digest").is_ok());
        assert!(Component::new("Content-Digest").is_err());
        assert!(Component::new("@signature-params").is_err());
        assert!(Component::new("@query-param").is_err());
        assert!(Component::new("").is_err());
        assert!(Component::new("a b").is_err());
        assert!(Component::from_request("@status").is_err());
        assert_eq!(
            Component::from_request("@method").unwrap().identifier(),
            "\"@method\";req"
        );
    }

    #[test]
    fn params_round_trip_and_refusals() {
        let text = r#"("@method" "@target-uri" "content-digest");created=1618884473;expires=1618884773;nonce="abc";keyid="k";alg="ed25519";tag="t""#;
        let p = SignatureParams::parse(text).unwrap();
        assert_eq!(p.serialize(), text);
        assert_eq!(p.created(), Some(1618884473));
        assert_eq!(p.expires(), Some(1618884773));
        assert_eq!(p.nonce(), Some("abc"));
        assert_eq!(p.keyid(), Some("k"));
        assert_eq!(p.alg(), Some("ed25519"));
        assert_eq!(p.tag(), Some("t"));
        for bad in [
            r#"("@method" "@method")"#,
            r#"("@method");created=1;created=2"#,
            r#"("@method");created="1""#,
            r#"("@method");keyid=k"#,
            r#"("@method");unknown=1"#,
            r#"("@method";sf)"#,
            r#"("@method";req=?0)"#,
            r#"(@method)"#,
            r#"("Host")"#,
            r#"("@method") "#,
            r#"x=("@method")"#,
        ] {
            assert!(SignatureParams::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
