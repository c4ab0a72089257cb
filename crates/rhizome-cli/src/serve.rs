//! `rhizome serve`: arguments in, the HTTPS server (crate `rhizome-https`) run until SIGTERM
//! or SIGINT, one line out saying where it listens.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Result;
use rhizome_https::server::{Limits, ServeConfig, Server, TlsSource};
use rhizome_node::StoreLocation;
use serde_json::json;

use crate::cli::ServeArgs;
use crate::home;

/// A multi-threaded runtime for the server or the client.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rhizome-net")
        .build()?)
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// `rhizome serve`.
pub fn run(at: &StoreLocation, args: &ServeArgs, json: bool) -> Result<()> {
    let mut policy = home::policy();
    policy.trust_on_first_use |= args.trust_on_first_use;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::InstanceKey,
    };
    let limits = Limits {
        max_body: args.max_body,
        max_syncs: args.max_syncs.max(1),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        requests_per_minute: args.requests_per_minute.max(1),
        ..Limits::default()
    };
    let config = ServeConfig {
        listen: args.listen,
        location: at.clone(),
        keys: home::keys(),
        policy,
        tls,
        limits,
    };
    let rt = runtime()?;
    let served = rt.block_on(async move {
        let server = Server::bind(config).await?;
        let (url, id) = (server.url(), server.instance_id());
        {
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", json!({"url": url, "instance_id": id}))?;
            } else {
                writeln!(out, "listening on {url} instance {id}")?;
            }
            out.flush()?;
        }
        server.run(shutdown()).await?;
        Ok::<_, anyhow::Error>(())
    });
    // Transfers still running are cut (what they stored stays stored); a blocking import or
    // export ends as soon as its channel closes.
    rt.shutdown_timeout(Duration::from_secs(5));
    served
}
