//! The command line: every subcommand, its flags, and the help text that teaches it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
EXIT CODES:
  0  success
  1  error: I/O, database or internal failure
  2  usage: unknown command or bad arguments
  3  invalid input: malformed JSON, schema violation, unknown target, bad key or hash
  4  passphrase: missing or wrong passphrase
  5  home: no instance here, already initialized, damaged or read-only database
  6  verification failed: `rhizome verify` or `views check` found a difference
  7  import: bundle truncated or its trailer invalid (valid events kept)
  8  import: bundle rejected whole (bad manifest, not a bundle; nothing stored)
  9  import: some events refused (the valid rest kept)
 10  store unavailable: database server unreachable, credentials refused, connection lost
     (everything committed before stays; run the command again to continue)
 11  sync: link down after the retries (everything verified stays; run sync again)
 12  sync: wrong peer: not the --peer instance, or a bad descriptor or signature (nothing sent)
 13  sync: refused by the server (401, 403, 413, 429, 503) or a protocol error

ENVIRONMENT:
  RHIZOME_HOME        instance directory (default: the platform data directory)
  RHIZOME_STORE       store URL (postgres://USER@HOST:PORT/DB) instead of the home's SQLite file
  RHIZOME_PASSPHRASE  passphrase for sealed keys, for servers and scripts (else a prompt)
  RHIZOME_TRUST_ON_FIRST_USE=1  import first bundles of unknown instances without quarantine

GETTING STARTED:
  rhizome init --name \"Village school\"
  rhizome post \"Hello from the hills\"
  rhizome log";

/// Rhizome: signed social logs that travel on a USB stick.
#[derive(Parser, Debug)]
#[command(name = "rhizome", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Instance directory [env: RHIZOME_HOME] [default: platform data dir]
    #[arg(long, global = true, env = "RHIZOME_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Store URL instead of the home's SQLite file: postgres://USER@HOST:PORT/DB for a hub
    /// [env: RHIZOME_STORE]
    #[arg(long, global = true, env = "RHIZOME_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Machine-readable output: one JSON document, or JSON Lines for lists of events
    #[arg(long, global = true)]
    pub json: bool,

    /// Local author to act as (default: the author created by `init`)
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub as_author: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new instance: its key pair and a first author
    #[command(after_help = "EXAMPLES:
  rhizome init --name \"Village school\"
  RHIZOME_PASSPHRASE=... rhizome init --name hub --home /srv/rhizome
  rhizome init --name laptop --no-passphrase     # keys stored unencrypted (says so in whoami)")]
    Init(InitArgs),

    /// Manage local authors (the people who write on this instance)
    #[command(subcommand)]
    Author(AuthorCmd),

    /// Show this instance's id, public key, name and authors
    #[command(after_help = "EXAMPLES:
  rhizome whoami
  rhizome whoami --json | jq -r .instance_id")]
    Whoami,

    /// Publish a post
    #[command(after_help = "EXAMPLES:
  rhizome post \"The well is fixed\"
  rhizome post --lang en --reply-to 3f2a9c1e \"Thanks!\"
  rhizome post --circle family \"Only for the family\"
  rhizome --as bo post \"Written by Bo\"")]
    Post(PostArgs),

    /// Comment on a post or another comment
    #[command(after_help = "EXAMPLES:
  rhizome comment 3f2a9c1e \"Great news\"     # a unique hash prefix of 8+ characters is enough")]
    Comment {
        /// Hash (or unique prefix of 8+ hex characters) of the event to comment on
        target: String,
        /// Comment text
        text: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// Like an event
    #[command(after_help = "EXAMPLES:\n  rhizome like 3f2a9c1e")]
    Like {
        /// Hash or unique prefix of the event
        target: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// Reshare an event, optionally with a comment
    #[command(
        after_help = "EXAMPLES:\n  rhizome reshare 3f2a9c1e\n  rhizome reshare 3f2a9c1e \"Everyone should read this\""
    )]
    Reshare {
        /// Hash or unique prefix of the event
        target: String,
        /// Optional comment
        text: Option<String>,
        #[command(flatten)]
        limit: Limit,
    },

    /// Star an event (for yourself: `rhizome starred` lists them)
    #[command(after_help = "EXAMPLES:\n  rhizome star 3f2a9c1e")]
    Star {
        /// Hash or unique prefix of the event
        target: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// Remove a star (a STAR event with starred: false; the latest wins)
    #[command(after_help = "EXAMPLES:\n  rhizome unstar 3f2a9c1e")]
    Unstar {
        /// Hash or unique prefix of the event
        target: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// Tag an event
    #[command(after_help = "EXAMPLES:\n  rhizome tag 3f2a9c1e water")]
    Tag {
        /// Hash or unique prefix of the event
        target: String,
        /// Tag: 1-64 characters, no spaces, commas, or leading '#'
        tag: String,
        #[command(flatten)]
        limit: Limit,
    },

    /// Create, rename, or change the members of one of your circles
    #[command(subcommand)]
    Circle(CircleCmd),

    /// Publish the name you go by (and a few words about you): a signed PROFILE event
    #[command(
        after_help = "Your profile is public: it travels with your events to every instance that gets them,
and they show its name beside a fingerprint of your key (names are not unique). The latest
one you publish wins. `init` and `author add` publish one with the local author name.

EXAMPLES:
  rhizome profile --name \"Ana Lima\"
  rhizome profile --name \"Ana Lima\" --about \"Teacher at the village school\"
  rhizome --as bo profile --name Bo"
    )]
    Profile {
        /// Your name: 1-64 characters, no control or invisible characters, no spaces at either end
        #[arg(long)]
        name: String,
        /// A few words about you: 1-1000 characters
        #[arg(long)]
        about: Option<String>,
    },

    /// Append an event of any type with a JSON payload (checked against its schema if known)
    #[command(after_help = "EXAMPLES:
  rhizome append --type POST --payload '{\"text\":\"hi\",\"lang\":\"en\"}'
  rhizome append --type RECIPE --payload '{\"name\":\"bread\",\"minutes\":90}'   # unknown types are fine")]
    Append {
        /// Event type: 1-64 characters of A-Z a-z 0-9 _ . : -
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// Payload: a JSON object
        #[arg(long, value_name = "JSON")]
        payload: String,
    },

    /// Print the log, one event per line (with --json: JSON Lines, the exact signed events)
    #[command(after_help = "EXAMPLES:
  rhizome log
  rhizome log --author bo
  rhizome log --json | jq -c 'select(.type == \"POST\") | .payload.text'")]
    Log {
        /// Only this feed: a local author name or a public key
        #[arg(long, value_name = "AUTHOR")]
        author: Option<String>,
    },

    /// Re-verify every stored event and every chain
    #[command(
        after_help = "Checks each event's hash, payload commitment and signature (strict Ed25519), and
