//! Query filters: the tree that selects jobs (search, email reports) and devices (campaign
//! targeting).
//!
//! A [`Filter`] is `and`, `or`, `not_and`, `not_or` over children, or a [`Rule`] testing one
//! typed field. Fields are a closed set per subject ([`JobField`], [`DeviceField`]), each with
//! a [`FieldType`]; a rule can only be built with a [`Test`] of the field's type, so an
//! operator that does not fit is rejected at parse time, never evaluated as false. Both
//! surface forms parse into the same tree: JSON (`json`, errors carry the JSON path of the
//! offending node) and a compact text form (`text`, errors carry a byte offset). Evaluation
//! (`eval`) is pure: the caller passes `now` for `time_since_start` and `time_since_end`.
//!
//! A rule on a value the subject lacks (a running job's `end_time`, a missed job's
//! `device_id`) is false, whatever its operator, so `int_neq` on a missing value is false too
//! and only a `not_*` around it makes it true.

mod eval;
mod field;
mod json;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;

use regex::Regex;
use thiserror::Error;

pub use eval::{DeviceView, JobView, Record, Value};
pub use field::{DeviceField, Field, FieldType, JobField};
pub use text::TextError;

/// Deepest nesting accepted (a lone rule has depth 1).
pub const MAX_DEPTH: usize = 32;
/// Most nodes (combinators and rules) accepted in one filter.
pub const MAX_NODES: usize = 1000;
/// Longest regular expression source accepted, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// Compiled-program budget for one regular expression (bytes), so that a short pattern with
/// large repetitions cannot make every evaluation slow or exhaust memory.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// A filter over subjects whose fields are `F`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter<F> {
    /// True when every child is (true when empty).
    And(Vec<Filter<F>>),
    /// True when any child is (false when empty).
    Or(Vec<Filter<F>>),
    /// True when not every child is: `not (a and b)`.
    NotAnd(Vec<Filter<F>>),
    /// True when no child is: `not (a or b)`, "nor".
    NotOr(Vec<Filter<F>>),
    Rule(Rule<F>),
}

impl<F: Field> Filter<F> {
    /// Number of nodes, combinators and rules alike.
    pub fn node_count(&self) -> usize {
        match self {
            Filter::Rule(_) => 1,
            Filter::And(c) | Filter::Or(c) | Filter::NotAnd(c) | Filter::NotOr(c) => {
                1 + c.iter().map(Filter::node_count).sum::<usize>()
            }
        }
    }

    /// Nesting depth; a lone rule has depth 1.
    pub fn depth(&self) -> usize {
        match self {
            Filter::Rule(_) => 1,
            Filter::And(c) | Filter::Or(c) | Filter::NotAnd(c) | Filter::NotOr(c) => {
                1 + c.iter().map(Filter::depth).max().unwrap_or(0)
            }
        }
    }

    /// Parses the JSON form; errors name the offending node's path under `filter`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, FilterError> {
        json::parse(value, "filter")
    }

    /// Parses the JSON form; errors name the offending node's path under `root`
    /// (e.g. `device_filter`).
    pub fn from_json_at(value: &serde_json::Value, root: &str) -> Result<Self, FilterError> {
        json::parse(value, root)
    }

    /// The JSON form; `from_json(&f.to_json()) == Ok(f)`.
    pub fn to_json(&self) -> serde_json::Value {
        json::render(self)
    }

    /// Parses the text form (see `text` for the grammar).
    pub fn parse_text(input: &str) -> Result<Self, TextError> {
        text::parse(input)
    }

    /// Evaluates against one subject at `now` (Unix seconds).
    pub fn matches<R: Record<F> + ?Sized>(&self, subject: &R, now: i64) -> bool {
        eval::matches(self, subject, now)
    }
}

/// The text form; `Filter::parse_text(&f.to_string()) == Ok(f)`.
impl<F: Field> fmt::Display for Filter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::print(self, f)
    }
}

/// One field tested one way. Built only through [`Rule::new`], which checks that the test
/// fits the field's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule<F> {
    field: F,
    test: Test,
}

impl<F: Field> Rule<F> {
    pub fn new(field: F, test: Test) -> Result<Self, OpMismatch> {
        if test.field_type() == field.field_type() {
            Ok(Rule { field, test })
        } else {
            Err(OpMismatch {
                op: test.op_name(),
                field: field.name(),
                field_type: field.field_type(),
            })
        }
    }

    pub fn field(&self) -> F {
        self.field
    }

    pub fn test(&self) -> &Test {
        &self.test
    }
}

/// An operator applied to a field whose type it does not fit.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("operator `{op}` does not apply to `{field}`, a {field_type} field")]
pub struct OpMismatch {
    pub op: &'static str,
    pub field: &'static str,
    pub field_type: FieldType,
}

/// What a rule checks, with its operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Test {
    Bool(BoolOp, bool),
    Int(IntOp, i64),
    Str(StrOp, Case, Needle),
    /// `negated` is `str_nregexmatch`.
    Regex {
        negated: bool,
        pattern: Pattern,
    },
}

impl Test {
    pub fn field_type(&self) -> FieldType {
        match self {
            Test::Bool(..) => FieldType::Bool,
            Test::Int(..) => FieldType::Int,
            Test::Str(..) | Test::Regex { .. } => FieldType::Str,
        }
    }

    /// Whether `value` passes this test; false for a missing value or one of another type.
    pub fn passes(&self, value: &Value<'_>) -> bool {
        eval::test(self, value)
    }

