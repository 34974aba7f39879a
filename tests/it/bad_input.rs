//! Bad input on every route: malformed, empty, mistyped, oversize and unknown-field bodies,
//! invalid values (usernames, delays, ids), bad ids in paths and bad query parameters are
//! each a 4xx problem+json naming the field, and none appends an event.
//!
//! The generic checks walk the OpenAPI document; [`cases`] holds, per route with a body, a
//! valid body and the field-level mistakes to try. A body route missing from it fails the
//! test, so a new route arrives with its bad-input cases.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Client, Res, TestServer, PASSWORD};
use crate::surface::{self, id_kind, kind_of_field, unknown_id, Op, Side};

/// One route with a body: a valid body to start from, and the mistakes to make in it, each
/// `(field path expected in errors[].field, the body with the mistake)`.
struct Case {
    valid: Value,
    mistakes: Vec<(&'static str, Value)>,
}

/// `valid` with `field` (a top-level name, or `a.b` one level down) set to `value`.
fn with(valid: &Value, field: &str, value: Value) -> Value {
    let mut body = valid.clone();
    match field.split_once('.') {
        Some((outer, inner)) => {
            if !body[outer].is_object() {
                body[outer] = json!({});
            }
            body[outer][inner] = value;
        }
        None => body[field] = value,
    }
    body
}

const BAD_USERNAMES: [&str; 4] = ["has space", "semi;colon", "", "ünïcode"];

/// The table, by route.
fn case(op: &Op) -> Option<Case> {
    let c = |valid: Value, mistakes: Vec<(&'static str, Value)>| -> Option<Case> {
        let mistakes = mistakes
            .into_iter()
            .map(|(field, value)| (field, with(&valid, field, value)))
            .collect();
        Some(Case { valid, mistakes })
    };
    let usernames = |field: &'static str| -> Vec<(&'static str, Value)> {
        BAD_USERNAMES.iter().map(|u| (field, json!(u))).collect()
    };
    let garbage_ids = |field: &'static str, wrong_kind: &str| -> Vec<(&'static str, Value)> {
        vec![
            (field, json!("garbage")),
            (field, json!(unknown_id(wrong_kind))),
            (field, json!(7)),
        ]
    };
    match op.key().as_str() {
        "POST /api/v1/auth/login" => {
            let mut m = usernames("username");
            m.extend([("password", json!(5)), ("tenant", json!(["acme"]))]);
            c(json!({"username": "nobody", "password": PASSWORD}), m)
        }
        "POST /api/v1/auth/refresh" | "POST /api/v1/auth/logout" => c(
            json!({"refresh_token": "rt_x_y"}),
            vec![("refresh_token", json!(5)), ("refresh_token", json!(null))],
        ),
        "POST /api/v1/tenants" => c(
            json!({"name": "Bad", "slug": "bad"}),
            vec![
                ("name", json!(5)),
                ("slug", json!("Not A Slug")),
                ("slug", json!("")),
                ("hosts", json!("one.example")),
                ("hosts", json!(["UPPER CASE"])),
                ("suspended", json!("yes")),
            ],
        ),
        "PATCH /api/v1/tenants/{id}" => c(
            json!({}),
            vec![
                ("name", json!(5)),
                ("slug", json!("no/slash")),
                ("suspended", json!(1)),
            ],
        ),
        "PUT /api/v1/tenants/{id}/email" => c(
            json!({"mode": "disabled"}),
            vec![
                ("mode", json!("carrier-pigeon")),
                ("port", json!("25")),
                ("port", json!(70_000)),
                ("allow_invalid_cert", json!("no")),
            ],
        ),
        "PATCH /api/v1/server/settings" => c(
            json!({}),
            vec![
                ("random_delay_secs", json!(18_001)),
                ("random_delay_secs", json!(-1)),
                ("random_delay_secs", json!("soon")),
                ("session_ttl_secs", json!(true)),
                ("login_protection.max_failures", json!(-1)),
            ],
        ),
        "POST /api/v1/admins" => {
            let mut m = usernames("username");
            m.extend(garbage_ids("tenant_id", "usr"));
            m.extend([
                ("password", json!(5)),
                ("password", json!("short")),
                ("permissions.allow_edit_webhooks", json!("yes")),
                ("permissions.allow_everything", json!(true)),
                // serde reads a struct from an array too, field by field.
                ("permissions", json!([true, false])),
            ]);
            c(json!({"username": "new-admin", "password": PASSWORD}), m)
        }
        "PATCH /api/v1/admins/{id}" => {
            let mut m = usernames("username");
            m.extend([
                ("password", json!("short")),
                ("permissions", json!("all")),
                // Read as a struct with every field left out, it would reset them all.
                ("permissions", json!([])),
            ]);
            c(json!({}), m)
        }
        "POST /api/v1/policies" => {
            let mut m = garbage_ids("tenant_id", "pol");
            m.extend([
                ("name", json!(5)),
                ("random_delay_secs", json!(18_001)),
                ("random_delay_secs", json!(u64::MAX)),
                ("is_default", json!("true")),
                ("settings", json!(["x"])),
            ]);
            c(json!({"name": "p"}), m)
        }
        "POST /api/v1/webhooks" => {
            let mut m = garbage_ids("tenant_id", "pol");
            m.extend([
                ("name", json!(5)),
                ("url", json!("ftp://example.com/")),
                ("event_types", json!(["x"])),
                ("event_types", json!([1])),
                ("level", json!("loud")),
                ("enabled", json!("yes")),
            ]);
            c(json!({"name": "hook", "url": "http://127.0.0.1:9/x"}), m)
        }
        "PATCH /api/v1/webhooks/{id}" => c(
            json!({}),
            vec![
                ("url", json!("mailto:a@example.com")),
                ("level", json!("loud")),
                ("enabled", json!(1)),
            ],
        ),
        "POST /api/v1/webhooks/{id}/rotate-secret" => c(
            json!({}),
            vec![("grace_secs", json!(-1)), ("grace_secs", json!(700_000))],
        ),
        "POST /api/v1/webhooks/{id}/replay" => c(
            json!({"after": 0}),
            vec![("after", json!("x")), ("after", json!(-1))],
        ),
        "PATCH /api/v1/policies/{id}" => c(
            json!({}),
            vec![
                ("random_delay_secs", json!(18_001)),
                ("name", json!(5)),
                ("settings", json!("all")),
            ],
        ),
        "POST /api/v1/users" => {
            let mut m = usernames("username");
            m.extend(garbage_ids("policy_id", "usr"));
            m.extend(garbage_ids("tenant_id", "pol"));
            m.extend([
                ("password", json!("short")),
                ("emails", json!("a@example.com")),
                ("timezone", json!("Mars/Olympus_Mons")),
                ("max_devices", json!(-1)),
                ("quota_bytes", json!("lots")),
            ]);
            c(json!({"username": "new-user", "password": PASSWORD}), m)
        }
        "PATCH /api/v1/users/{id}" => {
            let mut m = usernames("username");
            m.extend(garbage_ids("policy_id", "ten"));
            m.extend([
                ("timezone", json!("Nowhere/Land")),
                ("suspended", json!("no")),
            ]);
            c(json!({}), m)
        }
        "POST /api/v1/users/{id}/protected-items" => {
            let mut m = garbage_ids("owner_device_id", "usr");
            m.extend([
                ("name", json!(5)),
                ("engine", json!(["files"])),
                ("settings", json!({"k": 1})),
            ]);
            c(json!({"name": "i", "engine": "files"}), m)
        }
        "PATCH /api/v1/protected-items/{id}" => {
            c(json!({}), vec![("name", json!(5)), ("settings", json!([]))])
        }
        "POST /api/v1/users/{id}/vaults" => c(
            json!({"name": "v", "kind": "s3", "address": "https://s3.example", "bucket": "b"}),
            vec![
                ("name", json!(5)),
                ("quota_bytes", json!(-1)),
                ("address", json!(null)),
            ],
        ),
        "PATCH /api/v1/vaults/{id}" => c(
            json!({}),
            vec![("quota_bytes", json!("big")), ("bucket", json!(5))],
        ),
        "POST /api/v1/vaults/replace-address" => c(
            json!({"find": "nothing-matches-this", "dry_run": true}),
            vec![
                ("find", json!(5)),
                ("dry_run", json!("yes")),
                ("replace", json!(["x"])),
            ],
        ),
        "POST /api/v1/users/{id}/schedules" => c(
            json!({
                "name": "s",
                "protected_item_id": unknown_id("itm"),
                "vault_id": unknown_id("vlt"),
                "triggers": [],
            }),
            vec![
                ("name", json!(5)),
                ("protected_item_id", json!("garbage")),
                ("vault_id", json!(unknown_id("itm"))),
                ("triggers", json!({})),
                ("triggers", json!([[8011, 3600]])),
                (
                    "triggers",
                    json!([{"frequency": 8011, "seconds_past": 0, "window": ["01:00", "02:00"]}]),
                ),
                ("skip_if_running", json!("no")),
            ],
        ),
        "PATCH /api/v1/schedules/{id}" => c(
            json!({}),
            vec![("name", json!(5)), ("vault_id", json!("garbage"))],
        ),
        "POST /api/v1/devices/{id}/actions" => c(
            json!({"kind": "upgrade", "version": "2.0.0"}),
            vec![
                ("kind", json!("explode")),
                ("kind", json!(5)),
                ("version", json!(5)),
                ("url", json!("https://elsewhere.example/")),
            ],
        ),
        "POST /api/v1/users/{id}/transfer" => c(
            json!({"tenant_id": unknown_id("ten")}),
            garbage_ids("tenant_id", "usr"),
        ),
        "POST /api/v1/jobs/search" => c(
            json!({"filter": null, "sort": "start_time:desc", "limit": 10}),
            vec![
                ("filter", json!(5)),
                (
                    "filter",
                    json!({"field": "nope", "op": "int_eq", "value": 1}),
                ),
                ("sort", json!("size:desc")),
                ("limit", json!(1001)),
                ("limit", json!("ten")),
                ("cursor", json!("!!not-ours")),
                ("now", json!("soon")),
            ],
        ),
        "POST /api/v1/jobs/count" => c(
            json!({"filter": {"and": []}}),
            vec![("filter", json!([])), ("now", json!(1.5))],
        ),
        "POST /api/v1/agent/register" => {
            let mut m = usernames("username");
            m.extend([
                ("device", json!("laptop")),
                ("device", json!(["d", "linux", "x86_64", "6", "1", "UTC"])),
                ("password", json!(5)),
            ]);
            c(
                json!({"username": "nobody", "password": PASSWORD, "device": {
                    "friendly_name": "d", "platform": "linux", "arch": "x86_64",
                    "os_version": "6", "client_version": "1", "timezone": "UTC",
                }}),
                m,
            )
        }
        "POST /api/v1/agent/jobs" => c(
            json!({"started_at": "2026-01-01T00:00:00Z"}),
            vec![
                ("started_at", json!("yesterday")),
                ("protected_item_id", json!("garbage")),
                ("classification", json!("full")),
            ],
        ),
        "POST /api/v1/agent/jobs/{id}/progress" => c(
            json!({"bytes_done": 1, "items_done": 1, "items_total": 2}),
            vec![("bytes_done", json!(-1)), ("items_total", json!("many"))],
        ),
        "POST /api/v1/agent/jobs/{id}/finish" => c(
            json!({
                "status": 5000, "ended_at": "2026-01-01T01:00:00Z", "total_bytes": 1,
                "upload_bytes": 1, "download_bytes": 0, "total_files": 1, "total_dirs": 1,
            }),
            vec![("status", json!("ok")), ("ended_at", json!(12))],
        ),
        _ => None,
    }
}