that every feed runs 1, 2, 3, ... with each prev linking to the event before it.
Exits 6 and lists every failure if anything is wrong.

EXAMPLES:
  rhizome verify
  rhizome verify --json | jq .failures"
    )]
    Verify,

    /// Follow an author: their posts and reshares join your timeline
    #[command(
        after_help = "EXAMPLES:\n  rhizome follow 5f0c...e1      # a public key (64 hex)\n  rhizome follow bo             # or a local author"
    )]
    Follow {
        /// Public key or local author name
        author: String,
    },

    /// Stop following an author (their events stay in the log)
    #[command(after_help = "EXAMPLES:\n  rhizome unfollow 5f0c...e1")]
    Unfollow {
        /// Public key or local author name
        author: String,
    },

    /// The timeline: posts and reshares of followed authors (and your own), newest first
    #[command(after_help = "EXAMPLES:
  rhizome feed
  rhizome feed --limit 20 --before 1764000000000-3f2a...   # the cursor printed at the end of a page
  rhizome feed --author bo --json | jq -r '.items[].text'")]
    Feed {
        /// Only this author (public key or local name)
        #[arg(long)]
        author: Option<String>,
        /// Items per page (1-1000)
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Continue after this cursor (printed with each page)
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
    },

    /// A post with its comments and replies, nested
    #[command(
        after_help = "EXAMPLES:\n  rhizome thread 3f2a9c1e\n  rhizome thread 3f2a9c1e --json"
    )]
    Thread {
        /// Hash or unique prefix of the post
        hash: String,
    },

    /// Events a local author has starred (latest STAR per event wins)
    #[command(after_help = "EXAMPLES:\n  rhizome starred\n  rhizome --as bo starred --json")]
    Starred,

    /// A local author's circles and their members
    #[command(after_help = "EXAMPLES:\n  rhizome circles\n  rhizome --as bo circles --json")]
    Circles,

    /// Tags in use, or the events carrying one tag
    #[command(after_help = "EXAMPLES:\n  rhizome tags\n  rhizome tags water")]
    Tags {
        /// A tag to list events for
        tag: Option<String>,
    },

    /// Counts per type and author, events the views skipped, store size, schema version
    #[command(after_help = "EXAMPLES:\n  rhizome status\n  rhizome status --json | jq .skipped")]
    Status,

    /// Rebuild or check the materialized views
    #[command(subcommand)]
    Views(ViewsCmd),

    /// Import data from an older app (JSON Lines of plain records) as signed events
    #[command(
        after_help = "Each line is one record; targets must name records earlier in the file. A user becomes a
