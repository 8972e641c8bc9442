//! Dynamic membership rules of device groups (`membershipRule`), as Windows Autopilot admins
//! write them: `(device.devicePhysicalIds -any (_ -eq "[OrderId]:Sales"))`,
//! `device.devicePhysicalIds -any (_ -startsWith "[ZTDId]")`, `device.deviceOSType -eq
//! "Windows"`, combined with `-and`, `-or`, `-not` and parentheses.
//!
//! The parser is bounded: a rule longer than [`MAX_RULE_LENGTH`] is refused before it is read,
//! and nesting (parentheses and `-not`) deeper than [`MAX_RULE_DEPTH`] is refused while it is
//! read, so no client text can make it recurse without end. A rule that uses a property or an
//! operator the evaluator does not implement is refused with the reason, never half-evaluated.
//! The store compiles a parsed [`Rule`] to SQL; this module knows nothing of SQL.

use std::fmt;

/// Entra's limit on the length of a membership rule, in characters.
pub const MAX_RULE_LENGTH: usize = 3072;

/// How deeply parentheses and `-not` may nest.
pub const MAX_RULE_DEPTH: usize = 32;

/// A device property that holds one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringProperty {
    DisplayName,
    /// `deviceId`, the id the device presents (not the object id).
    DeviceId,
    /// `deviceOSType`: the object's `operatingSystem`.
    DeviceOsType,
}

/// A string comparison. Every one ignores case, as Entra's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringOperator {
    Eq,
    Ne,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Contains,
    NotContains,
}

impl StringOperator {
    /// The operator it negates, if it is a negative one (`-ne` of `-eq`, …).
    pub fn negated(self) -> Option<StringOperator> {
        use StringOperator::*;
        match self {
            Ne => Some(Eq),
            NotStartsWith => Some(StartsWith),
            NotEndsWith => Some(EndsWith),
            NotContains => Some(Contains),
            Eq | StartsWith | EndsWith | Contains => None,
        }
    }

    fn parse(word: &str) -> Option<StringOperator> {
        use StringOperator::*;
        Some(match word.to_ascii_lowercase().as_str() {
            "-eq" => Eq,
            "-ne" => Ne,
            "-startswith" => StartsWith,
            "-notstartswith" => NotStartsWith,
            "-endswith" => EndsWith,
            "-notendswith" => NotEndsWith,
            "-contains" => Contains,
            "-notcontains" => NotContains,
            _ => return None,
        })
    }
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
    Not(Box<Rule>),
    Compare {
        property: StringProperty,
        op: StringOperator,
        value: String,
    },
    /// `device.accountEnabled -eq true` (and `-ne`, folded into the value).
    AccountEnabled(bool),
    /// `device.devicePhysicalIds -any (_ op "value")`: some entry of `physicalIds`, as Autopilot
    /// writes them (`[ZTDID]:…`, `[OrderId]:…`, `[PurchaseOrderId]:…`, `[HWID]:…`), compares.
    PhysicalIdsAny {
        op: StringOperator,
        value: String,
    },
}

/// Why a rule was refused, in words for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

