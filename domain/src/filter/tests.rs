use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::text::TextErrorKind;
use super::*;
use crate::ids::{JobId, TenantId, TenantRef, UserId};
use crate::model::{Classification, Job, JobProgress, JobStatus, JobTotals};

type JobFilter = Filter<JobField>;

fn rule(field: JobField, test: Test) -> JobFilter {
    Filter::Rule(Rule::new(field, test).expect("test fits field"))
}

fn int(field: JobField, op: IntOp, n: i64) -> JobFilter {
    rule(field, Test::Int(op, n))
}

fn str_rule(field: JobField, op: StrOp, case: Case, s: &str) -> JobFilter {
    rule(field, Test::Str(op, case, Needle::new(s)))
}

// --- JSON validation: one check per rule, expecting the path of the offending node --------

#[track_caller]
fn check_json_error(filter: Json, path: &str, expected: fn(&FilterErrorKind) -> bool) {
    let err = JobFilter::from_json(&filter).expect_err("filter must be rejected");
    assert_eq!(err.path, path, "{err}");
    assert!(expected(&err.kind), "unexpected kind: {err}");
}

fn ok_rule() -> Json {
    json!({"field": "status", "op": "int_eq", "value": 7002})
}

#[test]
fn json_unknown_field_names_its_path() {
    check_json_error(
        json!({"and": [ok_rule(), ok_rule(), {"field": "colour", "op": "str_eq", "value": "x"}]}),
        "filter.and[2].field",
        |k| matches!(k, FilterErrorKind::UnknownField(f) if f == "colour"),
    );
}

#[test]
fn json_operator_that_does_not_fit_the_field_names_the_op() {
    check_json_error(
        json!({"and": [ok_rule(), ok_rule(), {"field": "status", "op": "str_contains", "value": "7"}]}),
        "filter.and[2].op",
        |k| matches!(k, FilterErrorKind::OpMismatch(m) if m.op == "str_contains" && m.field == "status"),
    );
    check_json_error(
        json!({"or": [{"field": "running", "op": "int_eq", "value": 1}]}),
        "filter.or[0].op",
        |k| matches!(k, FilterErrorKind::OpMismatch(_)),
    );
}

#[test]
fn json_unknown_operator() {
    check_json_error(
        json!({"not_or": [{"field": "username", "op": "str_like", "value": "x"}]}),
        "filter.not_or[0].op",
        |k| matches!(k, FilterErrorKind::UnknownOp(o) if o == "str_like"),
    );
}

#[test]
fn json_bad_values() {
    let bad = |k: &FilterErrorKind| matches!(k, FilterErrorKind::BadValue { .. });
    check_json_error(
        json!({"field": "status", "op": "int_eq", "value": "70x2"}),
        "filter.value",
        bad,
    );
    check_json_error(
        json!({"field": "status", "op": "int_eq", "value": 1.5}),
        "filter.value",
        bad,
    );
    check_json_error(
        json!({"field": "username", "op": "str_eq", "value": 12}),
        "filter.value",
        bad,
    );
    check_json_error(
        json!({"not_and": [{"field": "running", "op": "bool_is", "value": 1}]}),
        "filter.not_and[0].value",
        bad,
    );
    check_json_error(
        json!({"field": 3, "op": "int_eq", "value": 1}),
        "filter.field",
        bad,
    );
}

#[test]
fn json_int_fields_accept_strings_of_digits() {
    let parsed = JobFilter::from_json(&json!({"field": "status", "op": "int_eq", "value": "7002"}));
    assert_eq!(parsed, Ok(int(JobField::Status, IntOp::Eq, 7002)));
}

#[test]
fn json_invalid_and_oversized_regex() {
    check_json_error(
        json!({"and": [{"field": "username", "op": "str_regexmatch", "value": "(unclosed"}]}),
        "filter.and[0].value",
        |k| matches!(k, FilterErrorKind::Regex(RegexError::Invalid(_))),
    );
    check_json_error(
        json!({"field": "username", "op": "str_nregexmatch", "value": "a{1000}{1000}"}),
        "filter.value",
        |k| matches!(k, FilterErrorKind::Regex(RegexError::TooLarge)),
    );
    check_json_error(
        json!({"field": "username", "op": "str_regexmatch", "value": "a".repeat(MAX_REGEX_LEN + 1)}),
        "filter.value",
        |k| matches!(k, FilterErrorKind::Regex(RegexError::TooLarge)),
    );
}

