//! Hostile input never panics and stays bounded: the RFC 8941 parser and the request verifier
//! over arbitrary field values, methods and URIs (a proptest-driven stand-in for fuzzing);
//! and what the parser accepts re-serializes to a value it parses to the same thing.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rhizome_core::keys::SecretKey;
use rhizome_httpsig::sfv::{
    parse_dictionary, write_inner_list, write_item, write_params, BareItem, Dictionary, Limits,
    Member,
};
use rhizome_httpsig::{verify_request, AuthError, ContentDigest, Policy};

const L: Limits = Limits {
    max_input: 2048,
    max_members: 8,
    max_inner_items: 16,
    max_params: 8,
};

fn serialize(d: &Dictionary) -> String {
    let mut out = String::new();
    for (i, (k, m)) in d.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        match m {
            Member::Item(it) if it.bare == BareItem::Boolean(true) => {
                write_params(&mut out, &it.params)
            }
            Member::Item(it) => {
                out.push('=');
                write_item(&mut out, it)
            }
            Member::InnerList(l) => {
                out.push('=');
                write_inner_list(&mut out, l)
            }
        }
    }
    out
}

/// A regex for RFC 8941 dictionaries (valid but for repeated keys), built from its grammar.
fn dictionary_regex() -> String {
    let bare = r#"(\?[01]|-?[0-9]{1,15}|-?[0-9]{1,12}\.[0-9]{1,3}|"[a-zA-Z0-9 ]{0,8}"|:(AAAA|YQ==|YWI=|):|[a-zA-Z*][a-z0-9:/]{0,4})"#;
    let params = format!("(;[a-z][a-z0-9]{{0,2}}(={bare})?){{0,2}}");
    let value = format!("({bare}|\\(({bare}{params}( {bare}{params}){{0,3}})?\\))");
    let member = format!("[a-z][a-z0-9]{{0,3}}(={value})?{params}");
    format!("{member}(, {member}){{0,4}}")
}

/// Strings made mostly of the characters RFC 8941 gives meaning to, dictionaries from its
/// grammar, and arbitrary strings.
fn sfv_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9=;:,()\"?*. \\-+/@%\\\\]{0,120}",
        proptest::string::string_regex(&dictionary_regex()).unwrap(),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_and_round_trips(input in sfv_like()) {
        if let Ok(d) = parse_dictionary(&input, L) {
            let again = serialize(&d);
            let reparsed = parse_dictionary(&again, L);
            prop_assert_eq!(reparsed.as_ref(), Ok(&d), "{:?} -> {:?}", input, again);
        }
    }

    #[test]
    fn content_digest_parser_never_panics(input in sfv_like()) {
        let _ = ContentDigest::parse(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn verifier_never_panics(
        method in "[ -~]{0,12}",
        uri in prop_oneof!["https://[a-z.:\\[\\]0-9@#]{0,20}/[ -~]{0,20}", any::<String>()],
        input in sfv_like(),
        sig in sfv_like(),
        digest in sfv_like(),
        has_body in any::<bool>(),
        now in any::<i64>(),
    ) {
        let labelled_input = format!("rz={input}");
        let labelled_sig = format!("rz={sig}");
        for (i, s) in [(&input, &sig), (&labelled_input, &labelled_sig)] {
            let h = [
                ("signature-input", i.as_str()),
                ("signature", s.as_str()),
                ("content-digest", digest.as_str()),
            ];
            let r = verify_request(&method, &uri, &h, has_body, now, &Policy::default(), |_| {
                Some(SecretKey::from_seed(&[1; 32]).public_key())
            });
            prop_assert!(r.is_err());
        }
    }
}

#[test]
fn huge_fields_are_refused_as_too_large() {
    let huge = format!("rz=(\"@method\");nonce=\"{}\"", "a".repeat(1 << 20));
    let h = [
        ("signature-input", huge.as_str()),
        ("signature", "rz=:AAAA:"),
    ];
    let e = verify_request(
        "GET",
        "https://a/",
        &h,
        false,
        0,
        &Policy::default(),
        |_| None,
    )
    .unwrap_err();
    assert!(matches!(e, AuthError::TooLarge { .. }), "{e}");
    // Many small lines add up.
    let line = "a=1";
    let many: Vec<(&str, &str)> = std::iter::repeat_n(("signature-input", line), 5000)
        .chain([("signature", "rz=:AAAA:")])
        .collect();
    let e = verify_request(
        "GET",
        "https://a/",
        &many,
        false,
        0,
        &Policy::default(),
        |_| None,
    )
    .unwrap_err();
    assert!(matches!(e, AuthError::TooLarge { .. }), "{e}");
}

#[test]
fn the_generator_reaches_valid_dictionaries() {
    // The round-trip property means something only if many generated values parse.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = sfv_like();
    let mut parsed = 0;
    for _ in 0..3000 {
        let v = strategy.new_tree(&mut runner).unwrap().current();
        if parse_dictionary(&v, L).is_ok_and(|d| !d.is_empty()) {
            parsed += 1;
        }
    }
    assert!(
        parsed >= 600,
        "only {parsed} of 3000 generated values parsed"
    );
    eprintln!("{parsed} of 3000 generated values parsed");
}
