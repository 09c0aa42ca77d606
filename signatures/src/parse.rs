//! Rule text to a raw rule: header fields and the option list, with positions for errors.
//!
//! Option values stay text here; `compile` gives each keyword its meaning. Like Suricata, an
//! option ends at the first `;` not escaped by `\` (quotes do not protect a `;`).

use thiserror::Error;

/// Where a problem is: 1-based line and column in the rules file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("column {column}: {message}")]
pub struct SyntaxError {
    pub column: usize,
    pub message: String,
}

fn err<T>(column: usize, message: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        column,
        message: message.into(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub name: &'a str,
    /// The text after `name:`, trimmed, still escaped and quoted.
    pub value: Option<&'a str>,
    /// 1-based column of the option name in the rule text.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRule<'a> {
    pub action: &'a str,
    pub proto: &'a str,
    pub src: &'a str,
    pub src_ports: &'a str,
    pub bidirectional: bool,
    /// `=>`: a transaction rule whose buffers may come from both directions.
    pub transactional: bool,
    pub dst: &'a str,
    pub dst_ports: &'a str,
    pub options: Vec<RawOption<'a>>,
    /// Column of each header field, for errors about them (same order as the fields above,
    /// direction excluded).
    pub header_columns: [usize; 6],
}

/// One rule of a rules file, with the line it starts on. Continuation lines (`\` at the end)
/// are joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine {
    pub line: usize,
    pub text: String,
}

/// Splits a rules file into rules, dropping comments and blank lines.
pub fn rule_lines(text: &str) -> Vec<RuleLine> {
    let mut out = Vec::new();
    let mut pending: Option<RuleLine> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let (body, continues) = match line.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (line, false),
        };
        match pending.as_mut() {
            Some(p) => p.text.push_str(body),
            None => {
                let trimmed = body.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                pending = Some(RuleLine {
                    line: i + 1,
                    text: body.to_string(),
                });
            }
        }
        if !continues {
            out.extend(pending.take());
        }
    }
    out.extend(pending);
    out
}

/// Parses one rule's text.
pub fn parse_rule(text: &str) -> Result<RawRule<'_>, SyntaxError> {
    let open = match text.find('(') {
        Some(i) => i,
        None => return err(text.len() + 1, "expected '(' starting the rule options"),
    };
    let mut fields = Vec::with_capacity(7);
    let mut at = 0usize;
    let header = &text[..open];
    for word in header.split_ascii_whitespace() {
        // Positions come from the slice's offset in the rule text.
        let start = word.as_ptr() as usize - text.as_ptr() as usize;
        at = start + word.len();
        fields.push((word, start + 1));
    }
    // Groups may contain spaces ("[1.2.3.4, 5.6.7.8]"): rejoin words inside brackets.
    let fields = join_bracketed(text, fields);
    let names = [
        "action",
        "protocol",
        "source address",
        "source port",
        "direction",
        "destination address",
        "destination port",
    ];
    if fields.len() != 7 {
        let column = fields.get(7).map_or(at + 1, |f| f.1);
        let expected = names.get(fields.len()).copied().unwrap_or("'('");
        return err(
            column,
            format!(
                "expected 7 header fields (action protocol src sport -> dst dport), got {}; expected {expected}",
                fields.len()
            ),
        );
    }
    let (bidirectional, transactional) = match fields[4].0 {
        "->" => (false, false),
        "<>" => (true, false),
        "=>" => (false, true),
        "<-" => {
            return err(
                fields[4].1,
                "'<-' is not a valid direction; use '->' or '<>'",
            )
        }
        other => {
            return err(
                fields[4].1,
                format!("expected direction '->', '<>' or '=>', found {other:?}"),
            )
        }
    };
    let body_end = match text.rfind(')') {
        Some(i) if i > open => i,
        _ => return err(text.len() + 1, "expected ')' closing the rule options"),
    };
    if !text[body_end + 1..].trim().is_empty() {
        return err(body_end + 2, "unexpected text after the closing ')'");
    }
    let options = parse_options(text, open + 1, body_end)?;
    Ok(RawRule {
        action: fields[0].0,
        proto: fields[1].0,
        src: fields[2].0,
        src_ports: fields[3].0,
        bidirectional,
        transactional,
        dst: fields[5].0,
        dst_ports: fields[6].0,
        options,
        header_columns: [
            fields[0].1,
            fields[1].1,
            fields[2].1,
            fields[3].1,
            fields[5].1,
            fields[6].1,
        ],
    })
}

