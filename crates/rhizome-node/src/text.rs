//! Text from others, made safe to show on a terminal: control characters (C0, DEL, C1) and
//! Unicode bidirectional overrides and isolates are replaced by a visible escape, so stored or
//! remote text (posts, names, tags, circle names, messages quoting them) can neither drive the
//! terminal (retitle it, clear it, move the cursor) nor reorder what is shown around it. Every
//! front-end showing text to a person uses these (JSON output is escaped by its encoder).

use std::borrow::Cow;

/// Whether `c` must not reach a terminal raw: C0 controls, DEL, C1 controls, and the bidi
/// embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends the visible form of an unsafe character: `\u001b`, the JSON escape, so that
/// JSON text passed through [`printable_lines`] keeps its value.
fn escape_into(out: &mut String, c: char) {
    use std::fmt::Write;
    let _ = write!(out, "\\u{:04x}", c as u32);
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) && !keep(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line of text as it may be shown: every unsafe character (line feeds too) escaped
/// visibly, e.g. ESC as `\u001b`. For names, tags, ids, and anything shown on one line.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// Output whose line feeds are the program's own (a formatted report): every other unsafe
/// character escaped. Applying it to JSON keeps the document's value (the escape is JSON's).
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n')
}

/// A multi-line body (a post's text) as it may be shown: unsafe characters escaped, and each
/// line after the first prefixed with `continuation`, so that no line of a body can pass for
/// a record of its own. Carriage returns are escaped (one could rewrite the line shown).
pub fn printable_body(s: &str, continuation: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(continuation);
        }
        out.push_str(&printable(line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_visibly() {
        let s = "a\x1b]0;pwned\x07\x1b[2Jb\u{202e}c\u{2066}d\x7f\u{85}\r\t";
        let p = printable(s);
        assert!(!p.chars().any(is_unsafe), "{p}");
        assert_eq!(
            p,
            "a\\u001b]0;pwned\\u0007\\u001b[2Jb\\u202ec\\u2066d\\u007f\\u0085\\u000d\\u0009"
        );
        assert!(matches!(printable("plain text, é ✓"), Cow::Borrowed(_)));
        assert_eq!(printable("x\ny"), "x\\u000ay");
        assert_eq!(printable_lines("x\ny\x1b"), "x\ny\\u001b");
    }

    #[test]
    fn body_continuation_lines_are_prefixed() {
        assert_eq!(
            printable_body("one\n2026-01-01 fake\x1b", "    | "),
            "one\n    | 2026-01-01 fake\\u001b"
        );
    }

    #[test]
    fn escaped_json_keeps_its_value() {
        let text = "x\u{202e}y\u{7f}\u{9b}z";
        let doc = serde_json::json!({ "text": text }).to_string();
        let shown = printable_lines(&doc);
        assert!(!shown.chars().any(is_unsafe));
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["text"], text);
    }
}
