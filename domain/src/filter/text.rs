//! The compact text form, for people and query strings. It parses into the same [`Filter`]
//! as the JSON form and prints back from it: `Filter::parse_text(&f.to_string()) == Ok(f)`.
//!
//! ```text
//! filter  = or
//! or      = and { "or" and }                      two or more operands: Or
//! and     = unary { "and" unary }                 two or more operands: And
//! unary   = "not" "(" [ filter ] ")"              NotAnd of the and-operands inside,
//!                                                 NotOr of the or-operands inside,
//!                                                 else NotAnd of the one filter inside
//!         | "nor" "(" [ filter ] ")"              NotOr of the or-operands, else of the one
//!         | "all" "(" [ filter { "," filter } ] ")"   And of the arguments
//!         | "any" "(" [ filter { "," filter } ] ")"   Or of the arguments
//!         | "(" filter ")"
//!         | rule
//! rule    = field op value
//! ```
//!
//! `and` binds tighter than `or`; parentheses group (`(a and b) and c` keeps the inner `and`
//! as its own node). Keywords are lower case: `and or not nor all any is true false`.
//!
//! Operators, by the field's type:
//!
//! | text | int | string | string, case-insensitive |
//! |---|---|---|---|
//! | `=` `!=` | `int_eq` `int_neq` | `str_eq` `str_neq` | `=*` `!=*` |
//! | `>` `>=` `<` `<=` | `int_gt` `int_gte` `int_lt` `int_lte` | | |
//! | `~` `!~` | | `str_contains` `str_ncontains` | `~*` `!~*` |
//! | `^=` `!^=` | | `str_startswith` `str_nstartswith` | `^=*` `!^=*` |
//! | `$=` `!$=` | | `str_endswith` `str_nendswith` | `$=*` `!$=*` |
//! | `=~` `!=~` | | `str_regexmatch` `str_nregexmatch` | |
//!
//! and for bool fields `running is true` (`bool_is`), `running is not true` (`bool_nis`).
//!
//! Values: integers (`-12`, or a string of digits for an int field), strings in double quotes
//! with escapes `\"` `\\` `\n` `\r` `\t` `\u{…}`, regular expressions as `/…/` (where `\/`
//! stands for `/` and every other backslash pair is kept as written) or as a string, and
//! `true`/`false`. Example:
//! `status = 7002 and time_since_end <= 86400 and not (username ~* "test")`.
//!
//! Errors carry the byte offset where the input went wrong. Parentheses nest at most
//! [`MAX_NESTING`] deep, so no input can exhaust the stack.

use std::fmt::{self, Write};

use thiserror::Error;

use super::json::OpSpec;
use super::{
    parse_int_string, BoolOp, Case, Field, FieldType, Filter, IntOp, Needle, OpMismatch, Pattern,
    RegexError, Rule, StrOp, Test, MAX_DEPTH, MAX_NODES,
};

/// Deepest nesting of parentheses and calls the parser follows.
pub const MAX_NESTING: usize = 2 * MAX_DEPTH;

/// A rejected text filter: where (byte offset into the input) and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("at byte {offset}: {kind}")]
pub struct TextError {
    pub offset: usize,
    pub kind: TextErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TextErrorKind {
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("unterminated string")]
    UnterminatedString,
    #[error("bad escape in string")]
    BadEscape,
    #[error("unterminated regular expression")]
    UnterminatedRegex,
    #[error("integer out of range")]
    IntOutOfRange,
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error(transparent)]
    OpMismatch(#[from] OpMismatch),
    #[error(transparent)]
    Regex(#[from] RegexError),
    #[error("nested too deeply")]
    TooDeep,
    #[error("more than {MAX_NODES} nodes")]
    TooManyNodes,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Int(String),
    Str(String),
    Regex(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
    End,
}

/// Longest first, so that `!=~` is not read as `!=` then `~`.
const OPS: [&str; 22] = [
    "!^=*", "!$=*", "!=~", "!^=", "!$=", "^=*", "$=*", "!=*", "!~*", ">=", "<=", "!=", "=~", "!~",
    "^=", "$=", "~*", "=*", "=", "~", ">", "<",
];

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, TextError> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |offset, kind| Err(TextError { offset, kind });
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' | b')' | b',' => {
                let tok = match c {
                    b'(' => Tok::Open,
                    b')' => Tok::Close,
                    _ => Tok::Comma,
                };
                out.push((start, tok));
                i += 1;
            }
            b'"' => {
                let (text, next) = string(input, i)?;
                out.push((start, Tok::Str(text)));
                i = next;
            }
            b'/' => {
                let (text, next) = regex(input, i)?;
                out.push((start, Tok::Regex(text)));
                i = next;
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if c == b'-' && i == start + 1 {
                    return err(start, TextErrorKind::UnexpectedChar('-'));
                }
                out.push((start, Tok::Int(input[start..i].to_owned())));
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push((start, Tok::Word(input[start..i].to_owned())));
            }
            _ => match OPS.iter().find(|op| input[i..].starts_with(**op)) {
                Some(op) => {
                    out.push((start, Tok::Op(op)));
                    i += op.len();
                }
                None => {
                    let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
                    return err(start, TextErrorKind::UnexpectedChar(ch));
                }
            },
        }
    }
    out.push((input.len(), Tok::End));
    Ok(out)
}