local author and a PROFILE event with its name:
  {\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}
  {\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"Hello\",\"at\":1700000000000}
  {\"kind\":\"comment\",\"id\":\"c1\",\"user\":\"u2\",\"target\":\"p1\",\"text\":\"Nice\"}
  {\"kind\":\"like\",\"user\":\"u2\",\"target\":\"p1\"}
  {\"kind\":\"star\",\"user\":\"u1\",\"target\":\"p1\"}
Running it twice adds nothing. A file with bad lines changes nothing unless --skip-bad.

EXAMPLES:
  rhizome migrate --from examples/migrate.jsonl
  rhizome migrate --from old.jsonl --skip-bad --json"
    )]
    Migrate {
        /// The JSON Lines file
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Import the good lines even if some are bad (bad ones are reported)
        #[arg(long)]
        skip_bad: bool,
    },

    /// Write a bundle for a peer (or everyone) to carry on a stick
    #[command(
        after_help = "By default an export for a peer carries everything beyond what the peer's own last
bundle said it holds (`acked`), so a lost stick loses nothing; --since-sent cuts against
what was already sent instead (smaller, but relies on the last stick arriving).

Privacy: a payload written with --circle travels only in bundles for an instance that hosts
its author or a member of the circle (instances prove whom they host in their manifests);
every other bundle, and every --all bundle, carries its signed header alone. With
--encrypt-to, only the instances named can read the file (age, X25519); the keys come from
their manifests, so import one bundle from an instance before encrypting to it.

EXAMPLES:
  rhizome export --to /media/stick/school.bundle --all
  rhizome export --to /media/stick/for-ship.bundle --for 56475aa75463474c0285df5dbf2bcab7
  rhizome export --to s.bundle --for 56475aa7...cab7 --encrypt-to 56475aa7...cab7 --compress
  rhizome export --to x.bundle --all --dry-run        # size and counts only"
    )]
    Export {
        /// Bundle file to write (written atomically)
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Everything this instance holds
        #[arg(
            long,
            conflicts_with = "for_peer",
            required_unless_present = "for_peer"
        )]
        all: bool,
        /// What this peer lacks (an instance id seen in a previous import)
        #[arg(long = "for", value_name = "INSTANCE_ID")]
        for_peer: Option<String>,
        /// Cut against what was sent to the peer, not what it acknowledged
        #[arg(long, requires = "for_peer")]
        since_sent: bool,
        /// Only print the size and counts
        #[arg(long)]
        dry_run: bool,
        /// Compress with zstd (import detects it; the estimate is of the uncompressed bundle)
        #[arg(long)]
        compress: bool,
        /// Encrypt (age) to this instance, so only it can read the bundle; repeatable. Its key
        /// comes from its own bundles' manifests; your own instance id is accepted too
        #[arg(long, value_name = "INSTANCE_ID")]
        encrypt_to: Vec<String>,
    },

    /// Read a bundle: verify every event, store what is new
    #[command(
        after_help = "Exit codes besides the common ones: 7 the bundle is truncated or its trailer is
invalid (every valid event read was kept), 8 the bundle was rejected whole (nothing
stored), 9 some events were refused (the valid rest was kept).

EXAMPLES:
  rhizome import /media/stick/school.bundle
  rhizome import school.bundle --json | jq .new"
    )]
    Import {
        /// Bundle file
        file: PathBuf,
    },

    /// Look at a bundle without importing it
    #[command(subcommand)]
    Bundle(BundleCmd),

    /// Serve this instance over HTTPS for `rhizome sync` (TLS 1.3, signed requests only)
    #[command(
        after_help = "Prints one line when ready: `listening on https://ADDR:PORT instance ID`