#[test]
fn json_depth_over_32_names_the_first_node_too_deep() {
    let mut filter = ok_rule();
    for _ in 0..MAX_DEPTH - 1 {
        filter = json!({ "and": [filter] });
    }
    assert_eq!(
        JobFilter::from_json(&filter).map(|f| f.depth()),
        Ok(MAX_DEPTH)
    );
    let filter = json!({ "or": [filter] });
    let path = format!("filter.or[0]{}", ".and[0]".repeat(MAX_DEPTH - 1));
    check_json_error(filter, &path, |k| matches!(k, FilterErrorKind::TooDeep));
}

#[test]
fn json_more_than_1000_nodes() {
    let fits: Vec<Json> = (0..MAX_NODES - 1).map(|_| ok_rule()).collect();
    let parsed = JobFilter::from_json(&json!({ "and": fits })).expect("exactly the limit");
    assert_eq!(parsed.node_count(), MAX_NODES);
    let over: Vec<Json> = (0..MAX_NODES).map(|_| ok_rule()).collect();
    check_json_error(
        json!({ "and": over }),
        &format!("filter.and[{}]", MAX_NODES - 1),
        |k| matches!(k, FilterErrorKind::TooManyNodes),
    );
}

#[test]
fn json_shape_errors() {
    check_json_error(json!([ok_rule()]), "filter", |k| {
        matches!(k, FilterErrorKind::BadNode)
    });
    check_json_error(json!({"and": ok_rule()}), "filter.and", |k| {
        matches!(k, FilterErrorKind::NotAnArray)
    });
    check_json_error(json!({"and": [], "or": []}), "filter.or", |k| {
        matches!(k, FilterErrorKind::UnexpectedKey(_))
    });
    check_json_error(
        json!({"field": "status", "op": "int_eq", "value": 1, "extra": 2}),
        "filter.extra",
        |k| matches!(k, FilterErrorKind::UnexpectedKey(_)),
    );
    check_json_error(json!({"field": "status", "op": "int_eq"}), "filter", |k| {
        matches!(k, FilterErrorKind::Missing("value"))
    });
}

#[test]
fn json_path_root_can_be_renamed() {
    let err = Filter::<DeviceField>::from_json_at(
        &json!({"field": "platform", "op": "int_eq", "value": 1}),
        "device_filter",
    )
    .expect_err("mismatch");
    assert_eq!(err.path, "device_filter.op");
}

// --- text form ------------------------------------------------------------------------

#[test]
fn text_example_from_the_issue() {
    let parsed = JobFilter::parse_text(
        r#"status = 7002 and time_since_end <= 86400 and not (username ~ "test")"#,
    );
    let expected = Filter::And(vec![
        int(JobField::Status, IntOp::Eq, 7002),
        int(JobField::TimeSinceEnd, IntOp::Lte, 86400),
        Filter::NotAnd(vec![str_rule(
            JobField::Username,
            StrOp::Contains,
            Case::Sensitive,
            "test",
        )]),
    ]);
    assert_eq!(parsed, Ok(expected.clone()));
    assert_eq!(
        expected.to_string(),
        r#"status = 7002 and time_since_end <= 86400 and not (username ~ "test")"#
    );
}

