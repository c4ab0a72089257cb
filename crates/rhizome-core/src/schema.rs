//! The JSON Schemas of the eight known event types, kept in `crates/rhizome-core/schemas/`.
//!
//! A local user's new event must pass its type's schema. Imported events of unknown types, or
//! whose payload fails its schema, are still valid events (an older instance carries a newer
//! one's events); the views skip them.

use serde_json::Value;
use std::sync::OnceLock;

/// The event types this version understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A new post.
    Post,
    /// A comment on an event.
    Comment,
    /// A like.
    Like,
    /// A reshare.
    Reshare,
    /// Star or unstar.
    Star,
    /// A tag on an event.
    TagAdd,
    /// A change to a circle.
    CircleUpdate,
    /// The name an author goes by.
    Profile,
}

const SCHEMAS: [(Kind, &str, &str); 8] = [
    (Kind::Post, "POST", include_str!("../schemas/POST.json")),
    (
        Kind::Comment,
        "COMMENT",
        include_str!("../schemas/COMMENT.json"),
    ),
    (Kind::Like, "LIKE", include_str!("../schemas/LIKE.json")),
    (
        Kind::Reshare,
        "RESHARE",
        include_str!("../schemas/RESHARE.json"),
    ),
    (Kind::Star, "STAR", include_str!("../schemas/STAR.json")),
    (
        Kind::TagAdd,
        "TAG_ADD",
        include_str!("../schemas/TAG_ADD.json"),
    ),
    (
        Kind::CircleUpdate,
        "CIRCLE_UPDATE",
        include_str!("../schemas/CIRCLE_UPDATE.json"),
    ),
    (
        Kind::Profile,
        "PROFILE",
        include_str!("../schemas/PROFILE.json"),
    ),
];

impl Kind {
    /// Every known kind.
    pub const ALL: [Kind; 8] = [
        Kind::Post,
        Kind::Comment,
        Kind::Like,
        Kind::Reshare,
        Kind::Star,
        Kind::TagAdd,
        Kind::CircleUpdate,
        Kind::Profile,
    ];

    /// The kind named by an event type, if known.
    pub fn from_type(name: &str) -> Option<Kind> {
        SCHEMAS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, _)| *k)
    }
    /// The type name on the wire.
    pub fn name(self) -> &'static str {
        SCHEMAS[self as usize].1
    }
    /// The JSON Schema text.
    pub fn schema_text(self) -> &'static str {
        SCHEMAS[self as usize].2
    }
}

/// A payload that fails its type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload does not match the {kind} schema: {}", .errors.join("; "))]
pub struct SchemaError {
    /// The event type.
    pub kind: &'static str,
    /// Each violation, with the JSON pointer of the offending value.
    pub errors: Vec<String>,
}

fn validators() -> &'static Vec<jsonschema::Validator> {
    static V: OnceLock<Vec<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        SCHEMAS
            .iter()
            .map(|(_, name, text)| {
                // The schemas are compiled into the binary and tested; failure is a build bug.
                let schema: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("schema {name} is not JSON: {e}"));
                jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"))
            })
            .collect()
    })
}

/// Checks `payload` against the schema of `type_name`. `Ok(None)`: the type is unknown, so
/// there is no schema to check. `Ok(Some(kind))`: known and valid.
pub fn check(type_name: &str, payload: &Value) -> Result<Option<Kind>, SchemaError> {
    let Some(kind) = Kind::from_type(type_name) else {
        return Ok(None);
    };
    let errors: Vec<String> = validators()[kind as usize]
        .iter_errors(payload)
        .map(|e| {
            let path = e.instance_path().to_string();
            let at = if path.is_empty() {
                "/".to_string()
            } else {
                path
            };
            clip_middle(&format!("{at}: {e}"), MAX_ERROR_CHARS)
        })
        .collect();
    if errors.is_empty() {
        Ok(Some(kind))
    } else {
        Err(SchemaError {
            kind: kind.name(),
            errors,
        })
    }
}

/// Longest schema error message kept: the validator quotes the failing value, which may be
/// megabytes of text from elsewhere (views keep skip reasons, commands print them).
pub const MAX_ERROR_CHARS: usize = 200;

