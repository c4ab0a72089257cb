//! `client::sync` against real servers: a CA-issued certificate (a private CA made here with
//! rcgen, given to the client as a CA file), where the instance key is checked from the
//! signed descriptor and the signed answers, and a pin that does not match is refused before
//! any data is sent.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use rhizome_https::client::{self, Local, SyncOptions};
use rhizome_https::server::{Limits, ServeConfig, Server, TlsSource};
use rhizome_https::HttpsError;
use rhizome_node::exchange::ImportOutcome;
use rhizome_node::{
    InitRequest, KeySession, NoPassphrase, Node, Policy, Protection, StoreLocation,
};
use tokio::sync::oneshot;

fn home(dir: &Path, name: &str) -> (StoreLocation, Arc<KeySession>) {
    let location = StoreLocation::from_args(&dir.join(name), None).unwrap();
    let keys = KeySession::new(NoPassphrase);
    let req = InitRequest {
        name: name.into(),
        author: None,
        protection: Protection::Plain,
        publish_profile: true,
    };
    Node::init(location.clone(), Arc::clone(&keys), &req).unwrap();
    (location, keys)
}

/// A private CA and a certificate for 127.0.0.1 it issued: (ca.pem, cert.pem, key.pem).
fn private_ca(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rhizome test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_issued_certificate_is_accepted_and_the_instance_is_checked_from_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let (hub_loc, hub_keys) = home(dir.path(), "hub");
    let (school_loc, school_keys) = home(dir.path(), "school");
    let (ca, cert, key) = private_ca(dir.path());
    let server = Server::bind(ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        location: hub_loc.clone(),
        keys: Arc::clone(&hub_keys),
        policy: Policy {
            trust_on_first_use: true,
        },
        tls: TlsSource::Files { cert, key },
        limits: Limits::default(),
    })
    .await
    .unwrap();
    let (url, hub_id) = (server.url(), server.instance_id());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let local = Local {
        location: school_loc.clone(),
        keys: Arc::clone(&school_keys),
        policy: Policy {
            trust_on_first_use: true,
        },
    };
    let quiet: client::OnProgress = Arc::new(|_| {});

    // Without the CA file the certificate is neither trusted nor an instance key: refused.
    let mut opts = SyncOptions::new(url.clone());
    opts.attempts = 1;
    let err = client::sync(local.clone(), opts.clone(), Arc::clone(&quiet))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpsError::Peer(_)), "{err}");

    // With it, but pinned to another instance: refused, nothing sent.
    opts.ca_file = Some(ca);
    let mut wrong = opts.clone();
    wrong.pin = Some("0123456789abcdef0123456789abcdef".parse().unwrap());
    let err = client::sync(local.clone(), wrong, Arc::clone(&quiet))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HttpsError::Peer(m) if m.contains("wrong instance")),
        "{err}"
    );
    let hub = Node::open(hub_loc.clone(), Arc::clone(&hub_keys), Policy::default()).unwrap();
    assert!(hub.peers().unwrap().is_empty());

    // Pinned to the hub: syncs both ways.
    opts.pin = Some(hub_id);
    let report = client::sync(local, opts, quiet).await.unwrap();
    assert_eq!(report.server.proven_by, "ca");
    assert_eq!(report.server.instance_id, hub_id);
    assert!(matches!(report.pull, Some(ImportOutcome::Imported(_))));
    assert!(report.push.is_some());
    let school = Node::open(school_loc, school_keys, Policy::default()).unwrap();
    assert_eq!(school.clock().unwrap(), hub.clock().unwrap());
    let _ = stop.send(());
}