/// A double-quoted string starting at `start`; returns it unescaped and the offset after it.
fn string(input: &str, start: usize) -> Result<(String, usize), TextError> {
    let mut out = String::new();
    let mut chars = input[start + 1..].char_indices();
    let at = |rel: usize| start + 1 + rel;
    while let Some((rel, c)) = chars.next() {
        match c {
            '"' => return Ok((out, at(rel) + 1)),
            '\\' => {
                let bad = || TextError {
                    offset: at(rel),
                    kind: TextErrorKind::BadEscape,
                };
                match chars.next().map(|(_, e)| e) {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('u') => {
                        if chars.next().map(|(_, c)| c) != Some('{') {
                            return Err(bad());
                        }
                        let mut hex = String::new();
                        loop {
                            match chars.next().map(|(_, c)| c) {
                                Some('}') => break,
                                Some(h) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                                _ => return Err(bad()),
                            }
                        }
                        let ch = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(bad)?;
                        out.push(ch);
                    }
                    _ => return Err(bad()),
                }
            }
            c => out.push(c),
        }
    }
    Err(TextError {
        offset: start,
        kind: TextErrorKind::UnterminatedString,
    })
}

/// A `/…/` regular expression starting at `start`.
fn regex(input: &str, start: usize) -> Result<(String, usize), TextError> {
    let mut out = String::new();
    let mut chars = input[start + 1..].char_indices();
    while let Some((rel, c)) = chars.next() {
        match c {
            '/' => return Ok((out, start + 1 + rel + 1)),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('/') => out.push('/'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(TextError {
        offset: start,
        kind: TextErrorKind::UnterminatedRegex,
    })
}

/// Which infix chain produced a node, if it was not grouped by parentheses or a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chain {
    And,
    Or,
}

struct Parsed<F> {
    filter: Filter<F>,
    depth: usize,
    chain: Option<Chain>,
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    nodes: usize,
    nesting: usize,
}

pub(super) fn parse<F: Field>(input: &str) -> Result<Filter<F>, TextError> {
    let mut p = Parser {
        toks: lex(input)?,
        pos: 0,
        nodes: 0,
        nesting: 0,
    };
    let parsed = p.or::<F>()?;
    if p.peek() != &Tok::End {
        return p.fail(TextErrorKind::Expected(
            "`and`, `or` or the end of the filter",
        ));
    }
    Ok(parsed.filter)
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].1
    }

    fn offset(&self) -> usize {
        self.toks[self.pos].0
    }

    fn next(&mut self) -> (usize, Tok) {
        let tok = self.toks[self.pos].clone();
        if tok.1 != Tok::End {
            self.pos += 1;
        }
        tok
    }

    fn fail<T>(&self, kind: TextErrorKind) -> Result<T, TextError> {
        Err(TextError {
            offset: self.offset(),
            kind,
        })
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Word(w) if w == word)
    }

    fn expect(&mut self, tok: Tok, what: &'static str) -> Result<(), TextError> {
        if *self.peek() == tok {
            self.next();
            Ok(())
        } else {
            self.fail(TextErrorKind::Expected(what))
        }
    }

    /// Counts a new node and checks the limits, reporting at `offset`.
    fn node<F: Field>(
        &mut self,
        offset: usize,
        filter: Filter<F>,
        depth: usize,
        chain: Option<Chain>,
    ) -> Result<Parsed<F>, TextError> {
        self.nodes += 1;
        let kind = if self.nodes > MAX_NODES {
            TextErrorKind::TooManyNodes
        } else if depth > MAX_DEPTH {
            TextErrorKind::TooDeep
        } else {
            return Ok(Parsed {
                filter,
                depth,
                chain,
            });
        };
        Err(TextError { offset, kind })
    }

    fn or<F: Field>(&mut self) -> Result<Parsed<F>, TextError> {
        let start = self.offset();
        let first = self.and()?;
        if !self.is_word("or") {
            return Ok(first);
        }
        let mut depth = first.depth;
        let mut items = vec![first.filter];
        while self.is_word("or") {
            self.next();
            let item = self.and()?;
            depth = depth.max(item.depth);
            items.push(item.filter);
        }
        self.node(start, Filter::Or(items), depth + 1, Some(Chain::Or))
    }

    fn and<F: Field>(&mut self) -> Result<Parsed<F>, TextError> {
        let start = self.offset();
        let first = self.unary()?;
        if !self.is_word("and") {
            return Ok(first);
        }
        let mut depth = first.depth;
        let mut items = vec![first.filter];
        while self.is_word("and") {
            self.next();
            let item = self.unary()?;
            depth = depth.max(item.depth);
            items.push(item.filter);
        }
        self.node(start, Filter::And(items), depth + 1, Some(Chain::And))
    }

    /// Called just after consuming an opening parenthesis, which an error points at.
    fn enter(&mut self) -> Result<(), TextError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(TextError {
                offset: self.toks[self.pos - 1].0,
                kind: TextErrorKind::TooDeep,
            });
        }
        Ok(())
    }

    fn unary<F: Field>(&mut self) -> Result<Parsed<F>, TextError> {
        let start = self.offset();
        let word = match self.peek() {
            Tok::Word(w) => Some(w.clone()),
            Tok::Open => {
                self.next();
                self.enter()?;
                let inner = self.or::<F>()?;
                self.expect(Tok::Close, "`)`")?;
                self.nesting -= 1;
                return Ok(Parsed {
                    chain: None,
                    ..inner
                });
            }
            _ => None,
        };
        match word.as_deref() {
            Some(kw @ ("not" | "nor")) => {
                self.next();
                self.expect(Tok::Open, "`(` after `not` or `nor`")?;
                self.enter()?;
                let inner = if *self.peek() == Tok::Close {
                    None
                } else {
                    Some(self.or::<F>()?)
                };
                self.expect(Tok::Close, "`)`")?;
                self.nesting -= 1;
                let nor = kw == "nor";
                match inner {
                    None if nor => self.node(start, Filter::NotOr(Vec::new()), 1, None),
                    None => self.node(start, Filter::NotAnd(Vec::new()), 1, None),
                    Some(Parsed {
                        filter: Filter::Or(items),
                        depth,
                        chain: Some(Chain::Or),
                    }) => Ok(Parsed {
                        filter: Filter::NotOr(items),
                        depth,
                        chain: None,
                    }),
                    Some(Parsed {
                        filter: Filter::And(items),
                        depth,
                        chain: Some(Chain::And),
                    }) if !nor => Ok(Parsed {
                        filter: Filter::NotAnd(items),
                        depth,
                        chain: None,
                    }),
                    Some(one) => {
                        let filter = if nor {
                            Filter::NotOr(vec![one.filter])
                        } else {
                            Filter::NotAnd(vec![one.filter])
                        };
                        self.node(start, filter, one.depth + 1, None)
                    }
                }
            }
            Some(kw @ ("all" | "any")) => {
                self.next();
                self.expect(Tok::Open, "`(` after `all` or `any`")?;
                self.enter()?;
                let mut items = Vec::new();
                let mut depth = 0;
                if *self.peek() != Tok::Close {
                    loop {
                        let item = self.or::<F>()?;
                        depth = depth.max(item.depth);
                        items.push(item.filter);
                        if *self.peek() != Tok::Comma {
                            break;
                        }
                        self.next();
                    }
                }
                self.expect(Tok::Close, "`,` or `)`")?;
                self.nesting -= 1;
                let filter = if kw == "all" {
                    Filter::And(items)
                } else {
                    Filter::Or(items)
                };
                self.node(start, filter, depth + 1, None)
            }
            Some(_) => {
                let rule = self.rule::<F>()?;
                self.node(start, Filter::Rule(rule), 1, None)
            }
            None => self.fail(TextErrorKind::Expected(
                "a rule, `(`, `not`, `nor`, `all` or `any`",
            )),
        }
    }

    fn rule<F: Field>(&mut self) -> Result<Rule<F>, TextError> {
        let (field_at, tok) = self.next();
        let Tok::Word(name) = tok else {
            return Err(TextError {
                offset: field_at,
                kind: TextErrorKind::Expected("a field name"),
            });
        };
        let Some(field) = F::from_name(&name) else {
            return Err(TextError {
                offset: field_at,
                kind: TextErrorKind::UnknownField(name),
            });
        };
        let op_at = self.offset();
        let op = match self.next().1 {
            Tok::Word(w) if w == "is" => {
                if self.is_word("not") {
                    self.next();
                    OpSpec::Bool(BoolOp::Nis)
                } else {
                    OpSpec::Bool(BoolOp::Is)
                }
            }
            Tok::Op(op) => text_op(op, field.field_type()),
            _ => {
                return Err(TextError {
                    offset: op_at,
                    kind: TextErrorKind::Expected("an operator"),
                })
            }
        };
        if op.field_type() != field.field_type() {
            return Err(TextError {
                offset: op_at,
                kind: TextErrorKind::OpMismatch(OpMismatch {
                    op: op.name(),
                    field: field.name(),
                    field_type: field.field_type(),
                }),
            });
        }
        let (value_at, value) = self.next();
        let bad = |what| {
            Err(TextError {
                offset: value_at,
                kind: TextErrorKind::Expected(what),
            })
        };
        let test = match (op, value) {
            (OpSpec::Bool(op), Tok::Word(w)) if w == "true" || w == "false" => {
                Test::Bool(op, w == "true")
            }
            (OpSpec::Bool(_), _) => return bad("`true` or `false`"),
            (OpSpec::Int(op), Tok::Int(digits) | Tok::Str(digits)) => {
                match parse_int_string(&digits) {
                    Some(n) => Test::Int(op, n),
                    None => {
                        return Err(TextError {
                            offset: value_at,
                            kind: TextErrorKind::IntOutOfRange,
                        })
                    }
                }
            }
            (OpSpec::Int(_), _) => return bad("an integer"),
            (OpSpec::Str(op, case), Tok::Str(s)) => Test::Str(op, case, Needle::new(s)),
            (OpSpec::Str(..), _) => return bad("a quoted string"),
            (OpSpec::Regex { negated }, Tok::Str(s) | Tok::Regex(s)) => match Pattern::new(&s) {
                Ok(pattern) => Test::Regex { negated, pattern },
                Err(e) => {
                    return Err(TextError {
                        offset: value_at,
                        kind: TextErrorKind::Regex(e),
                    })
                }
            },
            (OpSpec::Regex { .. }, _) => return bad("a `/regular expression/` or a string"),
        };
        Rule::new(field, test).map_err(|e| TextError {
            offset: op_at,
            kind: TextErrorKind::OpMismatch(e),
        })
    }
}