fn refuse<T>(message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError(message.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    /// `-and`, `-eq`, …: a dash and letters, as written.
    Operator(String),
    /// A double-quoted string, its escapes resolved.
    Str(String),
    /// A property path, `_`, `true`, `false` or any other bare word.
    Word(String),
}

fn tokenize(rule: &str) -> Result<Vec<Token>, RuleError> {
    let mut tokens = Vec::new();
    let mut chars = rule.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return refuse("A string in the rule has no closing double quote."),
                        // Entra escapes a double quote inside a string with a backtick.
                        Some('`') if chars.peek() == Some(&'"') => {
                            chars.next();
                            value.push('"');
                        }
                        Some('"') => break,
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Str(value));
            }
            '-' => {
                chars.next();
                let mut word = String::from("-");
                while let Some(&c) = chars.peek().filter(|c| c.is_ascii_alphabetic()) {
                    word.push(c);
                    chars.next();
                }
                if word.len() == 1 {
                    return refuse("A '-' in the rule is not followed by an operator.");
                }
                tokens.push(Token::Operator(word));
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_' || **c == '.') {
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
            '[' => return refuse("Array values (for -in and -notIn) are not supported in rules here."),
            other => return refuse(format!("The character '{other}' is not valid in a membership rule.")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat_operator(&mut self, name: &str) -> bool {
        match self.peek() {
            Some(Token::Operator(op)) if op.eq_ignore_ascii_case(name) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_close(&mut self) -> Result<(), RuleError> {
        match self.next() {
            Some(Token::Close) => Ok(()),
            _ => refuse("A '(' in the rule has no matching ')'."),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut left = self.and(depth)?;
        while self.eat_operator("-or") {
            left = Rule::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Rule, RuleError> {
        let mut left = self.unary(depth)?;
        while self.eat_operator("-and") {
            left = Rule::And(Box::new(left), Box::new(self.unary(depth)?));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Rule, RuleError> {
        if depth >= MAX_RULE_DEPTH {
            return refuse(format!("The rule nests parentheses and -not more than {MAX_RULE_DEPTH} levels deep."));
        }
        if self.eat_operator("-not") {
            return Ok(Rule::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or(depth + 1)?;
            self.expect_close()?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn operator(&mut self) -> Result<String, RuleError> {
        match self.next() {
            Some(Token::Operator(op)) => Ok(op),
            _ => refuse("An operator (such as -eq) was expected after the property."),
        }
    }

    fn string_operator(&mut self) -> Result<StringOperator, RuleError> {
        let op = self.operator()?;
        StringOperator::parse(&op).ok_or_else(|| {
            RuleError(format!(
                "The operator '{op}' is not supported here; use -eq, -ne, -startsWith, -notStartsWith, -endsWith, \
                 -notEndsWith, -contains or -notContains."
            ))
        })
    }

    fn string_value(&mut self) -> Result<String, RuleError> {
        match self.next() {
            Some(Token::Str(value)) => Ok(value),
            _ => refuse("A string value in double quotes was expected."),
        }
    }

    fn comparison(&mut self) -> Result<Rule, RuleError> {
        let path = match self.next() {
            Some(Token::Word(word)) => word,
            Some(Token::Close) | None => return refuse("The rule ends where a condition was expected."),
            _ => return refuse("A condition must start with a property such as device.displayName."),
        };
        let Some((object, property)) = path.split_once('.') else {
            return refuse(format!("'{path}' is not a property; properties are written device.propertyName."));
        };
        if !object.eq_ignore_ascii_case("device") {
            return refuse(format!(
                "Only device rules are supported here: '{path}' is not a property of device objects."
            ));
        }
        let property = property.to_ascii_lowercase();
        match property.as_str() {
            "displayname" => self.string_comparison(StringProperty::DisplayName),
            "deviceid" => self.string_comparison(StringProperty::DeviceId),
            "deviceostype" => self.string_comparison(StringProperty::DeviceOsType),
            "accountenabled" => self.account_enabled(),
            "devicephysicalids" => self.physical_ids(),
            "deviceosversion"
            | "deviceownership"
            | "enrollmentprofilename"
            | "managementtype"
            | "devicemodel"
            | "devicemanufacturer"
            | "isrooted"
            | "objectid"
            | "systemlabels"
            | "devicecategory"
            | "profiletype"
            | "organizationalunit"
            | "devicetrusttype"
            | "memberof" => refuse(format!(
                "The device property '{path}' is not supported here; rules may use device.devicePhysicalIds, \
                 device.deviceOSType, device.displayName, device.deviceId and device.accountEnabled."
            )),
            _ if property.starts_with("extensionattribute") => {
                refuse(format!("The device property '{path}' is not supported here."))
            }
            _ => refuse(format!("'{path}' is not a property of device objects.")),
        }
    }

    fn string_comparison(&mut self, property: StringProperty) -> Result<Rule, RuleError> {
        let op = self.string_operator()?;
        Ok(Rule::Compare { property, op, value: self.string_value()? })
    }

    fn account_enabled(&mut self) -> Result<Rule, RuleError> {
        let op = self.operator()?;
        let positive = match op.to_ascii_lowercase().as_str() {
            "-eq" => true,
            "-ne" => false,
            _ => return refuse(format!("device.accountEnabled takes -eq or -ne, not '{op}'.")),
        };
        let value = match self.next() {
            Some(Token::Word(word) | Token::Str(word)) if word.eq_ignore_ascii_case("true") => true,
            Some(Token::Word(word) | Token::Str(word)) if word.eq_ignore_ascii_case("false") => false,
            _ => return refuse("device.accountEnabled is compared with true or false."),
        };
        Ok(Rule::AccountEnabled(value == positive))
    }

    /// `-any (_ op "value")`, with or without the parentheses around the condition.
    fn physical_ids(&mut self) -> Result<Rule, RuleError> {
        let op = self.operator()?;
        match op.to_ascii_lowercase().as_str() {
            "-any" => {}
            "-all" => return refuse("-all is not supported on device.devicePhysicalIds here; use -any."),
            _ => {
                return refuse(format!(
                    "device.devicePhysicalIds is a collection: use -any (_ -eq \"…\"), not '{op}'."
                ));
            }
        }
        let parenthesised = self.peek() == Some(&Token::Open);
        if parenthesised {
            self.at += 1;
        }
        match self.next() {
            Some(Token::Word(word)) if word == "_" => {}
            _ => return refuse("-any takes a condition on '_', the collection's item: -any (_ -eq \"…\")."),
        }
        let op = self.string_operator()?;
        let value = self.string_value()?;
        if parenthesised {
            self.expect_close()?;
        }
        Ok(Rule::PhysicalIdsAny { op, value })
    }
}

/// Parses a device membership rule, or says why it cannot be evaluated.
pub fn parse_rule(rule: &str) -> Result<Rule, RuleError> {
    if rule.chars().count() > MAX_RULE_LENGTH {
        return refuse(format!("The rule is longer than {MAX_RULE_LENGTH} characters."));
    }
    if rule.trim().is_empty() {
        return refuse("The rule is empty.");
    }
    let mut parser = Parser { tokens: tokenize(rule)?, at: 0 };
    let parsed = parser.or(0)?;
    match parser.next() {
        None => Ok(parsed),
        Some(Token::Close) => refuse("A ')' in the rule has no matching '('."),
        Some(_) => refuse("Conditions must be joined with -and or -or."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(op: StringOperator, value: &str) -> Rule {
        Rule::PhysicalIdsAny { op, value: value.into() }
    }

    #[test]
    fn autopilot_rules_parse() {
        assert_eq!(
            parse_rule(r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:Sales"))"#).unwrap(),
            any(StringOperator::Eq, "[OrderId]:Sales")
        );
        assert_eq!(
            parse_rule(r#"(device.devicePhysicalIDs -any (_ -contains "[ZTDID]"))"#).unwrap(),
            any(StringOperator::Contains, "[ZTDID]")
        );
        assert_eq!(
            parse_rule(r#"device.devicePhysicalIds -ANY _ -startswith "[ZTDId]""#).unwrap(),
            any(StringOperator::StartsWith, "[ZTDId]")
        );
        assert_eq!(
            parse_rule(r#"device.deviceOSType -eq "Windows" -and device.accountEnabled -ne false"#).unwrap(),
            Rule::And(
                Box::new(Rule::Compare {
                    property: StringProperty::DeviceOsType,
                    op: StringOperator::Eq,
                    value: "Windows".into()
                }),
                Box::new(Rule::AccountEnabled(true))
            )
        );
    }

    #[test]
    fn not_binds_tighter_than_and_and_and_than_or() {
        let a = || Rule::Compare { property: StringProperty::DisplayName, op: StringOperator::Eq, value: "a".into() };
        let b = || Rule::Compare { property: StringProperty::DeviceId, op: StringOperator::Eq, value: "b".into() };
        let c = || Rule::AccountEnabled(true);
        let parsed = parse_rule(
            r#"device.displayName -eq "a" -or -not device.deviceId -eq "b" -and device.accountEnabled -eq true"#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            Rule::Or(Box::new(a()), Box::new(Rule::And(Box::new(Rule::Not(Box::new(b()))), Box::new(c()))))
        );
        let grouped = parse_rule(
            r#"(device.displayName -eq "a" -or device.deviceId -eq "b") -and device.accountEnabled -eq true"#,
        )
        .unwrap();
        assert_eq!(grouped, Rule::And(Box::new(Rule::Or(Box::new(a()), Box::new(b()))), Box::new(c())));
    }

    #[test]
    fn backtick_escapes_a_double_quote() {
        assert_eq!(
            parse_rule(r#"device.displayName -eq "a`"b""#).unwrap(),
            Rule::Compare { property: StringProperty::DisplayName, op: StringOperator::Eq, value: "a\"b".into() }
        );
    }

    #[test]
    fn unsupported_rules_say_why() {
        for (rule, reason) in [
            (r#"user.department -eq "Sales""#, "Only device rules"),
            (r#"device.deviceModel -eq "X""#, "not supported"),
            (r#"device.displayName -match "X.*""#, "'-match' is not supported"),
            (r#"device.displayName -in ["a"]"#, "Array values"),
            (r#"device.devicePhysicalIds -all (_ -eq "x")"#, "-all"),
            (r#"device.displayName -eq "a" device.deviceId -eq "b""#, "joined"),
            (r#"(device.displayName -eq "a""#, "matching ')'"),
            (r#"device.displayName -eq "a")"#, "matching '('"),
            (r#"device.displayName -eq "a"#, "closing double quote"),
            (r#"device.accountEnabled -eq "yes""#, "true or false"),
            ("", "empty"),
            ("device.displayName -eq", "string value"),
        ] {
            let error = parse_rule(rule).expect_err(rule);
            assert!(error.0.contains(reason), "{rule}: {error}");
        }
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let deep = format!("{}device.displayName -eq \"a\"{}", "(".repeat(MAX_RULE_DEPTH), ")".repeat(MAX_RULE_DEPTH));
        assert!(parse_rule(&deep).unwrap_err().0.contains("levels deep"));
        let nots = format!("{}device.displayName -eq \"a\"", "-not ".repeat(MAX_RULE_DEPTH));
        assert!(parse_rule(&nots).unwrap_err().0.contains("levels deep"));
        let shallow = format!("{}device.displayName -eq \"a\"{}", "(".repeat(10), ")".repeat(10));
        assert!(parse_rule(&shallow).is_ok());
        let long = format!("device.displayName -eq \"{}\"", "a".repeat(MAX_RULE_LENGTH));
        assert!(parse_rule(&long).unwrap_err().0.contains("longer than"));
    }

    /// Any text at all, within the length bound, is parsed or refused: never a panic, and
    /// never nesting past the bound.
    #[test]
    fn arbitrary_text_never_panics() {
        use proptest::prelude::*;
        let alphabet = prop::sample::select(vec![
            "(",
            ")",
            "-not ",
            "-and ",
            "-or ",
            "-any ",
            "_ ",
            "-eq ",
            "-startsWith ",
            "\"x\" ",
            "\"[OrderId]:a\" ",
            "device.displayName ",
            "device.devicePhysicalIds ",
            "device.accountEnabled ",
            "true ",
            "`",
            "\"",
            "-",
            "[",
            "é",
            " ",
        ]);
        let config = ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() };
        proptest!(config, |(parts in prop::collection::vec(alphabet, 0..200))| {
            let rule: String = parts.concat();
            let _ = parse_rule(&rule);
        });
    }
}
