//! `rhizome`: the command-line program. Parses arguments, runs one command, and turns errors
//! into a message on stderr and a documented exit code (see `rhizome --help`).

/// `println!` that returns an error instead of panicking when stdout is closed
/// (`rhizome whoami | head -c0`), so `main` can treat a broken pipe as a quiet exit.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod bench;
mod cli;
mod demo;
mod exit;
mod home;
mod identity;
mod migrate;
mod progress;
mod read;
mod show;
mod sneaker;
mod write;

use clap::Parser;
use std::process::ExitCode;

use cli::{AuthorCmd, BundleCmd, Cli, Command, ViewsCmd};
use rhizome_store::sync_state::Trust;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Bench(b) => return bench::run(b, json),
        Command::Demo { dir } => return demo::run(dir.as_deref()),
        Command::Bundle(BundleCmd::Inspect { file }) => {
            // A home is needed only to decrypt; a plain bundle is inspected without one.
            let home = home::resolve(cli.home.as_deref()).ok();
            return sneaker::inspect(home.as_deref(), file, json);
        }
        _ => {}
    }
    let home = home::resolve(cli.home.as_deref())?;
    match &cli.command {
        Command::Init(a) => identity::init(&home, a, json),
        Command::Author(AuthorCmd::Add { name, no_profile }) => {
            identity::author_add(&home, name, !no_profile, json)
        }
        Command::Author(AuthorCmd::List) => identity::author_list(&home, json),
        Command::Whoami => identity::whoami(&home, json),
        Command::Log { author } => read::log(&home, author.as_deref(), json),
        Command::Verify => read::verify(&home, json),
        Command::Follow { author } => show::follow(&home, author, true, json),
        Command::Unfollow { author } => show::follow(&home, author, false, json),
        Command::Feed {
            author,
            limit,
            before,
        } => show::feed(&home, author.as_deref(), *limit, before.as_deref(), json),
        Command::Thread { hash } => show::thread(&home, hash, json),
        Command::Starred => show::starred(&home, cli.as_author.as_deref(), json),
        Command::Circles => show::circles(&home, cli.as_author.as_deref(), json),
        Command::Tags { tag } => show::tags(&home, tag.as_deref(), json),
        Command::Status => show::status(&home, json),
        Command::Views(ViewsCmd::Rebuild) => show::rebuild(&home, json),
        Command::Views(ViewsCmd::Check) => show::check(&home, json),
        Command::Migrate { from, skip_bad } => migrate::run(&home, from, *skip_bad, json),
        Command::Export {
            to,
            for_peer,
            since_sent,
            dry_run,
            compress,
            encrypt_to,
            ..
        } => sneaker::export(
            &home,
            to,
            sneaker::ExportArgs {
                for_peer: for_peer.as_deref(),
                since_sent: *since_sent,
                dry_run: *dry_run,
                compress: *compress,
                encrypt_to,
            },
            json,
        ),
        Command::Import { file } => sneaker::import(&home, file, json),
        Command::Bundle(BundleCmd::Inspect { file }) => sneaker::inspect(Some(&home), file, json),
        Command::Peers => sneaker::peers(&home, json),
        Command::Forks => sneaker::forks(&home, json),
        Command::Pending => sneaker::pending(&home, json),
        Command::Approve { id } => sneaker::approve(&home, id, json),
        Command::Reject { id } => sneaker::reject(&home, id, json),
        Command::Trust { instance_id } => {
            sneaker::set_trust(&home, instance_id, Trust::Trusted, json)
        }
        Command::Block { instance_id } => {
            sneaker::set_trust(&home, instance_id, Trust::Blocked, json)
        }
        Command::Unblock { instance_id } => {
            sneaker::set_trust(&home, instance_id, Trust::Unknown, json)
        }
        Command::BlockAuthor { author, purge } => {
            sneaker::block_author(&home, author, true, *purge, json)
        }
        Command::UnblockAuthor { author } => {
            sneaker::block_author(&home, author, false, false, json)
        }
        cmd => write::run(&home, cli.as_author.as_deref(), cmd, json),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `rhizome log | head` closes the pipe early: not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::code_of(&e))
        }
    }
}
