//! JSON from clients, with its nesting bounded before any recursive parser sees it.
//!
//! serde_json stops at its own recursion limit, but json5 (the lenient JSON the PowerShell
//! module sends) recurses once per bracket with no limit, so a body nested ten thousand deep
//! overflows the stack and aborts the process. [`exceeds_depth`] is a cheap scan, outside
//! strings and comments, that every JSON body and every token segment passes first; it follows
//! JSON5's lexical rules, which are a superset of JSON's, so one scan serves both.

use serde::de::DeserializeOwned;

/// The deepest nesting of objects and arrays accepted in a request body. Graph's own bodies
/// nest a few levels; this leaves room for anything a client could mean.
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether `text` nests objects and arrays more than `max` deep. Brackets inside strings
/// (double- or single-quoted, with backslash escapes) and comments do not count. Where the scan
/// and a parser could read the text differently (a stray quote, an unterminated comment), the
/// parser fails at that point, so the depth it reaches is never more than the scan counted.
pub fn exceeds_depth(text: &str, max: usize) -> bool {
    enum State {
        Code,
        Str { quote: char, escaped: bool },
        LineComment,
        BlockComment { star: bool },
    }
    let mut state = State::Code;
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match &mut state {
            State::Code => match c {
                '"' | '\'' => state = State::Str { quote: c, escaped: false },
                '/' => match chars.peek() {
                    Some('/') => {
                        chars.next();
                        state = State::LineComment;
                    }
                    Some('*') => {
                        chars.next();
                        state = State::BlockComment { star: false };
                    }
                    _ => {}
                },
                '[' | '{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
            State::Str { quote, escaped } => {
                if *escaped {
                    *escaped = false;
                } else if c == '\\' {
                    *escaped = true;
                } else if c == *quote {
                    state = State::Code;
                }
            }
            // JSON5's line terminators: a comment that ended later here than in the parser
            // would hide brackets the parser sees.
            State::LineComment => {
                if matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}') {
                    state = State::Code;
                }
            }
            State::BlockComment { star } => {
                if *star && c == '/' {
                    state = State::Code;
                } else {
                    *star = c == '*';
                }
            }
        }
    }
    false
}

/// Why a client's JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Nested more than [`MAX_JSON_DEPTH`] deep.
    TooDeep,
    /// Not JSON (nor lenient JSON, where that is accepted).
    Syntax,
    /// Well-formed, but not the shape the operation takes; the text names the problem.
    Data(String),
}

/// Parses strict JSON whose nesting is bounded.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Syntax)?;
    if exceeds_depth(text, MAX_JSON_DEPTH) {
        return Err(JsonError::TooDeep);
    }
    serde_json::from_str(text).map_err(|e| if e.is_data() { JsonError::Data(e.to_string()) } else { JsonError::Syntax })
}

