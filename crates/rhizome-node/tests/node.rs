//! The node as a front-end meets it: two instances in temporary homes, bundles carried as bytes
//! (no file paths), admission, quarantine and approval.
#![allow(clippy::unwrap_used)]

use std::io::{BufReader, Read};

use rhizome_node::exchange::{Base, ExportRequest, ImportOutcome};
use rhizome_node::write::Draft;
use rhizome_node::{
    InitRequest, KeySession, NoPassphrase, Node, NodeError, Policy, Protection, Refusal,
    StoreLocation, Transport,
};

fn instance(name: &str) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite {
        home: dir.path().join("home"),
    };
    let request = InitRequest {
        name: name.into(),
        author: None,
        protection: Protection::Plain,
        publish_profile: true,
    };
    let (node, _) = Node::init(location, KeySession::new(NoPassphrase), &request).unwrap();
    (node, dir)
}

/// Everything `node` has, as bundle bytes for anyone.
fn bundle(node: &mut Node) -> Vec<u8> {
    let request = ExportRequest {
        peer: None,
        base: Base::Nothing,
        compress: false,
        encrypt_to: vec![],
        transport: Transport::Usb,
    };
    let prepared = node.prepare_export(&request, false).unwrap();
    let mut out = Vec::new();
    node.export(&prepared, &mut out, &mut |_| {}).unwrap();
    out
}

/// A reader that can be read through once, like a pipe or a request body: it cannot be
/// rewound or reopened, and records that it reached its end.
struct Once {
    bytes: std::io::Cursor<Vec<u8>>,
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Read for Once {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        let n = self.bytes.read(buf)?;
        if n == 0 {
            self.ended.store(true, Ordering::SeqCst);
        }
        Ok(n)
    }
}

fn once(
    bytes: Vec<u8>,
) -> (
    Box<dyn std::io::BufRead + Send>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = Once {
        bytes: std::io::Cursor::new(bytes),
        ended: ended.clone(),
    };
    (Box::new(BufReader::new(r)), ended)
}

fn post(node: &mut Node, text: &str) {
    node.write(None, Draft::post(text, None, None, None))
        .unwrap();
}

#[test]
fn an_unknown_instance_is_held_from_one_read_then_approved() {
    let (mut school, _a) = instance("school");
    let (mut ship, _b) = instance("ship");
    post(&mut school, "the well is fixed");
    post(&mut school, "market on friday");
    let bytes = bundle(&mut school);

    let (reader, ended) = once(bytes.clone());
    let outcome = ship
        .import(
            reader,
            Some(bytes.len() as u64),
            Transport::Usb,
            &mut |_| {},
        )
        .unwrap();
    let ImportOutcome::Held(held) = outcome else {
        panic!("an unknown instance's bundle must be held");
    };
    assert!(
        ended.load(std::sync::atomic::Ordering::SeqCst),
        "read to its end once"
    );
    assert_eq!(held.held.events, 3, "school's profile and two posts");
    assert!(held.new);
    assert_eq!(
        ship.stats().unwrap().events,
        1,
        "nothing applied (ship's own profile only)"
    );
    assert_eq!(ship.pending().unwrap().len(), 1);

    let report = ship.approve(&held.held.id, &mut |_| {}).unwrap();
    assert_eq!(report.new, 3);
    // Names come from profiles: school's author is known by name now.
    let school_author = school.whoami().unwrap().authors[0].public_key;
    assert_eq!(
        ship.names().unwrap().of(&school_author),
        format!("school ({})", school_author.fingerprint())
    );
    assert!(ship.pending().unwrap().is_empty());
    let school_id = school.whoami().unwrap().instance_id;
    let peer = ship
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.instance_id == school_id)
        .unwrap();
    assert_eq!(peer.trust, rhizome_node::Trust::Trusted);

    // Trusted now: its next bundle goes straight in, from any reader.
    post(&mut school, "third");
    let bytes = bundle(&mut school);
    let (reader, _) = once(bytes);
    match ship
        .import(reader, None, Transport::Https, &mut |_| {})
        .unwrap()
    {
        ImportOutcome::Imported(r) => assert_eq!(r.new, 1),
        ImportOutcome::Held(_) => panic!("a trusted instance's bundle must be imported"),
    }
    let peer = ship
        .peers()
        .unwrap()
        .into_iter()
        .find(|p| p.instance_id == school_id)
        .unwrap();
    assert_eq!(peer.last_method.as_deref(), Some("https"));
}

#[test]
fn an_altered_held_copy_is_refused_and_nothing_is_trusted() {
    let (mut school, _a) = instance("school");
    let (ship, dir) = instance("ship");
    let mut ship = ship;
    post(&mut school, "hello");
    let bytes = bundle(&mut school);
    let (reader, _) = once(bytes);
    let ImportOutcome::Held(held) = ship
        .import(reader, None, Transport::Usb, &mut |_| {})
        .unwrap()
    else {
        panic!("held expected");
    };
    let blob = held.held.blob.unwrap();
    let file = dir
        .path()
        .join("home/quarantine")
        .join(format!("{blob}.bundle"));
    let mut altered = std::fs::read(&file).unwrap();
    let at = altered.len() / 2;
    altered[at] ^= 1;
    std::fs::write(&file, altered).unwrap();

    let before = ship.stats().unwrap().events;
    match ship.approve(&held.held.id, &mut |_| {}) {
        Err(NodeError::Rejected(why)) => assert!(why.contains("altered"), "{why}"),
        other => panic!("an altered copy must be refused, got {other:?}"),
    }
    assert_eq!(ship.stats().unwrap().events, before, "nothing applied");
    assert!(ship
        .peers()
        .unwrap()
        .iter()
        .all(|p| p.trust != rhizome_node::Trust::Trusted));
    assert_eq!(
        ship.pending().unwrap().len(),
        1,
        "still held for a decision"
    );
}

#[test]
fn blocking_an_instance_by_id_refuses_its_bundles_and_discards_held_ones() {
    let (mut school, _a) = instance("school");
    let (mut ship, _b) = instance("ship");
    post(&mut school, "hello");
    let bytes = bundle(&mut school);
    let (reader, _) = once(bytes.clone());
    ship.import(reader, None, Transport::Usb, &mut |_| {})
        .unwrap();
    let school_id = school.whoami().unwrap().instance_id;

    let blocked = ship.block(&school_id).unwrap();
    assert_eq!(blocked.rejected.len(), 1);
    assert!(ship.pending().unwrap().is_empty());
    let (reader, _) = once(bytes);
    match ship.import(reader, None, Transport::Usb, &mut |_| {}) {
        Err(NodeError::Refused(why)) => assert_eq!(why, Refusal::Blocked(school_id)),
        other => panic!("a blocked instance's bundle must be refused, got {other:?}"),
    }

    // An id never seen can be blocked too; trust on first use does not let it in.
    let (mut other, _c) = instance("other");
    post(&mut other, "hi");
    let other_id = other.whoami().unwrap().instance_id;
    ship.block(&other_id).unwrap();
    let mut tofu = ship.with_policy(Policy {
        trust_on_first_use: true,
    });
    let (reader, _) = once(bundle(&mut other));
    assert!(matches!(
        tofu.import(reader, None, Transport::Usb, &mut |_| {}),
        Err(NodeError::Refused(Refusal::Blocked(id))) if id == other_id
    ));
    tofu.unblock(&other_id).unwrap();
    let (reader, _) = once(bundle(&mut other));
    assert!(matches!(
        tofu.import(reader, None, Transport::Usb, &mut |_| {})
            .unwrap(),
        ImportOutcome::Imported(_)
    ));
}