/// Who calls `op`: the root admin, or for the agent protocol the tenant's device.
fn caller<'a>(op: &Op, w: &'a World, device: &'a Client) -> &'a Client {
    if op.path.starts_with("/api/v1/agent/") && op.path != "/api/v1/agent/register" {
        device
    } else {
        &w.root
    }
}

/// `op`'s path with `side`'s ids (the root admin sees them all).
fn own_path(op: &Op, side: &Side) -> String {
    op.fill(|param| {
        let kind = id_kind(op, param)
            .unwrap_or_else(|| panic!("{}: teach `surface::id_kind` `{{{param}}}`", op.key()));
        side.id(kind)
            .unwrap_or_else(|| panic!("{}: no `{kind}` object to name", op.key()))
            .to_owned()
    })
}

async fn raw(client: &Client, op: &Op, path: &str, body: impl Into<reqwest::Body>) -> Res {
    client
        .send(
            client
                .request(op.method.clone(), path)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
}

/// Asserts a 400 problem naming `field` in `errors[].field` (or a path inside it).
#[track_caller]
fn names(res: &Res, field: &str, what: &str) {
    assert_eq!(res.status, 400, "{what}: {}", res.text);
    res.problem(400);
    assert!(
        res.error_fields().iter().any(|f| f == field
            || f.starts_with(&format!("{field}["))
            || f.starts_with(&format!("{field}."))),
        "{what}: expected errors[].field {field:?}: {}",
        res.text
    );
}

struct World {
    app: TestServer,
    root: Client,
    ops: Vec<Op>,
    side: Side,
    /// The tenant's device, for the agent protocol's routes.
    device: Client,
}

async fn world() -> World {
    let app = TestServer::start().await;
    let root = app.root().await;
    let ops = surface::operations(&root).await;
    let side = surface::side(&app, &root, &ops, "acme").await;
    let mut device = app.anonymous();
    device.token = side.device_token.clone();
    World {
        app,
        root,
        ops,
        side,
        device,
    }
}

#[tokio::test]
async fn bad_bodies_on_every_route_are_problems_naming_the_field() {
    let w = world().await;
    let head = w.app.head();
    let limit = api::ApiConfig::default().body_limit_bytes;
    let mut missing = Vec::new();
    for op in w.ops.iter().filter(|op| op.has_body) {
        let path = own_path(op, &w.side);
        let what = |m: &str| format!("{} {path}: {m}", op.method);
        let client = caller(op, &w, &w.device);

        let res = raw(client, op, &path, "{").await;
        res.problem(400);
        assert!(
            res.body["type"].as_str().unwrap().ends_with("/malformed"),
            "{}: {}",
            what("truncated JSON"),
            res.text
        );
        raw(client, op, &path, "").await.problem(400);
        raw(client, op, &path, "{} trailing").await.problem(400);
        names(
            &raw(client, op, &path, "[1, 2, 3]").await,
            "body",
            &what("an array"),
        );
        names(
            &raw(client, op, &path, "\"text\"").await,
            "body",
            &what("a string"),
        );
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(limit + 1));
        let res = raw(client, op, &path, big).await;
        assert_eq!(res.status, 413, "{}: {}", what("oversize"), res.text);
        res.problem(413);
        let res = client
            .send(
                client
                    .request(op.method.clone(), &path)
                    .header("content-type", "text/plain")
                    .body("{}"),
            )
            .await;
        assert_eq!(res.status, 415, "{}: {}", what("text/plain"), res.text);
        res.problem(415);

        let Some(case) = case(op) else {
            missing.push(op.key());
            continue;
        };
        let mut unknown = case.valid.clone();
        unknown["zz_unknown"] = json!(true);
        names(
            &client
                .send(client.request(op.method.clone(), &path).json(&unknown))
                .await,
            "zz_unknown",
            &what("an unknown field next to valid ones"),
        );
        for (field, body) in case.mistakes {
            let res = client
                .send(client.request(op.method.clone(), &path).json(&body))
                .await;
            names(&res, field, &what(&format!("{body}")));
        }
    }
    assert!(
        missing.is_empty(),
        "routes with a body but no bad-input case: {missing:?}; add them to `case` in \
         tests/it/bad_input.rs"
    );
    assert_eq!(w.app.head(), head, "bad bodies appended events");
    w.app.stop().await;
}

