//! OData `$filter` expressions: the subset Intune scripts use, parsed into a small tree that the
//! storage backends translate into parameterised SQL. Property names are resolved by the caller
//! (each resource says which properties may be filtered), so the tree only ever holds known
//! fields and literal values, never SQL text.
//!
//! Grammar (keywords and function names are case-insensitive):
//! ```text
//! expr    := and ('or' and)*
//! and     := unary ('and' unary)*
//! unary   := 'not' unary | primary
//! primary := '(' expr ')'
//!          | func '(' property ',' string ')'          func: startswith | endswith | contains
//!          | property ('eq' | 'ne') literal
//! literal := 'string' (with '' for a quote) | null | true | false
//!          | Namespace.enumType'member'                 (a typed enum literal)
//! ```

use std::fmt;

/// The longest `$filter` accepted (in bytes of UTF-8), the deepest nesting of parentheses and
/// `not`, and the most nodes of the tree (comparisons, functions, `and`, `or`, `not`). Together
/// they bound the parser's recursion and the work of everything that walks the tree (the SQL
/// the stores generate recurses over it too): and/or chains are flat in the text but nest in
/// the tree, so the node bound is what limits their depth.
pub const MAX_FILTER_LENGTH: usize = 4096;
pub const MAX_DEPTH: usize = 32;
pub const MAX_NODES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter<F> {
    And(Box<Filter<F>>, Box<Filter<F>>),
    Or(Box<Filter<F>>, Box<Filter<F>>),
    Not(Box<Filter<F>>),
    Compare { field: F, op: CompareOp, value: Literal },
    Function { function: StringFunction, field: F, value: String },
}

impl<F: PartialEq> Filter<F> {
    /// Whether any comparison or function of the filter is on `field` (the parser bounds the
    /// depth, so the recursion is bounded too).
    pub fn mentions(&self, field: &F) -> bool {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => a.mentions(field) || b.mentions(field),
            Filter::Not(inner) => inner.mentions(field),
            Filter::Compare { field: f, .. } | Filter::Function { field: f, .. } => f == field,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFunction {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    String(String),
    Bool(bool),
    Null,
}

/// Why a `$filter` was refused; the text is safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    /// `Namespace.type'member'`: the member.
    TypedEnum(String),
    Open,
    Close,
    Comma,
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' => {
                let (s, next) = read_string(&chars, i)?;
                tokens.push(Token::Str(s));
                i = next;
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '@' || c == '+' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.' | '@' | '+' | ':'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // `microsoft.graph.enrollmentState'enrolled'`: a quote straight after a dotted name.
                if i < chars.len() && chars[i] == '\'' && word.contains('.') {
                    let (member, next) = read_string(&chars, i)?;
                    tokens.push(Token::TypedEnum(member));
                    i = next;
                } else {
                    tokens.push(Token::Ident(word));
                }
            }
            other => return Err(FilterError(format!("Syntax error: character '{other}' is not valid in $filter."))),
        }
    }
    Ok(tokens)
}

/// Reads a quoted string starting at `chars[start] == '\''`; `''` is an escaped quote.
fn read_string(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(FilterError("Syntax error: unterminated string literal in $filter.".into())),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((s, i + 1)),
            Some(c) => {
                s.push(*c);
                i += 1;
            }
        }
    }
}

struct Parser<'a, F, R: Fn(&str) -> Option<F>> {
    tokens: &'a [Token],
    pos: usize,
    resolve: R,
    nodes: usize,
}

fn keyword(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
}