    /// The operator's name in the JSON form, e.g. `str_contains_ci`.
    pub fn op_name(&self) -> &'static str {
        match self {
            Test::Bool(BoolOp::Is, _) => "bool_is",
            Test::Bool(BoolOp::Nis, _) => "bool_nis",
            Test::Int(op, _) => op.name(),
            Test::Str(op, case, _) => op.name(*case),
            Test::Regex { negated: false, .. } => "str_regexmatch",
            Test::Regex { negated: true, .. } => "str_nregexmatch",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BoolOp {
    Is,
    Nis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl IntOp {
    pub const ALL: [IntOp; 6] = [
        IntOp::Eq,
        IntOp::Neq,
        IntOp::Gt,
        IntOp::Gte,
        IntOp::Lt,
        IntOp::Lte,
    ];

    pub fn name(self) -> &'static str {
        match self {
            IntOp::Eq => "int_eq",
            IntOp::Neq => "int_neq",
            IntOp::Gt => "int_gt",
            IntOp::Gte => "int_gte",
            IntOp::Lt => "int_lt",
            IntOp::Lte => "int_lte",
        }
    }

    pub fn holds(self, left: i64, right: i64) -> bool {
        match self {
            IntOp::Eq => left == right,
            IntOp::Neq => left != right,
            IntOp::Gt => left > right,
            IntOp::Gte => left >= right,
            IntOp::Lt => left < right,
            IntOp::Lte => left <= right,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StrOp {
    Eq,
    Neq,
    Contains,
    NContains,
    StartsWith,
    NStartsWith,
    EndsWith,
    NEndsWith,
}

impl StrOp {
    pub const ALL: [StrOp; 8] = [
        StrOp::Eq,
        StrOp::Neq,
        StrOp::Contains,
        StrOp::NContains,
        StrOp::StartsWith,
        StrOp::NStartsWith,
        StrOp::EndsWith,
        StrOp::NEndsWith,
    ];

    pub fn name(self, case: Case) -> &'static str {
        let (sensitive, insensitive) = match self {
            StrOp::Eq => ("str_eq", "str_eq_ci"),
            StrOp::Neq => ("str_neq", "str_neq_ci"),
            StrOp::Contains => ("str_contains", "str_contains_ci"),
            StrOp::NContains => ("str_ncontains", "str_ncontains_ci"),
            StrOp::StartsWith => ("str_startswith", "str_startswith_ci"),
            StrOp::NStartsWith => ("str_nstartswith", "str_nstartswith_ci"),
            StrOp::EndsWith => ("str_endswith", "str_endswith_ci"),
            StrOp::NEndsWith => ("str_nendswith", "str_nendswith_ci"),
        };
        match case {
            Case::Sensitive => sensitive,
            Case::Insensitive => insensitive,
        }
    }

    /// The positive operator and whether this one negates it.
    pub fn positive(self) -> (StrOp, bool) {
        match self {
            StrOp::Neq => (StrOp::Eq, true),
            StrOp::NContains => (StrOp::Contains, true),
            StrOp::NStartsWith => (StrOp::StartsWith, true),
            StrOp::NEndsWith => (StrOp::EndsWith, true),
            op => (op, false),
        }
    }
}

/// Whether a string comparison folds case. Insensitive comparison compares
/// `str::to_lowercase` of both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// A string operand, with its lower-cased form computed once for `_ci` operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needle {
    text: String,
    folded: String,
}

impl Needle {
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let folded = text.to_lowercase();
        Needle { text, folded }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn folded(&self) -> &str {
        &self.folded
    }
}

/// A compiled regular expression, compared by its source.
#[derive(Clone, Debug)]
pub struct Pattern {
    regex: Regex,
}

impl Pattern {
    /// Compiles `source` within [`MAX_REGEX_LEN`] and [`REGEX_SIZE_LIMIT`].
    pub fn new(source: &str) -> Result<Self, RegexError> {
        if source.len() > MAX_REGEX_LEN {
            return Err(RegexError::TooLarge);
        }
        regex::RegexBuilder::new(source)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map(|regex| Pattern { regex })
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => RegexError::TooLarge,
                other => RegexError::Invalid(other.to_string()),
            })
    }

    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        self.regex.is_match(haystack)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegexError {
    #[error("regular expression too large (at most {MAX_REGEX_LEN} bytes of source and {REGEX_SIZE_LIMIT} bytes compiled)")]
    TooLarge,
    #[error("invalid regular expression: {0}")]
    Invalid(String),
}

/// A rejected JSON filter: the path of the offending node (`filter.and[2].op`) and why.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{path}: {kind}")]
pub struct FilterError {
    pub path: String,
    pub kind: FilterErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FilterErrorKind {
    #[error("expected an object with one of `and`, `or`, `not_and`, `not_or`, or with `field`, `op` and `value`")]
    BadNode,
    #[error("expected an array of filters")]
    NotAnArray,
    #[error("unexpected key `{0}`")]
    UnexpectedKey(String),
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("unknown operator `{0}`")]
    UnknownOp(String),
    #[error(transparent)]
    OpMismatch(#[from] OpMismatch),
    #[error("expected {expected}")]
    BadValue { expected: &'static str },
    #[error(transparent)]
    Regex(#[from] RegexError),
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("more than {MAX_NODES} nodes")]
    TooManyNodes,
}

/// Parses an operand given as a string for an int field: optional `-`, then ASCII digits,
/// within `i64`.
pub(crate) fn parse_int_string(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
