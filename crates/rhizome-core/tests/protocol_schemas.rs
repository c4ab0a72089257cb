#![allow(clippy::unwrap_used)]
//! The payload schemas are normative and given in full in PROTOCOL 5.1: each block there is
//! the committed schema file byte for byte, every file is there, and each is the schema the
//! reference compiles.

use rhizome_core::schema::Kind;
use std::collections::BTreeMap;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PROTOCOL.md");
const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");

/// Each `<!-- schema:TYPE -->` block of the document, by type.
fn blocks(doc: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l
            .trim()
            .strip_prefix("<!-- schema:")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(lines[i + 1], "```json", "block after schema:{name}");
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| **l != "```")
            .copied()
            .collect();
        let previous = out.insert(name.to_owned(), body.join("\n") + "\n");
        assert!(previous.is_none(), "schema:{name} twice");
    }
    out
}

#[test]
fn every_schema_file_is_in_the_document_byte_for_byte() {
    let doc = std::fs::read_to_string(DOC_PATH).unwrap();
    let in_doc = blocks(&doc);
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(SCHEMAS).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        files.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    assert!(files.len() >= 7, "{:?}", files.keys());
    assert_eq!(
        in_doc.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (name, text) in &files {
        assert_eq!(&in_doc[name], text, "schema {name}");
        let kind = Kind::from_type(name).unwrap_or_else(|| panic!("{name} is not a known type"));
        assert_eq!(kind.schema_text(), text, "the compiled schema of {name}");
    }
}