(with --json: {\"url\": ..., \"instance_id\": ...}). Stops cleanly on SIGTERM or SIGINT.

EXAMPLES:
  rhizome serve --listen 0.0.0.0:8443
  RHIZOME_PASSPHRASE=... rhizome serve --store postgres://rhizome@db/hub --trust-on-first-use
  rhizome serve --tls-cert hub.pem --tls-key hub.key     # a CA-issued certificate"
    )]
    Serve(ServeArgs),

    /// Sync with an instance over HTTPS: pull what it has, push what it lacks
    #[command(
        after_help = "Exit codes besides the common ones: 11 link down after the retries, 12 wrong
peer (nothing sent), 13 refused by the server.

EXAMPLES:
  rhizome sync https://hub.example:8443 --peer 56475aa75463474c0285df5dbf2bcab7
  rhizome sync https://127.0.0.1:8443 --pull-only --json"
    )]
    Sync(SyncArgs),

    /// Instances this one has exchanged bundles with, their clocks and trust
    #[command(after_help = "EXAMPLES:\n  rhizome peers\n  rhizome peers --json | jq '.[].acked'")]
    Peers,

    /// Bundles from unknown instances held in quarantine, waiting for approve or reject
    #[command(after_help = "EXAMPLES:\n  rhizome pending\n  rhizome pending --json")]
    Pending,

    /// Trust the exporter of a held bundle and apply its events
    #[command(after_help = "EXAMPLES:\n  rhizome approve 3f2a9c1e0b7d4a55")]
    Approve {
        /// Id of the held bundle (from `rhizome pending`)
        id: String,
    },

    /// Discard a held bundle
    #[command(after_help = "EXAMPLES:\n  rhizome reject 3f2a9c1e0b7d4a55")]
    Reject {
        /// Id of the held bundle (from `rhizome pending`)
        id: String,
    },

    /// Trust a peer instance (by id, as `rhizome peers` shows it)
    #[command(after_help = "EXAMPLES:\n  rhizome trust 56475aa75463474c0285df5dbf2bcab7")]
    Trust {
        /// Instance id (32 hex characters)
        instance_id: String,
    },

    /// Block a peer instance: its bundles are refused, nothing of them stored
    #[command(after_help = "EXAMPLES:\n  rhizome block 56475aa75463474c0285df5dbf2bcab7")]
    Block {
        /// Instance id (32 hex characters)
        instance_id: String,
    },

    /// Unblock a peer instance (back to unknown)
    #[command(after_help = "EXAMPLES:\n  rhizome unblock 56475aa75463474c0285df5dbf2bcab7")]
    Unblock {
        /// Instance id (32 hex characters)
        instance_id: String,
    },

    /// Block an author: their events are dropped whoever carries them, and hidden from views
    #[command(
        after_help = "Their events already stored stay in the log (and `rhizome log`) unless --purge,
which removes them and says how many; they are not exported to others either way.

EXAMPLES:
  rhizome block-author 5f0c...e1
  rhizome block-author 5f0c...e1 --purge"
    )]
    BlockAuthor {
        /// Public key (or local author name)
        author: String,
        /// Also delete their stored events from the log
        #[arg(long)]
        purge: bool,
    },

    /// Unblock an author
    #[command(after_help = "EXAMPLES:\n  rhizome unblock-author 5f0c...e1")]
    UnblockAuthor {
        /// Public key (or local author name)
        author: String,
    },

    /// Feeds whose authors signed two different events at the same position (fork evidence)
    #[command(after_help = "EXAMPLES:\n  rhizome forks --json")]
    Forks,

    /// Two instances exchange posts on a stick, narrated with the commands a person would type
    #[command(
        after_help = "Creates DIR/school, DIR/ship and DIR/stick (default: a new folder in the temp dir),
and leaves them for you to explore.

EXAMPLES:
  rhizome demo
  rhizome demo --dir /tmp/rhizome-demo"
    )]
    Demo {
        /// Where to create the two homes and the stick folder
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },

    /// Measure throughput on this machine (figures for BENCHMARKS.md); touches no home
    #[command(subcommand)]
    Bench(BenchCmd),

    /// Open the local web page: read, write and carry a stick from a browser
    #[command(
        after_help = "Prints one line, the address to open: it carries a random access token,
so only who sees it can use the page. The page listens on this computer only (127.0.0.1).
Stop it with Ctrl-C.