/// Whether `schema` (a node of `doc`) only takes a JSON object: a struct or a map, also
/// behind a `$ref` or as the non-null side of a nullable one.
fn takes_object(doc: &Value, schema: &Value) -> bool {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.trim_start_matches("#/components/schemas/");
        return takes_object(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(members) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        let members: Vec<&Value> = members.iter().filter(|m| m["type"] != "null").collect();
        return !members.is_empty() && members.iter().all(|m| takes_object(doc, m));
    }
    match &schema["type"] {
        Value::String(t) => t == "object",
        Value::Array(types) => types.contains(&json!("object")) && !types.contains(&json!("array")),
        _ => false,
    }
}

/// The body fields of `op` the document says take an object, each with the body that puts an
/// array there and the field path expected in the answer: `name` for an object, `name[0]`
/// for a list of objects.
fn arrays_for_objects(doc: &Value, op: &Op, valid: &Value) -> Vec<(String, Value)> {
    let mut schema = &doc["paths"][&op.path][op.method.as_str().to_lowercase()]["requestBody"]
        ["content"]["application/json"]["schema"];
    if let Some(name) = schema["$ref"].as_str() {
        schema = &doc["components"]["schemas"][name.trim_start_matches("#/components/schemas/")];
    }
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, property) in properties {
        if takes_object(doc, property) {
            out.push((name.clone(), with(valid, name, json!([]))));
        } else if property["type"] == "array" && takes_object(doc, &property["items"]) {
            out.push((format!("{name}[0]"), with(valid, name, json!([[]]))));
        }
    }
    out
}

