//! `rhizome ui`: starts the local web page (crate `rhizome-web`) and prints the one line to
//! open it. Sealed keys are unlocked here, at the terminal, before the address is printed.

use anyhow::Result;
use rhizome_node::StoreLocation;
use std::io::Write;
use std::net::SocketAddr;

use crate::exit::{fail, INVALID_INPUT};
use crate::home;

/// `rhizome ui`.
pub fn run(location: &StoreLocation, listen: SocketAddr, json: bool) -> Result<()> {
    let keys = home::keys();
    let node = rhizome_node::Node::open(location.clone(), keys.clone(), home::policy())?;
    if node.whoami()?.keys_encrypted {
        // Asks once now; the key session keeps the derived key for the page's writes.
        node.instance_key()?;
    }
    drop(node);
    let config = rhizome_web::Config {
        location: location.clone(),
        keys,
        policy: home::policy(),
    };
    let bound = rhizome_web::bind(config, listen).map_err(|e| match e {
        rhizome_web::WebError::NotLoopback(_) => fail(INVALID_INPUT, e.to_string()),
        other => other.into(),
    })?;
    let url = bound.url();
    {
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::json!({ "url": url }))?;
        } else {
            writeln!(out, "open {url}")?;
        }
        out.flush()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bound.run())?;
    Ok(())
}