fn join_bracketed<'a>(text: &'a str, words: Vec<(&'a str, usize)>) -> Vec<(&'a str, usize)> {
    let mut out: Vec<(&'a str, usize)> = Vec::with_capacity(words.len());
    let mut depth = 0i32;
    for (w, col) in words {
        if depth > 0 {
            let (_, start) = out.pop().expect("open group has a word");
            let end = col - 1 + w.len();
            out.push((&text[start - 1..end], start));
        } else {
            out.push((w, col));
        }
        depth += w.matches('[').count() as i32 - w.matches(']').count() as i32;
    }
    out
}

fn parse_options(text: &str, start: usize, end: usize) -> Result<Vec<RawOption<'_>>, SyntaxError> {
    let bytes = text.as_bytes();
    let mut options = Vec::with_capacity(16);
    let mut i = start;
    while i < end {
        // Skip whitespace between options.
        while i < end && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= end {
            break;
        }
        let opt_start = i;
        let mut escaped = false;
        while i < end {
            let b = bytes[i];
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b';' {
                break;
            }
            i += 1;
        }
        if i >= end {
            return err(
                opt_start + 1,
                "expected ';' after the last option (before ')')",
            );
        }
        let opt = &text[opt_start..i];
        i += 1;
        let (name, value) = match opt.find(':') {
            Some(c) => (opt[..c].trim(), Some(opt[c + 1..].trim())),
            None => (opt.trim(), None),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            return err(
                opt_start + 1,
                format!("expected a keyword name, found {name:?}"),
            );
        }
        options.push(RawOption {
            name,
            value,
            column: opt_start + 1,
        });
    }
    Ok(options)
}

/// Removes one pair of surrounding double quotes, if present.
pub fn unquote(value: &str) -> &str {
    let v = value.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') && !v.ends_with("\\\"") {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Undoes Suricata's option escapes (`\;` `\"` `\\` `\:`); other backslashes stay.
pub fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n @ (';' | '"' | '\\' | ':')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_options() {
        let r = parse_rule(
            r#"alert http $HOME_NET any -> [1.2.3.4, 5.6.7.8] ![80,443] (msg:"a\;b"; content:"x|3b|"; nocase; sid:1;)"#,
        )
        .unwrap();
        assert_eq!(r.action, "alert");
        assert_eq!(r.dst, "[1.2.3.4, 5.6.7.8]");
        assert_eq!(r.dst_ports, "![80,443]");
        assert_eq!(r.options.len(), 4);
        assert_eq!(r.options[0].value, Some(r#""a\;b""#));
        assert_eq!(unescape(unquote(r.options[0].value.unwrap())), "a;b");
        assert_eq!(r.options[2].name, "nocase");
        assert_eq!(r.options[2].value, None);
    }

    #[test]
    fn errors_have_columns() {
        let e = parse_rule("alert tcp any any >> any any (sid:1;)").unwrap_err();
        assert_eq!(e.column, 19);
        assert!(e.message.contains("'=>'"), "{e}");
        let r = parse_rule("alert tls any any => any any (sid:1;)").unwrap();
        assert!(r.transactional && !r.bidirectional);
        let e = parse_rule("alert tcp any any -> any any (sid:1)").unwrap_err();
        assert!(e.message.contains("';'"), "{e}");
        let e = parse_rule("alert tcp any -> any any (sid:1;)").unwrap_err();
        assert!(e.message.contains("got 6"), "{e}");
        let e = parse_rule("alert tcp any any -> any any (s id:1;)").unwrap_err();
        assert_eq!(e.column, 31);
    }

    #[test]
    fn lines_join_continuations_and_skip_comments() {
        let text = "# comment\n\nalert tcp any any -> any any (msg:\"x\"; \\\n sid:1;)\n#alert ip any any -> any any (sid:2;)\nalert ip any any -> any any (sid:3;)\n";
        let lines = rule_lines(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, 3);
        assert!(lines[0].text.contains("sid:1;"));
        assert_eq!(lines[1].line, 6);
    }
}