/// serde reads a struct from an array as readily as from an object, by position, so an array
/// where the document says object must be refused at every depth, naming the field.
#[tokio::test]
async fn an_array_where_an_object_is_expected_is_refused_at_any_depth() {
    let w = world().await;
    let doc = w.root.get("/openapi.json").await.body;
    let head = w.app.head();
    let mut tried = Vec::new();
    for op in w.ops.iter().filter(|op| op.has_body) {
        let path = own_path(op, &w.side);
        let client = caller(op, &w, &w.device);
        let valid = case(op).expect("every body route has a case").valid;
        for (field, body) in arrays_for_objects(&doc, op, &valid) {
            let res = client
                .send(client.request(op.method.clone(), &path).json(&body))
                .await;
            res.problem(400);
            assert_eq!(
                res.error_fields(),
                [field.as_str()],
                "{} {path} {body}: {}",
                op.method,
                res.text
            );
            tried.push(format!("{} {field}", op.key()));
        }
    }
    // The walk must reach the nested structs the API has, or it proves nothing.
    for expected in [
        "PATCH /api/v1/admins/{id} permissions",
        "POST /api/v1/admins permissions",
        "PATCH /api/v1/server/settings login_protection",
        "POST /api/v1/users/{id}/schedules triggers[0]",
        "POST /api/v1/agent/register device",
    ] {
        assert!(
            tried.iter().any(|t| t == expected),
            "{expected} not tried: {tried:?}"
        );
    }

    // Deeper: a trigger's window.
    let schedules = format!("/api/v1/users/{}/schedules", w.side.id("usr").unwrap());
    let mut body = case(&op_at(&w.ops, Method::POST, "/api/v1/users/{id}/schedules"))
        .unwrap()
        .valid;
    body["triggers"] =
        json!([{"frequency": 8011, "seconds_past": 0, "window": ["01:00", "02:00"]}]);
    let res = w.root.post(&schedules, body).await;
    res.problem(400);
    assert_eq!(res.error_fields(), ["triggers[0].window"], "{}", res.text);

    // The bug that showed it: permissions read from `[]` were all reset.
    let admin = w.side.id("adm").unwrap();
    let before = w.root.get(&format!("/api/v1/admins/{admin}")).await;
    let res = w
        .root
        .patch(
            &format!("/api/v1/admins/{admin}"),
            json!({"permissions": []}),
        )
        .await;
    res.problem(400);
    assert_eq!(res.error_fields(), ["permissions"], "{}", res.text);
    let after = w.root.get(&format!("/api/v1/admins/{admin}")).await;
    assert_eq!(after.body["permissions"], before.body["permissions"]);
    assert_eq!(w.app.head(), head, "arrays for objects appended events");
    w.app.stop().await;
}