/// The operator a symbol means for a field of type `ty`; `=` and `!=` depend on it.
fn text_op(op: &str, ty: FieldType) -> OpSpec {
    let ci = op.len() > 1 && op.ends_with('*');
    let base = if ci { &op[..op.len() - 1] } else { op };
    let case = if ci {
        Case::Insensitive
    } else {
        Case::Sensitive
    };
    match base {
        "=" if ty == FieldType::Str || ci => OpSpec::Str(StrOp::Eq, case),
        "!=" if ty == FieldType::Str || ci => OpSpec::Str(StrOp::Neq, case),
        "=" => OpSpec::Int(IntOp::Eq),
        "!=" => OpSpec::Int(IntOp::Neq),
        ">" => OpSpec::Int(IntOp::Gt),
        ">=" => OpSpec::Int(IntOp::Gte),
        "<" => OpSpec::Int(IntOp::Lt),
        "<=" => OpSpec::Int(IntOp::Lte),
        "~" => OpSpec::Str(StrOp::Contains, case),
        "!~" => OpSpec::Str(StrOp::NContains, case),
        "^=" => OpSpec::Str(StrOp::StartsWith, case),
        "!^=" => OpSpec::Str(StrOp::NStartsWith, case),
        "$=" => OpSpec::Str(StrOp::EndsWith, case),
        "!$=" => OpSpec::Str(StrOp::NEndsWith, case),
        "=~" => OpSpec::Regex { negated: false },
        _ => OpSpec::Regex { negated: true },
    }
}

