//! `rhizome`: the command-line program. Parses arguments, runs one command, and turns errors
//! into a message on stderr and a documented exit code (see `rhizome --help`).

/// `println!` that returns an error instead of panicking when stdout is closed
/// (`rhizome whoami | head -c0`), so `main` can treat a broken pipe as a quiet exit. Whatever
/// it prints goes through `printable_lines`: no control character or bidi override from stored
/// text reaches the terminal raw, even where a field was not escaped on its own (JSON keeps its
/// value: the escape is JSON's). Fields that must stay on one line are escaped at their site.
macro_rules! say {
    () => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock())?
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        writeln!(
            std::io::stdout().lock(),
            "{}",
            rhizome_node::text::printable_lines(&text)
        )?
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
mod serve;
mod show;
mod sneaker;
mod sync;
mod ui;
mod write;

use clap::Parser;
use std::process::ExitCode;

use cli::{AuthorCmd, BundleCmd, Cli, Command, ViewsCmd};
use sneaker::TrustChange;

pub use rhizome_node::now_ms;

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Bench(b) => return bench::run(b, json),
        Command::Demo { dir } => return demo::run(dir.as_deref()),
        Command::Bundle(BundleCmd::Inspect { file }) => {
            // A home is needed only to decrypt; a plain bundle is inspected without one.
            let location = home::resolve(cli.home.as_deref())
                .and_then(|h| home::location(&h, cli.store.as_deref()))
                .ok();
            return sneaker::inspect(location.as_ref(), file, json);
        }
        _ => {}
    }
    let home_dir = home::resolve(cli.home.as_deref())?;
    let at = &home::location(&home_dir, cli.store.as_deref())?;
    let as_author = cli.as_author.as_deref();
    match &cli.command {
        Command::Init(a) => identity::init(&home_dir, at, a, json),
        Command::Author(AuthorCmd::Add { name, no_profile }) => {
            identity::author_add(at, name, !no_profile, json)
        }
        Command::Author(AuthorCmd::List) => identity::author_list(at, json),
        Command::Whoami => identity::whoami(&home_dir, at, json),
        Command::Log { author } => read::log(at, author.as_deref(), json),
        Command::Verify => read::verify(at, json),
        Command::Follow { author } => show::follow(at, author, true, json),
        Command::Unfollow { author } => show::follow(at, author, false, json),
        Command::Feed {
            author,
            limit,
            before,
        } => show::feed(at, author.as_deref(), *limit, before.as_deref(), json),
        Command::Thread { hash } => show::thread(at, hash, json),
        Command::Starred => show::starred(at, as_author, json),
        Command::Circles => show::circles(at, as_author, json),
        Command::Tags { tag } => show::tags(at, tag.as_deref(), json),
        Command::Status => show::status(at, json),
        Command::Views(ViewsCmd::Rebuild) => show::rebuild(at, json),
        Command::Views(ViewsCmd::Check) => show::check(at, json),
        Command::Migrate { from, skip_bad } => migrate::run(at, from, *skip_bad, json),
        Command::Export {
            to,
            for_peer,
            since_sent,
            dry_run,
            compress,
            encrypt_to,
            ..
        } => sneaker::export(
            at,
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
        Command::Import { file } => sneaker::import(at, file, json),
        Command::Bundle(BundleCmd::Inspect { file }) => sneaker::inspect(Some(at), file, json),
        Command::Serve(a) => serve::run(at, a, json),
        Command::Sync(a) => sync::run(at, a, json),
        Command::Ui { listen } => ui::run(at, *listen, json),
        Command::Peers => sneaker::peers(at, json),
        Command::Forks => sneaker::forks(at, json),
        Command::Pending => sneaker::pending(at, json),
        Command::Approve { id } => sneaker::approve(at, id, json),
        Command::Reject { id } => sneaker::reject(at, id, json),
        Command::Trust { instance_id } => {
            sneaker::set_trust(at, instance_id, TrustChange::Trust, json)
        }
        Command::Block { instance_id } => {
            sneaker::set_trust(at, instance_id, TrustChange::Block, json)
        }
        Command::Unblock { instance_id } => {
            sneaker::set_trust(at, instance_id, TrustChange::Unblock, json)
        }
        Command::BlockAuthor { author, purge } => {
            sneaker::block_author(at, author, true, *purge, json)
        }
        Command::UnblockAuthor { author } => sneaker::block_author(at, author, false, false, json),
        cmd => write::run(at, as_author, cmd, json),
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
            // Errors may quote remote text (a name, a refused line).
            let message = format!("{e:#}");
            eprintln!("error: {}", rhizome_node::text::printable_lines(&message));
            ExitCode::from(exit::code_of(&e))
        }
    }
}