#[test]
fn text_every_operator_symbol() {
    let cases: &[(&str, &str)] = &[
        ("running is true", "bool_is"),
        ("running is not false", "bool_nis"),
        ("status = 1", "int_eq"),
        ("status != 1", "int_neq"),
        ("status > 1", "int_gt"),
        ("status >= 1", "int_gte"),
        ("status < 1", "int_lt"),
        ("status <= 1", "int_lte"),
        (r#"username = "a""#, "str_eq"),
        (r#"username != "a""#, "str_neq"),
        (r#"username ~ "a""#, "str_contains"),
        (r#"username !~ "a""#, "str_ncontains"),
        (r#"username ^= "a""#, "str_startswith"),
        (r#"username !^= "a""#, "str_nstartswith"),
        (r#"username $= "a""#, "str_endswith"),
        (r#"username !$= "a""#, "str_nendswith"),
        (r#"username =* "a""#, "str_eq_ci"),
        (r#"username !=* "a""#, "str_neq_ci"),
        (r#"username ~* "a""#, "str_contains_ci"),
        (r#"username !~* "a""#, "str_ncontains_ci"),
        (r#"username ^=* "a""#, "str_startswith_ci"),
        (r#"username !^=* "a""#, "str_nstartswith_ci"),
        (r#"username $=* "a""#, "str_endswith_ci"),
        (r#"username !$=* "a""#, "str_nendswith_ci"),
        ("username =~ /^a.c$/", "str_regexmatch"),
        (r#"username !=~ "a/b""#, "str_nregexmatch"),
    ];
    for (text, op) in cases {
        let parsed = JobFilter::parse_text(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let Filter::Rule(rule) = &parsed else {
            panic!("{text}: not a rule")
        };
        assert_eq!(rule.test().op_name(), *op, "{text}");
        assert_eq!(parsed.to_string(), *text);
    }
}

#[test]
fn text_precedence_grouping_and_degenerate_nodes() {
    let a = || int(JobField::Status, IntOp::Eq, 1);
    let b = || int(JobField::Status, IntOp::Eq, 2);
    let c = || int(JobField::Status, IntOp::Eq, 3);
    let cases: Vec<(&str, JobFilter)> = vec![
        (
            "status = 1 and status = 2 or status = 3",
            Filter::Or(vec![Filter::And(vec![a(), b()]), c()]),
        ),
        (
            "(status = 1 and status = 2) and status = 3",
            Filter::And(vec![Filter::And(vec![a(), b()]), c()]),
        ),
        (
            "not (status = 1 or status = 2)",
            Filter::NotOr(vec![a(), b()]),
        ),
        (
            "not ((status = 1 and status = 2))",
            Filter::NotAnd(vec![Filter::And(vec![a(), b()])]),
        ),
        ("nor (status = 1)", Filter::NotOr(vec![a()])),
        ("all()", Filter::And(vec![])),
        ("any(status = 1)", Filter::Or(vec![a()])),
        ("not ()", Filter::NotAnd(vec![])),
        ("nor ()", Filter::NotOr(vec![])),
    ];
    for (text, expected) in cases {
        assert_eq!(JobFilter::parse_text(text), Ok(expected.clone()), "{text}");
        assert_eq!(JobFilter::parse_text(&expected.to_string()), Ok(expected));
    }
}

#[test]
fn text_errors_carry_byte_offsets() {
    let check = |text: &str, offset: usize, kind: fn(&TextErrorKind) -> bool| {
        let err = JobFilter::parse_text(text).expect_err(text);
        assert_eq!(err.offset, offset, "{text}: {err}");
        assert!(kind(&err.kind), "{text}: {err}");
    };
    check("status = 1 and colour = 2", 15, |k| {
        matches!(k, TextErrorKind::UnknownField(_))
    });
    check(r#"status ~ "x""#, 7, |k| {
        matches!(k, TextErrorKind::OpMismatch(_))
    });
    check("username = 12", 11, |k| {
        matches!(k, TextErrorKind::Expected(_))
    });
    check(r#"username = "abc"#, 11, |k| {
        matches!(k, TextErrorKind::UnterminatedString)
    });
    check("username =~ /(/", 12, |k| {
        matches!(k, TextErrorKind::Regex(_))
    });
    check("status = 1 status", 11, |k| {
        matches!(k, TextErrorKind::Expected(_))
    });
    check("status = 99999999999999999999", 9, |k| {
        matches!(k, TextErrorKind::IntOutOfRange)
    });
    check(&"(".repeat(10_000), text::MAX_NESTING, |k| {
        matches!(k, TextErrorKind::TooDeep)
    });
    check("status # 1", 7, |k| {
        matches!(k, TextErrorKind::UnexpectedChar('#'))
    });
}

#[test]
fn text_depth_and_node_limits_match_json() {
    let mut deep = "status = 1".to_owned();
    for _ in 0..MAX_DEPTH - 1 {
        deep = format!("all({deep})");
    }
    assert!(JobFilter::parse_text(&deep).is_ok());
    let err = JobFilter::parse_text(&format!("all({deep})")).expect_err("too deep");
    assert_eq!(err.kind, TextErrorKind::TooDeep);

    let many = vec!["status = 1"; MAX_NODES].join(" and ");
    let err = JobFilter::parse_text(&many).expect_err("too many");
    assert_eq!(err.kind, TextErrorKind::TooManyNodes);
}

// --- evaluation -----------------------------------------------------------------------

fn job(status: JobStatus, started_at: i64, ended_at: Option<i64>) -> Job {
    Job {
        id: JobId::new(1, 1),
        tenant: TenantRef::Tenant(TenantId::new(1, 1)),
        user: UserId::new(1, 2),
        device: None,
        item: None,
        vault: None,
        schedule: None,
        classification: Classification::Backup,
        status,
        started_at,
        ended_at,
        totals: JobTotals {
            upload_bytes: 500,
            ..JobTotals::default()
        },
        client_version: "24.3.1".into(),
        progress: JobProgress {
            bytes_done: 77,
            ..JobProgress::default()
        },
        log_lines: 0,
    }
}

fn eval(filter: &str, job: &Job, username: Option<&str>, now: i64) -> bool {
    let filter = JobFilter::parse_text(filter).expect("valid filter");
    filter.matches(&JobView { job, username }, now)
}

#[test]
fn a_rule_on_a_missing_value_is_false_whatever_its_operator() {
    let running = job(JobStatus::Running, 1000, None);
    for text in [
        "end_time > 0",
        "end_time != 5",
        "duration >= 0",
        "time_since_end < 999999",
        "time_since_end != 1",
        r#"device_id != "dev_x""#,
        r#"device_id !~ "x""#,
    ] {
        assert!(!eval(text, &running, Some("alice"), 2000), "{text}");
        assert!(
            eval(&format!("not ({text})"), &running, Some("alice"), 2000),
            "{text}"
        );
    }
    assert!(!eval(r#"username !~ "x""#, &running, None, 2000));
}

#[test]
fn time_since_is_relative_to_now_and_counters_follow_progress() {
    let done = job(JobStatus::Error, 1000, Some(1600));
    assert!(eval(
        "time_since_start = 1000 and time_since_end = 400",
        &done,
        None,
        2000
    ));
    assert!(eval(
        "duration = 600 and running is false",
        &done,
        None,
        2000
    ));
    assert!(eval(
        "upload_bytes = 500 and total_bytes = 0",
        &done,
        None,
        0
    ));
    let running = job(JobStatus::Running, 1000, None);
    assert!(eval(
        "total_bytes = 77 and upload_bytes = 0 and running is true",
        &running,
        None,
        0
    ));
}

#[test]
fn case_insensitive_and_regex_operators() {
    let j = job(JobStatus::Success, 0, Some(1));
    let user = Some("Ünïcode-ADMIN");
    assert!(eval(r#"username ~* "admin""#, &j, user, 0));
    assert!(eval(r#"username ^=* "ünï""#, &j, user, 0));
    assert!(!eval(r#"username ^= "ünï""#, &j, user, 0));
    assert!(eval(
        r#"username $=* "Admin" and username !$=* "x""#,
        &j,
        user,
        0
    ));
    assert!(eval(
        r#"username =~ /^Ü.*N$/ and username !=~ /^x/"#,
        &j,
        user,
        0
    ));
    assert!(eval(r#"client_version =* "24.3.1""#, &j, user, 0));
}

#[test]
fn device_filters_evaluate_against_devices() {
    use crate::ids::DeviceId;
    use crate::model::{Device, DeviceSpec};
    let device = Device {
        id: DeviceId::new(5, 5),
        tenant: TenantRef::Root,
        user: UserId::new(1, 1),
        spec: DeviceSpec {
            friendly_name: "Laptop".into(),
            platform: "windows".into(),
            arch: "x64".into(),
            os_version: "11".into(),
            client_version: "24.1.0".into(),
            timezone: "Europe/Berlin".into(),
        },
        registered_at: 100,
        token_hash: String::new(),
        connections: 1,
        connected_since: Some(100),
        ip: None,
    };
    let f = Filter::<DeviceField>::parse_text(
        r#"platform = "windows" and online is true and registered_at < 200 and timezone ^= "Europe/""#,
    )
    .expect("valid");
    assert!(f.matches(
        &DeviceView {
            device: &device,
            username: Some("bob")
        },
        0
    ));
    assert!(Filter::<DeviceField>::parse_text("status = 1").is_err());
}

// --- properties -----------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[a-zA-Z0-9 "\\/éÜ\n\t\u{1}*()]{0,8}"#).expect("regex")
}

fn arb_test(ty: FieldType) -> BoxedStrategy<Test> {
    match ty {
        FieldType::Bool => (any::<bool>(), any::<bool>())
            .prop_map(|(nis, b)| Test::Bool(if nis { BoolOp::Nis } else { BoolOp::Is }, b))
            .boxed(),
        FieldType::Int => (0..IntOp::ALL.len(), any::<i64>())
            .prop_map(|(op, n)| Test::Int(IntOp::ALL[op], n))
            .boxed(),
        FieldType::Str => prop_oneof![
            (0..StrOp::ALL.len(), any::<bool>(), arb_string()).prop_map(|(op, ci, s)| {
                let case = if ci {
                    Case::Insensitive
                } else {
                    Case::Sensitive
                };
                Test::Str(StrOp::ALL[op], case, Needle::new(s))
            }),
            (
                any::<bool>(),
                prop::sample::select(vec![
                    "^a", "b$", "a/b", r"\d+", r"\\", "(?i)TEST", ".*", r"a\/b", "[/]"
                ])
            )
                .prop_map(|(negated, p)| Test::Regex {
                    negated,
                    pattern: Pattern::new(p).expect("valid pattern"),
                }),
        ]
        .boxed(),
    }
}

pub(crate) fn arb_filter() -> impl Strategy<Value = JobFilter> {
    let leaf = prop::sample::select(JobField::ALL.to_vec())
        .prop_flat_map(|field| arb_test(field.field_type()).prop_map(move |t| rule(field, t)));
    leaf.prop_recursive(5, 48, 4, |inner| {
        let children = prop::collection::vec(inner, 0..4);
        prop_oneof![
            children.clone().prop_map(Filter::And),
            children.clone().prop_map(Filter::Or),
            children.clone().prop_map(Filter::NotAnd),
            children.prop_map(Filter::NotOr),
        ]
    })
}

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "and",
            "or",
            "not_and",
            "not_or",
            "field",
            "op",
            "value",
            "status",
            "username",
            "int_eq",
            "str_regexmatch",
            "(",
            "7002",
            "bool_is",
            "running",
        ])
        .prop_map(|s| Json::String(s.into())),
    ];
    leaf.prop_recursive(6, 64, 4, |inner| {
        let keys = prop::sample::select(vec![
            "and", "or", "not_and", "not_or", "field", "op", "value", "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(keys.prop_map(String::from), inner, 0..4)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_round_trip(filter in arb_filter()) {
        let printed = filter.to_string();
        let parsed = JobFilter::parse_text(&printed);
        prop_assert_eq!(parsed.as_ref(), Ok(&filter), "printed: {}", printed);
        prop_assert_eq!(parsed.expect("parsed").to_string(), printed);
    }

    #[test]
    fn json_round_trip(filter in arb_filter()) {
        prop_assert_eq!(JobFilter::from_json(&filter.to_json()), Ok(filter));
    }

    #[test]
    fn text_parser_never_panics_on_arbitrary_strings(input in any::<String>()) {
        let _ = JobFilter::parse_text(&input);
    }

    #[test]
    fn text_parser_never_panics_on_token_soup(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "(", ")", ",", "and", "or", "not", "nor", "all", "any", "is", "true", "status",
            "username", "running", "=", "!=~", "~*", ">=", "\"x\"", "\"\\u{41}\"", "/a/", "-", "7",
            "\"", "/", "\\", "end_time", "not (", "is not",
        ]), 0..40)
    ) {
        let input = tokens.join(" ");
        if let Ok(filter) = JobFilter::parse_text(&input) {
            prop_assert_eq!(JobFilter::parse_text(&filter.to_string()), Ok(filter));
        }
    }

    #[test]
    fn text_parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let input = String::from_utf8_lossy(&bytes);
        let _ = JobFilter::parse_text(&input);
    }

    #[test]
    fn json_parser_never_panics(value in arb_json()) {
        if let Ok(filter) = JobFilter::from_json(&value) {
            prop_assert_eq!(JobFilter::from_json(&filter.to_json()), Ok(filter));
        }
    }

    #[test]
    fn json_parser_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(value) = serde_json::from_slice::<Json>(&bytes) {
            let _ = JobFilter::from_json(&value);
        }
    }
}