EXAMPLES:
  rhizome ui
  rhizome --home /srv/school ui --listen 127.0.0.1:8080"
    )]
    Ui {
        /// Loopback address and port to listen on (port 0: any free port)
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand, Debug)]
pub enum BundleCmd {
    /// Manifest, counts, signature and trailer validity of a bundle file
    #[command(
        after_help = "EXAMPLES:\n  rhizome bundle inspect /media/stick/school.bundle\n  rhizome bundle inspect x.bundle --json | jq .status"
    )]
    Inspect {
        /// Bundle file
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ViewsCmd {
    /// Drop every view and recompute it from the log
    #[command(after_help = "EXAMPLES:\n  rhizome views rebuild")]
    Rebuild,
    /// Recompute the views into a scratch copy and compare with the live ones (exit 6 if they differ)
    #[command(
        after_help = "EXAMPLES:\n  rhizome views check\n  rhizome views check --json | jq .live"
    )]
    Check,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum BenchCmd {
    /// Sign, hash and store events in a scratch store (batched appends)
    #[command(after_help = "EXAMPLES:\n  rhizome bench append --events 200000 --feeds 100")]
    Append {
        /// Events in all
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Feeds (authors) the events are spread over
        #[arg(long, default_value_t = 100)]
        feeds: u64,
        /// Events per transaction
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Fill a scratch store, then time timeline pages and a full views rebuild
    #[command(after_help = "EXAMPLES:\n  rhizome bench views --events 1000000 --feeds 1000")]
    Views {
        /// Events in all
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Feeds (authors)
        #[arg(long, default_value_t = 1000)]
        feeds: u64,
    },
    /// Make a source home and a full bundle, timing export and a 100-event delta export
    #[command(
        after_help = "Leaves DIR/source (a home), DIR/full.bundle and DIR/delta.bundle; then time the import
with, e.g.: rhizome --home DIR/dest init --name dest --no-passphrase &&
            /usr/bin/time -v rhizome --home DIR/dest import DIR/full.bundle

EXAMPLES:\n  rhizome bench bundle --events 1000000 --feeds 1000 --dir /tmp/rb"
    )]
    Bundle {
        /// Events in all
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Feeds (authors)
        #[arg(long, default_value_t = 1000)]
        feeds: u64,
        /// Where to leave the source home and the bundles (must not exist)
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Instead of posts, events of an unknown type `BLOB` whose payload holds a string of
        /// this many bytes (large lines: memory bounds of the import)
        #[arg(long, value_name = "BYTES")]
        payload_bytes: Option<usize>,
    },
    /// Cost of the passphrase KDF (Argon2id) with the default parameters
    #[command(after_help = "EXAMPLES:\n  rhizome bench kdf")]
    Kdf,
    /// Strict signature verification on one core: single path, per-author table path, the
    /// table's cost and the group size from which it pays
    #[command(
        after_help = "EXAMPLES:\n  rhizome bench verify\n  rhizome bench verify --signatures 8192 --json"
    )]
    Verify {
        /// Signatures per measurement
        #[arg(long, default_value_t = 4096)]
        signatures: usize,
    },
    /// Write one hostile or extreme input of the memory-bound benchmarks (BENCHMARKS.md,
    /// "Issue 10: memory bounds"); prints its path. Bundles are signed by a fixed test key
    #[command(
        after_help = "EXAMPLES:\n  rhizome bench hostile --case member-line --bytes 15000000 --dir /tmp/rh\n  RHIZOME_TRUST_ON_FIRST_USE=1 /usr/bin/time -v rhizome --home /tmp/rh/dest import /tmp/rh/member-line.bundle"
    )]
    Hostile {
        /// Which input
        #[arg(long, value_enum)]
        case: HostileCase,
        /// Size of the line (event line, manifest line or migration line), in bytes; for
        /// `migrate-records`, of the whole file
        #[arg(long, default_value_t = 15_000_000)]
        bytes: u64,
        /// Where to write it
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

/// The inputs of `rhizome bench hostile`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileCase {
    /// A valid bundle of one event line whose payload is one long string
    StringLine,
    /// A valid bundle of one event line whose payload is an object of tiny members
    MemberLine,
    /// The same with ten such lines
    MemberLines,
    /// 24 valid events of 1 MiB of one letter each, zstd-compressed (expands thousands of times)
    Repetitive,
    /// A manifest line of tiny members (refused after it is read)
    Manifest,
    /// A migration file whose second line is a post of that many bytes of text
    MigrateLine,
    /// A migration file of that many bytes of valid records (posts of 10,000 characters)
    MigrateRecords,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Human name of the instance (shown to the peers you exchange with)
    #[arg(long)]
    pub name: String,
    /// Name of the first local author [default: the instance name]
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
    /// Store private keys unencrypted (no passphrase). `whoami` says so.
    #[arg(long)]
    pub no_passphrase: bool,
    /// Publish no profile for the first author (by default a PROFILE event makes its name
    /// public to every instance that gets its events; `rhizome profile` publishes one later)
    #[arg(long)]
    pub no_profile: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuthorCmd {
    /// Add a local author with a new key pair
    #[command(after_help = "EXAMPLES:\n  rhizome author add bo\n  rhizome --as bo post \"Hello\"")]
    Add {
        /// Local name, unique on this instance
        name: String,
        /// Publish no profile (by default a PROFILE event makes the name public to every
        /// instance that gets this author's events; `rhizome profile` publishes one later)
        #[arg(long)]
        no_profile: bool,
    },
    /// List local authors
    #[command(after_help = "EXAMPLES:\n  rhizome author list --json")]
    List,
}

#[derive(Args, Debug)]
pub struct PostArgs {
    /// Post text
    pub text: String,
    /// Language tag, e.g. en, pt-BR
    #[arg(long)]
    pub lang: Option<String>,
    /// Hash or prefix of the event this post replies to
    #[arg(long, value_name = "HASH")]
    pub reply_to: Option<String>,
    /// Hash or prefix of the event this post quotes
    #[arg(long, value_name = "HASH")]
    pub quote: Option<String>,
    #[command(flatten)]
    pub limit: Limit,
}

/// Who may read what a writing command writes.
#[derive(Args, Debug, Default)]
pub struct Limit {
    /// Only members of this circle of yours may read it: other instances get the signed
    /// header without the payload, unless they host you or a member (see `rhizome circles`)
    #[arg(long, value_name = "NAME")]
    pub circle: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum CircleCmd {
    /// Create a circle, optionally with members
    #[command(
        after_help = "EXAMPLES:\n  rhizome circle create family\n  rhizome circle create crew bo 5f0c...e1  # local author names or public keys"
    )]
    Create {
        /// Circle name
        name: String,
        /// Members: local author names or public keys (64 hex)
        members: Vec<String>,
    },
    /// Add members to a circle
    #[command(after_help = "EXAMPLES:\n  rhizome circle add family bo")]
    Add {
        /// Circle name
        name: String,
        /// Members: local author names or public keys
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members from a circle
    #[command(after_help = "EXAMPLES:\n  rhizome circle remove family bo")]
    Remove {
        /// Circle name
        name: String,
        /// Members: local author names or public keys
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Rename a circle
    #[command(after_help = "EXAMPLES:\n  rhizome circle rename family kin")]
    Rename {
        /// Current name
        name: String,
        /// New name
        new_name: String,
    },
}

/// `rhizome serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port)
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    /// CA-issued certificate chain, PEM (default: a self-signed certificate of the instance key)
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key, PEM
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Largest bundle a caller may push, bytes (413 beyond)
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    pub max_body: u64,
    /// Pulls and pushes running at once (503 with Retry-After beyond)
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_syncs: usize,
    /// Seconds a body may stall before the peer is dropped
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Requests per caller per minute (429 beyond)
    #[arg(long, default_value_t = 120, value_name = "N")]
    pub requests_per_minute: u32,
    /// Import first pushes of unknown instances at once (and trust them) instead of holding
    /// them for approval; also RHIZOME_TRUST_ON_FIRST_USE=1
    #[arg(long)]
    pub trust_on_first_use: bool,
}

/// `rhizome sync`.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The server: https://HOST[:PORT]
    pub url: String,
    /// The instance expected there: anything else is refused before data is sent
    #[arg(long, value_name = "INSTANCE_ID")]
    pub peer: Option<String>,
    /// Only pull
    #[arg(long, conflicts_with = "push_only")]
    pub pull_only: bool,
    /// Only push
    #[arg(long)]
    pub push_only: bool,
    /// Ask the server to age-encrypt what it sends to this instance's key (PROTOCOL 8.12), on
    /// top of TLS: for a link through a TLS-terminating proxy. The server must know this
    /// instance's key, from an earlier push or stick
    #[arg(long, conflicts_with = "push_only")]
    pub encrypt: bool,
    /// Extra trusted root certificates (PEM), for a server with a private CA's certificate
    #[arg(long, env = "RHIZOME_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Attempts per step when the link breaks
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub attempts: u32,
    /// First wait before a retry, milliseconds (doubled each time)
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub backoff_ms: u64,
    /// Connect timeout and longest stall of a transfer, seconds
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}