/// Parses JSON, or the lenient JSON the PowerShell module sends (`{ displayName: "PC-01" }`,
/// unquoted keys, single quotes, comments), which real Graph accepts too. Nesting is bounded
/// before either parser runs.
pub fn from_lenient_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Syntax)?;
    if exceeds_depth(text, MAX_JSON_DEPTH) {
        return Err(JsonError::TooDeep);
    }
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if e.is_data() => Err(JsonError::Data(e.to_string())),
        Err(_) => {
            let value: serde_json::Value = json5::from_str(text).map_err(|_| JsonError::Syntax)?;
            serde_json::from_value(value).map_err(|e| JsonError::Data(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Any = serde_json::Value;

    fn nested(open: &str, close: &str, depth: usize) -> String {
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn counts_brackets_only_outside_strings_and_comments() {
        assert!(!exceeds_depth(&nested("[", "]", 64), 64));
        assert!(exceeds_depth(&nested("[", "]", 65), 64));
        assert!(exceeds_depth(&nested("{a:", "}", 65), 64));
        let in_strings = format!(r#"{{"a": "{}", b: '{}'}}"#, "[".repeat(100), "{".repeat(100));
        assert!(!exceeds_depth(&in_strings, 2));
        let escaped_quote = format!(r#"["\"{}"]"#, "[".repeat(100));
        assert!(!exceeds_depth(&escaped_quote, 2));
        let commented = format!("[ // {}\n 1, /* {} */ 2]", "[".repeat(100), "{".repeat(100));
        assert!(!exceeds_depth(&commented, 2));
        // Closing brackets inside a string must not hide the depth that follows.
        let hidden = format!(r#"{{"a": "{}", "b": {}}}"#, "]".repeat(100), nested("[", "]", 100));
        assert!(exceeds_depth(&hidden, 64));
        // JSON5 ends a line comment at U+2028; a scan that did not would miss these brackets.
        let separator = format!("// x\u{2028}{}", nested("[", "]", 100));
        assert!(exceeds_depth(&separator, 64));
    }

    #[test]
    fn lenient_json_reads_what_powershell_sends() {
        let v: Any = from_lenient_slice(b"{ displayName: 'PC-01', groupTag: \"x\", }").unwrap();
        assert_eq!(v["displayName"], "PC-01");
        let v: Any = from_lenient_slice(br#"{"displayName":"PC-01"}"#).unwrap();
        assert_eq!(v["displayName"], "PC-01");
        assert_eq!(from_lenient_slice::<Any>(b"{ displayName: }"), Err(JsonError::Syntax));
        assert!(matches!(from_lenient_slice::<Vec<u8>>(b"{}"), Err(JsonError::Data(_))));
    }

    /// The body that aborted the server: json5 recursed once per bracket until the stack ran out.
    #[test]
    fn deep_lenient_and_strict_bodies_are_refused_not_overflowed() {
        for depth in [65, 10_000, 100_000] {
            for (open, close) in [("[", "]"), ("{a:", "}"), ("{\"a\":", "}")] {
                let body = nested(open, close, depth);
                assert_eq!(from_lenient_slice::<Any>(body.as_bytes()), Err(JsonError::TooDeep));
                assert_eq!(from_slice::<Any>(body.as_bytes()), Err(JsonError::TooDeep));
            }
        }
        // Unclosed: the parser would recurse just as deep before noticing the end.
        let unclosed = "{a:[".repeat(50_000);
        assert_eq!(from_lenient_slice::<Any>(unclosed.as_bytes()), Err(JsonError::TooDeep));
    }

    /// Text built from JSON5's structural pieces: brackets, quotes, escapes, comment openers and
    /// line terminators, in any order.
    fn json5_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("["),
            Just("]"),
            Just("{"),
            Just("}"),
            Just("\""),
            Just("'"),
            Just("\\"),
            Just("//"),
            Just("/*"),
            Just("*/"),
            Just("\n"),
            Just("\u{2028}"),
            Just(":"),
            Just(","),
            Just("a"),
            Just("1"),
            Just(" "),
            Just("null"),
        ];
        proptest::collection::vec(piece, 0..400).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the text, the parsers answer; and what the scan passes never nests deeper
        /// than the bound once parsed.
        #[test]
        fn random_text_never_panics(text in json5_soup()) {
            for value in [from_lenient_slice::<Any>(text.as_bytes()), from_slice::<Any>(text.as_bytes())].into_iter().flatten() {
                prop_assert!(value_depth(&value) <= MAX_JSON_DEPTH);
            }
        }

        /// Deep nesting wrapped in random text is refused whatever surrounds it.
        #[test]
        fn deep_nesting_anywhere_is_refused(
            prefix in json5_soup(),
            depth in prop_oneof![Just(100_000usize), (MAX_JSON_DEPTH + 1)..20_000usize],
            open in prop_oneof![Just("["), Just("{a:"), Just("{\"a\":")],
        ) {
            // A prefix may leave a string or comment open, which hides the brackets from the scan
            // and from the parser alike; the quotes and the comment end close the usual ones, and
            // either way the answer must be an error.
            let text = format!("{prefix}\"'*/\n{}", open.repeat(depth));
            prop_assert!(from_lenient_slice::<Any>(text.as_bytes()).is_err());
            prop_assert!(from_slice::<Any>(text.as_bytes()).is_err());
        }

        /// Arbitrary bytes, not only UTF-8.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = from_lenient_slice::<Any>(&bytes);
            let _ = from_slice::<Any>(&bytes);
        }
    }

    fn value_depth(value: &Any) -> usize {
        match value {
            Any::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
            Any::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }
}
