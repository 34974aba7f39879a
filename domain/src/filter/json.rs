//! The JSON form: `{"and": [...]}`, `{"or": [...]}`, `{"not_and": [...]}`,
//! `{"not_or": [...]}` and `{"field": "status", "op": "int_eq", "value": 7002}`.

use serde_json::{json, Map, Value as Json};

use super::{
    parse_int_string, BoolOp, Case, Field, FieldType, Filter, FilterError, FilterErrorKind, IntOp,
    Needle, Pattern, Rule, StrOp, Test, MAX_DEPTH, MAX_NODES,
};

const COMBINATORS: [&str; 4] = ["and", "or", "not_and", "not_or"];

/// An operator name resolved, before its operand is read.
#[derive(Clone, Copy)]
pub(super) enum OpSpec {
    Bool(BoolOp),
    Int(IntOp),
    Str(StrOp, Case),
    Regex { negated: bool },
}

impl OpSpec {
    pub(super) fn from_name(name: &str) -> Option<OpSpec> {
        match name {
            "bool_is" => return Some(OpSpec::Bool(BoolOp::Is)),
            "bool_nis" => return Some(OpSpec::Bool(BoolOp::Nis)),
            "str_regexmatch" => return Some(OpSpec::Regex { negated: false }),
            "str_nregexmatch" => return Some(OpSpec::Regex { negated: true }),
            _ => {}
        }
        if let Some(op) = IntOp::ALL.into_iter().find(|op| op.name() == name) {
            return Some(OpSpec::Int(op));
        }
        [Case::Sensitive, Case::Insensitive]
            .into_iter()
            .flat_map(|case| StrOp::ALL.into_iter().map(move |op| (op, case)))
            .find(|(op, case)| op.name(*case) == name)
            .map(|(op, case)| OpSpec::Str(op, case))
    }

    pub(super) fn field_type(self) -> FieldType {
        match self {
            OpSpec::Bool(_) => FieldType::Bool,
            OpSpec::Int(_) => FieldType::Int,
            OpSpec::Str(..) | OpSpec::Regex { .. } => FieldType::Str,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            OpSpec::Bool(BoolOp::Is) => "bool_is",
            OpSpec::Bool(BoolOp::Nis) => "bool_nis",
            OpSpec::Int(op) => op.name(),
            OpSpec::Str(op, case) => op.name(case),
            OpSpec::Regex { negated: false } => "str_regexmatch",
            OpSpec::Regex { negated: true } => "str_nregexmatch",
        }
    }
}

struct Walk {
    nodes: usize,
}

fn fail<T>(path: &str, kind: FilterErrorKind) -> Result<T, FilterError> {
    Err(FilterError {
        path: path.to_owned(),
        kind,
    })
}

pub(super) fn parse<F: Field>(value: &Json, root: &str) -> Result<Filter<F>, FilterError> {
    node(value, root, 1, &mut Walk { nodes: 0 })
}

fn node<F: Field>(
    value: &Json,
    path: &str,
    depth: usize,
    walk: &mut Walk,
) -> Result<Filter<F>, FilterError> {
    walk.nodes += 1;
    if walk.nodes > MAX_NODES {
        return fail(path, FilterErrorKind::TooManyNodes);
    }
    if depth > MAX_DEPTH {
        return fail(path, FilterErrorKind::TooDeep);
    }
    let Some(object) = value.as_object() else {
        return fail(path, FilterErrorKind::BadNode);
    };
    match COMBINATORS.iter().find(|k| object.contains_key(**k)) {
        Some(key) => combinator(object, key, path, depth, walk),
        None => rule(object, path).map(Filter::Rule),
    }
}

fn combinator<F: Field>(
    object: &Map<String, Json>,
    key: &str,
    path: &str,
    depth: usize,
    walk: &mut Walk,
) -> Result<Filter<F>, FilterError> {
    if let Some(other) = object.keys().find(|k| *k != key) {
        return fail(
            &format!("{path}.{other}"),
            FilterErrorKind::UnexpectedKey(other.clone()),
        );
    }
    let here = format!("{path}.{key}");
    let Some(items) = object[key].as_array() else {
        return fail(&here, FilterErrorKind::NotAnArray);
    };
    let children = items
        .iter()
        .enumerate()
        .map(|(i, item)| node(item, &format!("{here}[{i}]"), depth + 1, walk))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match key {
        "and" => Filter::And(children),
        "or" => Filter::Or(children),
        "not_and" => Filter::NotAnd(children),
        _ => Filter::NotOr(children),
    })
}

