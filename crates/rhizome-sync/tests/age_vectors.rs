#![allow(clippy::unwrap_used)]
//! The age test files of C2SP/CCTV (`testdata/vectors/age/cctv`), through the decrypting path
//! bundles use (`codec::decrypt`): every file whose identity type Rhizome supports (X25519 and
//! scrypt passphrases) gives exactly the expected outcome; every other file (ML-KEM hybrid
//! identities) must at least fail cleanly, never panic.

use std::io::Read;
use std::path::PathBuf;

use rhizome_sync::codec;
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/age/cctv"
    ))
}

struct Vector {
    name: String,
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    passphrase: Option<String>,
    body: Vec<u8>,
}

fn parse(name: &str, bytes: &[u8]) -> Vector {
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or_else(|| panic!("{name}: no blank line after the header"));
    let header = std::str::from_utf8(&bytes[..split]).unwrap();
    let mut body = bytes[split + 2..].to_vec();
    let mut v = Vector {
        name: name.into(),
        expect: String::new(),
        payload: None,
        identities: vec![],
        passphrase: None,
        body: vec![],
    };
    for line in header.lines() {
        let (k, val) = line.split_once(": ").unwrap();
        match k {
            "expect" => v.expect = val.into(),
            "payload" => v.payload = Some(val.into()),
            "identity" => v.identities.push(val.into()),
            "passphrase" => v.passphrase = Some(val.into()),
            "compressed" => {
                assert_eq!(val, "zlib", "{name}");
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .unwrap();
                body = out;
            }
            _ => {}
        }
    }
    v.body = body;
    v
}

/// What happened, in CCTV's words.
fn outcome(v: &Vector) -> (String, Option<Vec<u8>>) {
    let mut keys = |_scrypt: bool| -> std::io::Result<Vec<Box<dyn age::Identity>>> {
        let mut ids: Vec<Box<dyn age::Identity>> = Vec::new();
        for text in &v.identities {
            if let Ok(id) = text.parse::<age::x25519::Identity>() {
                ids.push(Box::new(id));
            }
        }
        if let Some(p) = &v.passphrase {
            ids.push(codec::passphrase_identity(p));
        }
        Ok(ids)
    };
    let mut reader = match codec::decrypt(&v.body[..], &mut keys) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            let kind = if msg.contains("no matching key") {
                "no match"
            } else if msg.contains("MAC") {
                "HMAC failure"
            } else {
                "header failure"
            };
            return (kind.into(), None);
        }
    };
    let mut out = Vec::new();
    match reader.read_to_end(&mut out) {
        Ok(_) => ("success".into(), Some(out)),
        Err(_) => ("payload failure".into(), None),
    }
}

#[test]
fn cctv_age_vectors() {
    let mut names: Vec<_> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the vectors are committed under testdata/vectors)",
                dir().display()
            )
        })
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "LICENSE")
        .collect();
    names.sort();
    assert_eq!(names.len(), 143, "expected CCTV's 143 age files");
    let (mut checked, mut unsupported) = (0, 0);
    let mut wrong = Vec::new();
    for name in &names {
        let v = parse(name, &std::fs::read(dir().join(name)).unwrap());
        let supported = v.passphrase.is_some()
            || v.identities
                .iter()
                .any(|i| i.starts_with("AGE-SECRET-KEY-1"));
        let (got, plain) = outcome(&v);
        if !supported {
            // No identity we can use: whatever the file, it must not open.
            assert_ne!(got, "success", "{name}");
            unsupported += 1;
            continue;
        }
        checked += 1;
        let ok = match v.expect.as_str() {
            "success" => {
                got == "success"
                    && v.payload.as_deref()
                        == Some(hex::encode(Sha256::digest(plain.as_deref().unwrap())).as_str())
            }
            // Armor may be found broken while reading the header or the payload.
            "armor failure" => got != "success",
            other => got == other,
        };
        if !ok {
            wrong.push(format!("{}: expected {}, got {got}", v.name, v.expect));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 120, "only {checked} vectors checked");
    eprintln!(
        "{checked} CCTV age vectors checked, {unsupported} with unsupported identities refused"
    );
}