fn op_at(ops: &[Op], method: Method, path: &str) -> Op {
    ops.iter()
        .find(|op| op.method == method && op.path == path)
        .unwrap_or_else(|| panic!("{method} {path} is not in the document"))
        .clone()
}

#[tokio::test]
async fn bad_ids_in_paths_and_queries_are_400_naming_the_parameter() {
    let w = world().await;
    let head = w.app.head();
    for op in w.ops.iter().filter(|op| !op.path_params.is_empty()) {
        let client = caller(op, &w, &w.device);
        let body = match (op.has_body, case(op)) {
            (false, _) => None,
            (true, Some(case)) => Some(case.valid),
            (true, None) => panic!(
                "{} has a body but no bad-input case in tests/it/bad_input.rs",
                op.key()
            ),
        };
        for param in &op.path_params {
            let kind = id_kind(op, param).unwrap();
            let wrong_kind = if kind == "usr" { "ten" } else { "usr" };
            for bad in [
                "garbage".to_owned(),
                unknown_id(wrong_kind),
                format!("{kind}_"),
                format!("{kind}_!!!!!!!!!!!!!!!!!!!!!!!!!!"),
                format!("{}AAAA", unknown_id(kind)),
            ] {
                let path = op.fill(|p| {
                    if p == param {
                        bad.clone()
                    } else {
                        let k = id_kind(op, p).unwrap();
                        w.side.id(k).unwrap().to_owned()
                    }
                });
                let mut builder = client.request(op.method.clone(), &path);
                if let Some(body) = &body {
                    builder = builder.json(body);
                }
                names(
                    &client.send(builder).await,
                    param,
                    &format!("{} {path}", op.method),
                );
            }
        }
    }
    let client = &w.root;
    for op in w.ops.iter().filter(|op| op.method == Method::GET) {
        let base = own_path(op, &w.side);
        let required: Vec<String> = op
            .query_params
            .iter()
            .filter(|(_, r)| *r)
            .map(|(name, _)| format!("{name}=iso&"))
            .collect();
        let required = required.concat();
        let mut bad: Vec<(String, String)> = Vec::new();
        for (name, _) in &op.query_params {
            match name.as_str() {
                "limit" => {
                    for v in ["0", "1001", "ten", "-1"] {
                        bad.push(("limit".into(), format!("limit={v}")));
                    }
                }
                "cursor" => bad.push(("cursor".into(), "cursor=%21%21not-ours".into())),
                "after" => bad.push(("after".into(), "after=garbage".into())),
                other => {
                    if kind_of_field(other).is_some() {
                        bad.push((other.to_owned(), format!("{other}=garbage")));
                    }
                }
            }
        }
        for (field, query) in bad {
            let path = format!("{base}?{required}{query}");
            names(&client.get(&path).await, &field, &format!("GET {path}"));
        }
        // An unknown parameter is refused; its name is in the message.
        let path = format!("{base}?{required}zz_param=1");
        let res = client.get(&path).await;
        if op.path.starts_with("/api/v1/") && !op.query_params.is_empty() {
            assert_eq!(res.status, 400, "GET {path}: {}", res.text);
            assert!(res.text.contains("zz_param"), "GET {path}: {}", res.text);
        }
    }
    assert_eq!(w.app.head(), head, "bad ids appended events");
    w.app.stop().await;
}

#[tokio::test]
async fn a_bad_if_match_or_idempotency_key_appends_nothing() {
    let w = world().await;
    let head = w.app.head();
    let client = &w.root;
    for op in w.ops.iter().filter(|op| op.method == Method::PATCH) {
        let path = own_path(op, &w.side);
        for bad in ["two", "\"\"", "-1", "1.5"] {
            let res = client
                .send(
                    client
                        .request(Method::PATCH, &path)
                        .header("if-match", bad)
                        .json(&json!({})),
                )
                .await;
            names(&res, "If-Match", &format!("PATCH {path} If-Match {bad}"));
        }
    }
    assert_eq!(w.app.head(), head);
    w.app.stop().await;
}
