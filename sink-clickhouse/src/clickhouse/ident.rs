//! ClickHouse identifiers: validated and quoted in this one place.

use super::{Error, Result};

/// Validates an identifier (database, table, column, cluster name) and returns it
/// back-quoted, with backslashes and back quotes escaped, so no name can inject SQL.
/// Control characters and names over 255 bytes are refused: they are never a real
/// table name, only a mistake or an attack.
///
/// ```
/// use sink_clickhouse::clickhouse::quote_ident;
/// assert_eq!(quote_ident("events").unwrap(), "`events`");
/// assert_eq!(quote_ident("we`ird").unwrap(), "`we\\`ird`");
/// assert!(quote_ident("").is_err());
/// ```
pub fn quote_ident(name: &str) -> Result<String> {
    let refuse = |reason| {
        Err(Error::Identifier {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if name.len() > 255 {
        return refuse("longer than 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('`');
    Ok(out)
}

/// A string literal for SQL: single-quoted with `\` and `'` escaped.
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_names() {
        assert_eq!(quote_ident("a'b").unwrap(), "`a'b`");
        assert_eq!(
            quote_ident("a`; DROP TABLE x; --").unwrap(),
            "`a\\`; DROP TABLE x; --`"
        );
        assert_eq!(quote_ident("with space").unwrap(), "`with space`");
        assert_eq!(quote_ident("back\\slash").unwrap(), "`back\\\\slash`");
        assert!(quote_ident("new\nline").is_err());
        assert!(quote_ident(&"x".repeat(256)).is_err());
        assert_eq!(quote_str("it's"), "'it\\'s'");
    }
}