fn rule<F: Field>(object: &Map<String, Json>, path: &str) -> Result<Rule<F>, FilterError> {
    if let Some(other) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "field" | "op" | "value"))
    {
        return fail(
            &format!("{path}.{other}"),
            FilterErrorKind::UnexpectedKey(other.clone()),
        );
    }
    let get = |key: &'static str| {
        object
            .get(key)
            .map_or_else(|| fail(path, FilterErrorKind::Missing(key)), Ok)
    };
    let (field_json, op_json, value) = (get("field")?, get("op")?, get("value")?);

    let field_path = format!("{path}.field");
    let Some(name) = field_json.as_str() else {
        return fail(
            &field_path,
            FilterErrorKind::BadValue {
                expected: "a field name",
            },
        );
    };
    let Some(field) = F::from_name(name) else {
        return fail(&field_path, FilterErrorKind::UnknownField(name.to_owned()));
    };

    let op_path = format!("{path}.op");
    let Some(op_name) = op_json.as_str() else {
        return fail(
            &op_path,
            FilterErrorKind::BadValue {
                expected: "an operator name",
            },
        );
    };
    let Some(op) = OpSpec::from_name(op_name) else {
        return fail(&op_path, FilterErrorKind::UnknownOp(op_name.to_owned()));
    };
    if op.field_type() != field.field_type() {
        return fail(
            &op_path,
            FilterErrorKind::OpMismatch(super::OpMismatch {
                op: op.name(),
                field: field.name(),
                field_type: field.field_type(),
            }),
        );
    }

    let value_path = format!("{path}.value");
    let bad = |expected| fail(&value_path, FilterErrorKind::BadValue { expected });
    let test = match op {
        OpSpec::Bool(op) => match value {
            Json::Bool(b) => Test::Bool(op, *b),
            Json::String(s) if s == "true" => Test::Bool(op, true),
            Json::String(s) if s == "false" => Test::Bool(op, false),
            _ => return bad("a boolean"),
        },
        OpSpec::Int(op) => {
            let n = match value {
                Json::Number(n) => n.as_i64(),
                Json::String(s) => parse_int_string(s),
                _ => None,
            };
            match n {
                Some(n) => Test::Int(op, n),
                None => return bad("an integer, or a string of digits"),
            }
        }
        OpSpec::Str(op, case) => match value {
            Json::String(s) => Test::Str(op, case, Needle::new(s.as_str())),
            _ => return bad("a string"),
        },
        OpSpec::Regex { negated } => match value {
            Json::String(s) => match Pattern::new(s) {
                Ok(pattern) => Test::Regex { negated, pattern },
                Err(e) => return fail(&value_path, FilterErrorKind::Regex(e)),
            },
            _ => return bad("a regular expression string"),
        },
    };
    Rule::new(field, test).map_err(|e| FilterError {
        path: op_path,
        kind: FilterErrorKind::OpMismatch(e),
    })
}

pub(super) fn render<F: Field>(filter: &Filter<F>) -> Json {
    let list = |key: &str, children: &[Filter<F>]| {
        let items: Vec<Json> = children.iter().map(render).collect();
        json!({ key: items })
    };
    match filter {
        Filter::And(c) => list("and", c),
        Filter::Or(c) => list("or", c),
        Filter::NotAnd(c) => list("not_and", c),
        Filter::NotOr(c) => list("not_or", c),
        Filter::Rule(rule) => {
            let value = match rule.test() {
                Test::Bool(_, b) => json!(b),
                Test::Int(_, n) => json!(n),
                Test::Str(_, _, needle) => json!(needle.as_str()),
                Test::Regex { pattern, .. } => json!(pattern.as_str()),
            };
            json!({ "field": rule.field().name(), "op": rule.test().op_name(), "value": value })
        }
    }
}
