//! Every command that appends an event: turn its arguments into a draft; the node checks,
//! signs and appends it.

use anyhow::Result;
use rhizome_node::write::{CircleChange, Draft};
use rhizome_node::{Node, StoreLocation};
use serde_json::json;

use crate::cli::{CircleCmd, Command, PostArgs};
use crate::home;

/// The draft a writing command asks for, with targets resolved.
fn draft(node: &Node, cmd: &Command) -> Result<Draft> {
    let target = |t: &str| node.resolve_target(t);
    let members = |ms: &[String]| -> Result<Vec<_>> {
        Ok(ms
            .iter()
            .map(|m| node.resolve_author(m, "member"))
            .collect::<Result<_, _>>()?)
    };
    Ok(match cmd {
        Command::Post(PostArgs {
            text,
            lang,
            reply_to,
            quote,
            limit,
        }) => Draft::post(
            text,
            lang.as_deref(),
            reply_to.as_deref().map(target).transpose()?,
            quote.as_deref().map(target).transpose()?,
        )
        .in_circle(limit.circle.as_deref()),
        Command::Comment {
            target: t,
            text,
            limit,
        } => Draft::comment(target(t)?, text).in_circle(limit.circle.as_deref()),
        Command::Like { target: t, limit } => {
            Draft::like(target(t)?).in_circle(limit.circle.as_deref())
        }
        Command::Reshare {
            target: t,
            text,
            limit,
        } => Draft::reshare(target(t)?, text.as_deref()).in_circle(limit.circle.as_deref()),
        Command::Star { target: t, limit } => {
            Draft::star(target(t)?, true).in_circle(limit.circle.as_deref())
        }
        Command::Unstar { target: t, limit } => {
            Draft::star(target(t)?, false).in_circle(limit.circle.as_deref())
        }
        Command::Tag {
            target: t,
            tag,
            limit,
        } => Draft::tag(target(t)?, tag).in_circle(limit.circle.as_deref()),
        Command::Circle(c) => match c {
            CircleCmd::Create { name, members: ms } => {
                Draft::circle(name, CircleChange::Create(members(ms)?))
            }
            CircleCmd::Add { name, members: ms } => {
                Draft::circle(name, CircleChange::Add(members(ms)?))
            }
            CircleCmd::Remove { name, members: ms } => {
                Draft::circle(name, CircleChange::Remove(members(ms)?))
            }
            CircleCmd::Rename { name, new_name } => {
                Draft::circle(name, CircleChange::Rename(new_name.clone()))
            }
        },
        Command::Profile { name, about } => Draft::profile(name, about.as_deref())?,
        Command::Append { kind, payload } => Draft::custom(kind, payload)?,
        other => anyhow::bail!("{other:?} does not write an event"),
    })
}

/// Runs a writing command end to end.
pub fn run(
    location: &StoreLocation,
    as_author: Option<&str>,
    cmd: &Command,
    json: bool,
) -> Result<()> {
    let mut node = home::open(location)?;
    let draft = draft(&node, cmd)?;
    let written = node.write(as_author, draft)?;
    if json {
        say!(
            "{}",
            json!({"hash": written.hash, "author": written.author, "seq": written.seq, "type": written.kind})
        );
    } else {
        say!(
            "{} {} by {} (seq {})",
            written.kind,
            written.hash,
            written.author_name,
            written.seq
        );
    }
    Ok(())
}