/// `text` if it has at most `max` characters; otherwise its start and its end (which says what
/// is wrong with the value quoted in between) around an ellipsis.
pub fn clip_middle(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_owned();
    }
    let half = max.saturating_sub(3) / 2;
    let head: String = text.chars().take(half).collect();
    let tail: String = text.chars().skip(n - half).collect();
    format!("{head} … {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_values_are_not_quoted_whole_in_errors() {
        let e = check("POST", &json!({"text": "x".repeat(100_000)})).unwrap_err();
        let msg = e.errors.join("; ");
        assert!(msg.chars().count() <= MAX_ERROR_CHARS, "{msg}");
        assert!(msg.starts_with("/text: \"xxx"), "{msg}");
        assert!(msg.ends_with("is longer than 10000 characters"), "{msg}");
        assert_eq!(clip_middle("short", 10), "short");
    }

    const H: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn every_schema_compiles_and_kinds_line_up() {
        assert_eq!(validators().len(), 8);
        for k in Kind::ALL {
            assert_eq!(Kind::from_type(k.name()), Some(k));
        }
    }

    #[test]
    fn valid_and_invalid_payloads() {
        assert_eq!(
            check("POST", &json!({"text": "hi", "lang": "en"})),
            Ok(Some(Kind::Post))
        );
        assert!(check("POST", &json!({"text": ""})).is_err());
        assert!(check("POST", &json!({"text": "x", "extra": 1})).is_err());
        assert!(check("COMMENT", &json!({"target": "nothex", "text": "x"})).is_err());
        assert!(check("STAR", &json!({"target": H, "starred": false})).is_ok());
        assert!(check("STAR", &json!({"target": H})).is_err());
        assert!(check("TAG_ADD", &json!({"target": H, "tag": "rust"})).is_ok());
        assert!(check("TAG_ADD", &json!({"target": H, "tag": "two words"})).is_err());
        assert!(check("CIRCLE_UPDATE", &json!({"circle": "fam", "op": "create"})).is_ok());
        assert!(check("CIRCLE_UPDATE", &json!({"circle": "fam", "op": "rename"})).is_err());
        assert!(check(
            "CIRCLE_UPDATE",
            &json!({"circle": "fam", "op": "add", "members": []})
        )
        .is_err());
        assert!(check(
            "CIRCLE_UPDATE",
            &json!({"circle": "fam", "op": "add", "members": [H]})
        )
        .is_ok());
        assert_eq!(check("FUTURE_THING", &json!({"anything": 1})), Ok(None));
    }

    #[test]
    fn salt_and_pad_only_inside_an_audience() {
        let salt = "ab".repeat(16);
        let audience = json!({"circle": "c", "members": [H], "salt": salt, "pad": "000"});
        for kind in ["POST", "COMMENT", "LIKE", "RESHARE", "STAR", "TAG_ADD"] {
            let mut p = json!({"target": H, "text": "x", "starred": true, "tag": "t"});
            let keep: &[&str] = match kind {
                "POST" => &["text"],
                "COMMENT" => &["target", "text"],
                "STAR" => &["target", "starred"],
                "TAG_ADD" => &["target", "tag"],
                _ => &["target"],
            };
            p.as_object_mut()
                .unwrap()
                .retain(|k, _| keep.contains(&k.as_str()));
            let mut limited = p.clone();
            limited["audience"] = audience.clone();
            assert!(check(kind, &limited).is_ok(), "{kind}");
            // Old limited payloads, without salt or pad, stay valid.
            let mut old = p.clone();
            old["audience"] = json!({"circle": "c", "members": [H]});
            assert!(check(kind, &old).is_ok(), "{kind}");
            // Outside an audience, neither is allowed.
            let mut top = p.clone();
            top["salt"] = json!(salt);
            assert!(check(kind, &top).is_err(), "{kind}");
            for (member, bad) in [
                ("salt", json!("ab".repeat(15))),
                ("salt", json!("AB".repeat(16))),
                ("salt", json!("abc".repeat(11))),
                ("pad", json!("0001")),
                ("pad", json!("0".repeat(65537))),
            ] {
                let mut v = limited.clone();
                v["audience"][member] = bad;
                assert!(check(kind, &v).is_err(), "{kind} {member}");
            }
        }
    }

    #[test]
    fn profile_names() {
        for ok in [
            json!({"name": "Ana"}),
            json!({"name": "Ana Lima", "about": "Teacher.\nLikes rain."}),
            json!({"name": "Zoë 李 ☀"}),
            json!({"name": "x".repeat(64), "about": "y".repeat(1000)}),
        ] {
            assert_eq!(check("PROFILE", &ok), Ok(Some(Kind::Profile)), "{ok}");
        }
        for bad in [
            json!({}),
            json!({"name": ""}),
            json!({"name": "x".repeat(65)}),
            json!({"name": " Ana"}),
            json!({"name": "Ana\t"}),
            json!({"name": "Ana\nLima"}),
            json!({"name": "Ana\u{1b}[2J"}),
            json!({"name": "Ana\u{9b}"}),
            json!({"name": "Ana\u{202e}amiL"}),
            json!({"name": "A\u{200b}na"}),
            json!({"name": "Ana\u{2066}"}),
            json!({"name": "\u{feff}Ana"}),
            json!({"name": 5}),
            json!({"name": "Ana", "about": ""}),
            json!({"name": "Ana", "about": "y".repeat(1001)}),
            json!({"name": "Ana", "audience": {"circle": "c", "members": []}}),
        ] {
            assert!(check("PROFILE", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        let e = check("COMMENT", &json!({"target": H, "text": 5})).unwrap_err();
        assert!(e.errors[0].starts_with("/text:"), "{e}");
    }
}