impl<F, R: Fn(&str) -> Option<F>> Parser<'_, F, R> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Token, what: &str) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            _ => Err(FilterError(format!("Syntax error: {what} expected in $filter."))),
        }
    }

    /// Counts one node of the tree about to be built.
    fn node(&mut self) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(FilterError(format!("The $filter has more than {MAX_NODES} comparisons and operators.")));
        }
        Ok(())
    }

    fn field(&self, name: &str) -> Result<F, FilterError> {
        (self.resolve)(name)
            .ok_or_else(|| FilterError(format!("Could not find a property named '{name}' that can be filtered on.")))
    }

    fn expr(&mut self, depth: usize) -> Result<Filter<F>, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError(format!("The $filter is nested more than {MAX_DEPTH} levels deep.")));
        }
        let mut left = self.and(depth)?;
        while keyword(self.peek(), "or") {
            self.pos += 1;
            let right = self.and(depth)?;
            self.node()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter<F>, FilterError> {
        let mut left = self.unary(depth)?;
        while keyword(self.peek(), "and") {
            self.pos += 1;
            let right = self.unary(depth)?;
            self.node()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter<F>, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError(format!("The $filter is nested more than {MAX_DEPTH} levels deep.")));
        }
        if keyword(self.peek(), "not") {
            self.pos += 1;
            self.node()?;
            return Ok(Filter::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Filter<F>, FilterError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.expr(depth + 1)?;
                self.expect(Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::Ident(word)) => {
                let function = match word.to_ascii_lowercase().as_str() {
                    "startswith" => Some(StringFunction::StartsWith),
                    "endswith" => Some(StringFunction::EndsWith),
                    "contains" => Some(StringFunction::Contains),
                    _ => None,
                };
                if let (Some(function), Some(Token::Open)) = (function, self.peek()) {
                    self.pos += 1;
                    let field = match self.next() {
                        Some(Token::Ident(name)) => self.field(&name)?,
                        _ => {
                            return Err(FilterError(format!(
                                "Syntax error: a property name is expected as the first argument of {word}."
                            )));
                        }
                    };
                    self.expect(Token::Comma, "','")?;
                    let value = match self.next() {
                        Some(Token::Str(s)) => s,
                        _ => {
                            return Err(FilterError(format!(
                                "Syntax error: a string literal is expected as the second argument of {word}."
                            )));
                        }
                    };
                    self.expect(Token::Close, "')'")?;
                    self.node()?;
                    return Ok(Filter::Function { function, field, value });
                }
                let field = self.field(&word)?;
                let op = match self.next() {
                    Some(Token::Ident(op)) if op.eq_ignore_ascii_case("eq") => CompareOp::Eq,
                    Some(Token::Ident(op)) if op.eq_ignore_ascii_case("ne") => CompareOp::Ne,
                    Some(Token::Ident(op)) => {
                        return Err(FilterError(format!(
                            "The operator '{op}' is not supported in $filter; use eq, ne, startswith, endswith or contains."
                        )));
                    }
                    _ => return Err(FilterError(format!("Syntax error: an operator is expected after '{word}'."))),
                };
                let value = match self.next() {
                    Some(Token::Str(s)) | Some(Token::TypedEnum(s)) => Literal::String(s),
                    Some(Token::Ident(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
                    Some(Token::Ident(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
                    Some(Token::Ident(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
                    _ => return Err(FilterError("Syntax error: a literal is expected after the operator.".into())),
                };
                self.node()?;
                Ok(Filter::Compare { field, op, value })
            }
            _ => Err(FilterError("Syntax error: an expression is expected in $filter.".into())),
        }
    }
}

/// Parses a `$filter` value. `resolve` maps a property name (as the client wrote it) to the
/// resource's filterable field, or `None` when it cannot be filtered on.
pub fn parse_filter<F>(input: &str, resolve: impl Fn(&str) -> Option<F>) -> Result<Filter<F>, FilterError> {
    if input.len() > MAX_FILTER_LENGTH {
        return Err(FilterError(format!("The $filter is longer than {MAX_FILTER_LENGTH} characters.")));
    }
    let tokens = tokenize(input)?;
    let mut parser = Parser { tokens: &tokens, pos: 0, resolve, nodes: 0 };
    let filter = parser.expr(0)?;
    if parser.pos != tokens.len() {
        return Err(FilterError("Syntax error: unexpected text at the end of $filter.".into()));
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Field {
        Serial,
        Tag,
        State,
    }

    fn resolve(name: &str) -> Option<Field> {
        match name.to_ascii_lowercase().as_str() {
            "serialnumber" => Some(Field::Serial),
            "grouptag" => Some(Field::Tag),
            "enrollmentstate" => Some(Field::State),
            // A short name, so that a test can reach the node bound within the length bound.
            "sn" => Some(Field::Serial),
            _ => None,
        }
    }

    fn parse(s: &str) -> Result<Filter<Field>, FilterError> {
        parse_filter(s, resolve)
    }

    fn cmp(field: Field, op: CompareOp, v: &str) -> Filter<Field> {
        Filter::Compare { field, op, value: Literal::String(v.into()) }
    }

    #[test]
    fn a_filter_knows_which_fields_it_mentions() {
        let filter = parse("serialNumber eq 'A' or not(startswith(groupTag, 'S') and serialNumber ne 'B')").unwrap();
        assert!(filter.mentions(&Field::Serial) && filter.mentions(&Field::Tag));
        assert!(!filter.mentions(&Field::State));
    }

    #[test]
    fn parses_what_the_scripts_send() {
        assert_eq!(
            parse("contains(serialNumber,'SN1')").unwrap(),
            Filter::Function { function: StringFunction::Contains, field: Field::Serial, value: "SN1".into() }
        );
        assert_eq!(
            parse("startsWith(serialNumber, 'PF1')").unwrap(),
            Filter::Function { function: StringFunction::StartsWith, field: Field::Serial, value: "PF1".into() }
        );
        assert_eq!(parse("serialNumber eq 'A''B'").unwrap(), cmp(Field::Serial, CompareOp::Eq, "A'B"));
        assert_eq!(
            parse("enrollmentState eq microsoft.graph.enrollmentState'enrolled'").unwrap(),
            cmp(Field::State, CompareOp::Eq, "enrolled")
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_override() {
        let a = || cmp(Field::Serial, CompareOp::Eq, "a");
        let b = || cmp(Field::Tag, CompareOp::Ne, "b");
        let c = || cmp(Field::Serial, CompareOp::Eq, "c");
        assert_eq!(
            parse("serialNumber eq 'a' or groupTag ne 'b' and serialNumber eq 'c'").unwrap(),
            Filter::Or(Box::new(a()), Box::new(Filter::And(Box::new(b()), Box::new(c()))))
        );
        assert_eq!(
            parse("(serialNumber eq 'a' OR groupTag ne 'b') AND serialNumber eq 'c'").unwrap(),
            Filter::And(Box::new(Filter::Or(Box::new(a()), Box::new(b()))), Box::new(c()))
        );
        assert_eq!(parse("not (groupTag ne 'b')").unwrap(), Filter::Not(Box::new(b())));
    }

    #[test]
    fn refuses_what_it_does_not_support_with_a_clear_message() {
        for (input, needle) in [
            ("model eq 'x'", "Could not find a property named 'model'"),
            ("serialNumber gt 'x'", "operator 'gt' is not supported"),
            ("serialNumber eq 'x", "unterminated string"),
            ("contains(serialNumber)", "','"),
            ("serialNumber eq 'x' extra", "unexpected text"),
            ("", "an expression is expected"),
            ("serialNumber eq 'x' and", "an expression is expected"),
            ("serialNumber ~ 'x'", "character '~'"),
        ] {
            let err = parse(input).unwrap_err();
            assert!(err.0.contains(needle), "{input:?} -> {err}");
        }
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let deep = format!("{}serialNumber eq 'x'{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().0.contains("nested"));
        let nots = format!("{}serialNumber eq 'x'", "not ".repeat(40));
        assert!(parse(&nots).unwrap_err().0.contains("nested"));
        let long = format!("serialNumber eq '{}'", "x".repeat(MAX_FILTER_LENGTH));
        assert!(parse(&long).unwrap_err().0.contains("longer"));
    }

    #[test]
    fn the_number_of_nodes_is_bounded() {
        // and/or chains are flat in the text but nest in the tree.
        let chain = |n: usize, op: &str| vec!["sn eq 'x'"; n].join(op);
        assert!(parse(&chain(200, " or ")).is_ok());
        assert!(parse(&chain(290, " or ")).unwrap_err().0.contains("more than 512"));
        assert!(parse(&chain(290, " and ")).unwrap_err().0.contains("more than 512"));
    }

    fn tree_depth(f: &Filter<Field>) -> usize {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => 1 + tree_depth(a).max(tree_depth(b)),
            Filter::Not(a) => 1 + tree_depth(a),
            _ => 1,
        }
    }

    fn tree_nodes(f: &Filter<Field>) -> usize {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => 1 + tree_nodes(a) + tree_nodes(b),
            Filter::Not(a) => 1 + tree_nodes(a),
            _ => 1,
        }
    }

    /// `$filter` text from the grammar's pieces, valid and not, in any order and amount.
    fn filter_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("("),
            Just(")"),
            Just("not "),
            Just(" and "),
            Just(" or "),
            Just("'"),
            Just(","),
            Just("sn eq 'a'"),
            Just("groupTag ne null"),
            Just("contains(sn,'x')"),
            Just("startswith("),
            Just("sn"),
            Just(" eq "),
            Just("microsoft.graph.enrollmentState'enrolled'"),
            Just("~"),
            Just("ü"),
        ];
        proptest::collection::vec(piece, 0..600).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the text, the parser answers, and what it accepts stays within the bounds.
        #[test]
        fn random_filters_never_panic_and_stay_bounded(text in filter_soup()) {
            if let Ok(tree) = parse(&text) {
                prop_assert!(tree_nodes(&tree) <= MAX_NODES);
                prop_assert!(tree_depth(&tree) <= MAX_NODES);
            }
        }

        /// Nesting of any depth up to 100,000, by parentheses or `not`, is an error.
        #[test]
        fn deep_filters_are_refused(
            depth in prop_oneof![Just(100_000usize), (MAX_DEPTH + 1)..5_000usize],
            open in prop_oneof![Just("("), Just("not "), Just("not("), Just("(not ")],
        ) {
            let close = ")".repeat(open.matches('(').count() * depth);
            let text = format!("{}sn eq 'a'{close}", open.repeat(depth));
            prop_assert!(parse(&text).is_err());
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }
    }

    /// A property test without a framework: every string of a small alphabet either parses or
    /// fails with an error, never panics, and what parses prints back to an equal tree.
    #[test]
    fn random_inputs_never_panic_and_round_trip() {
        let atoms = [
            "serialNumber eq 'a'",
            "groupTag ne 'it''s'",
            "contains(serialNumber,'x')",
            "startswith(groupTag,'y')",
            "not",
            "and",
            "or",
            "(",
            ")",
            "'",
            ",",
            "eq",
            "serialNumber",
            "null",
            "~",
            " ",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut parsed = 0;
        for _ in 0..20_000 {
            let n = (next() % 7) as usize + 1;
            let input: Vec<&str> = (0..n).map(|_| atoms[(next() % atoms.len() as u64) as usize]).collect();
            let input = input.join(" ");
            if let Ok(tree) = parse(&input) {
                parsed += 1;
                assert_eq!(parse(&render(&tree)).unwrap(), tree, "{input}");
            }
        }
        assert!(parsed > 100, "the generator reaches valid filters ({parsed})");
    }

    fn render(f: &Filter<Field>) -> String {
        let name = |field: &Field| match field {
            Field::Serial => "serialNumber",
            Field::Tag => "groupTag",
            Field::State => "enrollmentState",
        };
        let lit = |v: &Literal| match v {
            Literal::String(s) => format!("'{}'", s.replace('\'', "''")),
            Literal::Bool(b) => b.to_string(),
            Literal::Null => "null".into(),
        };
        match f {
            Filter::And(a, b) => format!("({} and {})", render(a), render(b)),
            Filter::Or(a, b) => format!("({} or {})", render(a), render(b)),
            Filter::Not(a) => format!("not ({})", render(a)),
            Filter::Compare { field, op, value } => {
                format!("{} {} {}", name(field), if *op == CompareOp::Eq { "eq" } else { "ne" }, lit(value))
            }
            Filter::Function { function, field, value } => format!(
                "{}({},'{}')",
                match function {
                    StringFunction::StartsWith => "startswith",
                    StringFunction::EndsWith => "endswith",
                    StringFunction::Contains => "contains",
                },
                name(field),
                value.replace('\'', "''")
            ),
        }
    }
}