fn symbol(test: &Test) -> &'static str {
    match test {
        Test::Bool(BoolOp::Is, _) => "is",
        Test::Bool(BoolOp::Nis, _) => "is not",
        Test::Int(op, _) => match op {
            IntOp::Eq => "=",
            IntOp::Neq => "!=",
            IntOp::Gt => ">",
            IntOp::Gte => ">=",
            IntOp::Lt => "<",
            IntOp::Lte => "<=",
        },
        Test::Str(op, case, _) => {
            let (plain, folded) = match op {
                StrOp::Eq => ("=", "=*"),
                StrOp::Neq => ("!=", "!=*"),
                StrOp::Contains => ("~", "~*"),
                StrOp::NContains => ("!~", "!~*"),
                StrOp::StartsWith => ("^=", "^=*"),
                StrOp::NStartsWith => ("!^=", "!^=*"),
                StrOp::EndsWith => ("$=", "$=*"),
                StrOp::NEndsWith => ("!$=", "!$=*"),
            };
            match case {
                Case::Sensitive => plain,
                Case::Insensitive => folded,
            }
        }
        Test::Regex { negated: false, .. } => "=~",
        Test::Regex { negated: true, .. } => "!=~",
    }
}

fn quote(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn is_chain<F>(filter: &Filter<F>) -> bool {
    matches!(filter, Filter::And(c) | Filter::Or(c) if c.len() >= 2)
}

/// A filter where one operand of a chain is expected: chains get parentheses so that they
/// stay their own node.
fn operand<F: Field>(filter: &Filter<F>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if is_chain(filter) {
        f.write_char('(')?;
        print(filter, f)?;
        f.write_char(')')
    } else {
        print(filter, f)
    }
}

fn join<F: Field>(
    items: &[Filter<F>],
    sep: &str,
    f: &mut fmt::Formatter<'_>,
    each: fn(&Filter<F>, &mut fmt::Formatter<'_>) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        each(item, f)?;
    }
    Ok(())
}

pub(super) fn print<F: Field>(filter: &Filter<F>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match filter {
        Filter::Rule(rule) => {
            write!(f, "{} {} ", rule.field().name(), symbol(rule.test()))?;
            match rule.test() {
                Test::Bool(_, b) => write!(f, "{b}"),
                Test::Int(_, n) => write!(f, "{n}"),
                Test::Str(_, _, needle) => quote(needle.as_str(), f),
                Test::Regex { pattern, .. } if !pattern.as_str().contains('/') => {
                    write!(f, "/{}/", pattern.as_str())
                }
                Test::Regex { pattern, .. } => quote(pattern.as_str(), f),
            }
        }
        Filter::And(c) if c.len() >= 2 => join(c, " and ", f, operand),
        Filter::Or(c) if c.len() >= 2 => join(c, " or ", f, operand),
        Filter::And(c) | Filter::Or(c) => {
            let name = if matches!(filter, Filter::And(_)) {
                "all"
            } else {
                "any"
            };
            write!(f, "{name}(")?;
            join(c, ", ", f, print)?;
            f.write_char(')')
        }
        Filter::NotAnd(c) if c.len() >= 2 => {
            f.write_str("not (")?;
            join(c, " and ", f, operand)?;
            f.write_char(')')
        }
        Filter::NotOr(c) if c.len() >= 2 => {
            f.write_str("not (")?;
            join(c, " or ", f, operand)?;
            f.write_char(')')
        }
        Filter::NotAnd(c) | Filter::NotOr(c) => {
            let name = if matches!(filter, Filter::NotAnd(_)) {
                "not"
            } else {
                "nor"
            };
            write!(f, "{name} (")?;
            join(c, "", f, operand)?;
            f.write_char(')')
        }
    }
}
