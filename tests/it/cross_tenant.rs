//! Tenant isolation over every route of the OpenAPI document: tenant A's admin calls each
//! operation with tenant B's ids (and B's admin with A's). Anything taking the other
//! tenant's id answers 404; root-only routes without a tenant-owned id answer 403; answers
//! from the caller's own scope (lists, search, the audit log, `me`) never mention the other
//! tenant; and none of these calls appends an event.
//!
//! [`rule`] says how each operation is exercised. A route the table does not know fails the
//! test, so a new route cannot ship without saying how it keeps tenants apart.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{metric, Client, Res, TestServer, PASSWORD};
use crate::surface::{self, create_body, id_kind, kind_of_field, Op, Side};

/// How a tenant admin's call of one operation shows isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Needs no bearer token (login, refresh, operations endpoints): not a tenant admin's
    /// call, so not part of the walk.
    Public,
    /// Takes tenant-owned ids in its path: with the other tenant's ids in every path
    /// parameter → 404, before any role or permission check. With the caller's own ids a
    /// GET answers 200 (or 403 where the role forbids it) and mentions nothing of the other.
    Foreign,
    /// Root only, and names no tenant-owned object → 403 for every tenant admin.
    RootOnly,
    /// Answers from the caller's own scope → 200 mentioning nothing of the other tenant,
    /// also when its `*_id` query filters name the other tenant's objects (they match
    /// nothing) and when `q` matches names both tenants share.
    Scoped,
    /// Creates in the caller's tenant; the body names an object of the other tenant
    /// (`tenant_id`, `policy_id`) → 404.
    NamesForeign,
    /// The agent protocol, authenticated by a device token, never an admin's: the admin's
    /// token → 401; the caller tenant's device token with the other tenant's ids in the
    /// path → 404, in a report's body → 400 naming the field (as for another user's
    /// objects); the WebSocket upgrade is only called with the admin's token.
    Device,
    /// `POST /auth/logout` with the other admin's refresh token: 204 (the contract answers
    /// 204 for a token that is not the caller's) and the other's session still refreshes.
    Logout,
    /// The live event stream: a WebSocket, so a plain GET (no upgrade) is refused with 400
    /// and appends nothing. Its scoping (a tenant admin sees only its tenant's events) is
    /// shown by tests/it/webhooks.rs over a real WebSocket.
    Stream,
}

/// The table: every operation of the document must be here.
fn rule(op: &Op) -> Option<Rule> {
    use Rule::*;
    Some(match op.key().as_str() {
        "GET /healthz" | "GET /readyz" | "GET /metrics" | "GET /openapi.json" => Public,
        "POST /api/v1/auth/login" | "POST /api/v1/auth/refresh" => Public,
        "GET /api/v1/auth/me" => Scoped,
        "POST /api/v1/auth/logout" => Logout,

        "GET /api/v1/tenants" | "POST /api/v1/tenants" => RootOnly,
        "GET /api/v1/server/settings" | "PATCH /api/v1/server/settings" => RootOnly,
        "GET /api/v1/tenants/{id}"
        | "PATCH /api/v1/tenants/{id}"
        | "DELETE /api/v1/tenants/{id}" => Foreign,
        "GET /api/v1/tenants/{id}/email"
        | "PUT /api/v1/tenants/{id}/email"
        | "POST /api/v1/tenants/{id}/email/test" => Foreign,

        "GET /api/v1/admins" => Scoped,
        "POST /api/v1/admins" => NamesForeign,
        "GET /api/v1/admins/{id}" | "PATCH /api/v1/admins/{id}" | "DELETE /api/v1/admins/{id}" => {
            Foreign
        }

        "GET /api/v1/policies" => Scoped,
        "POST /api/v1/policies" => NamesForeign,
        "GET /api/v1/policies/{id}"
        | "PATCH /api/v1/policies/{id}"
        | "DELETE /api/v1/policies/{id}" => Foreign,

        "GET /api/v1/users" => Scoped,
        "POST /api/v1/users" => NamesForeign,
        "GET /api/v1/users/{id}"
        | "PATCH /api/v1/users/{id}"
        | "DELETE /api/v1/users/{id}"
        | "POST /api/v1/users/{id}/transfer" => Foreign,

        "GET /api/v1/users/{id}/protected-items"
        | "POST /api/v1/users/{id}/protected-items"
        | "GET /api/v1/protected-items/{id}"
        | "PATCH /api/v1/protected-items/{id}"
        | "DELETE /api/v1/protected-items/{id}"
        | "POST /api/v1/protected-items/{id}/duplicate" => Foreign,

        "GET /api/v1/users/{id}/vaults"
        | "POST /api/v1/users/{id}/vaults"
        | "GET /api/v1/vaults/{id}"
        | "PATCH /api/v1/vaults/{id}"
        | "DELETE /api/v1/vaults/{id}" => Foreign,
        "POST /api/v1/vaults/replace-address" => Scoped,

        "GET /api/v1/users/{id}/schedules"
        | "POST /api/v1/users/{id}/schedules"
        | "GET /api/v1/schedules/{id}"
        | "PATCH /api/v1/schedules/{id}"
        | "DELETE /api/v1/schedules/{id}"
        | "GET /api/v1/schedules/{id}/upcoming" => Foreign,

        "GET /api/v1/devices" => Scoped,
        "GET /api/v1/devices/{id}"
        | "DELETE /api/v1/devices/{id}"
        | "POST /api/v1/devices/{id}/actions" => Foreign,
        "GET /api/v1/jobs" => Scoped,
        "GET /api/v1/jobs/{id}"
        | "GET /api/v1/jobs/{id}/log"
        | "POST /api/v1/jobs/{id}/cancel"
        | "POST /api/v1/jobs/{id}/abandon" => Foreign,
        "POST /api/v1/jobs/search" | "POST /api/v1/jobs/count" | "GET /api/v1/stats/jobs" => Scoped,
        "GET /api/v1/users/{id}/activity" => Foreign,

        "POST /api/v1/agent/register" => Public,
        "GET /api/v1/agent/connect"
        | "POST /api/v1/agent/jobs"
        | "POST /api/v1/agent/jobs/{id}/progress"
        | "POST /api/v1/agent/jobs/{id}/finish" => Device,

        "GET /api/v1/search" => Scoped,
        "GET /api/v1/events" => Scoped,
        "GET /api/v1/events/stream" => Stream,

        "GET /api/v1/webhooks" => Scoped,
        "POST /api/v1/webhooks" => NamesForeign,
        "GET /api/v1/webhooks/{id}"
        | "PATCH /api/v1/webhooks/{id}"
        | "DELETE /api/v1/webhooks/{id}"
        | "POST /api/v1/webhooks/{id}/rotate-secret"
        | "GET /api/v1/webhooks/{id}/deliveries"
        | "POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"
        | "POST /api/v1/webhooks/{id}/replay"
        | "POST /api/v1/webhooks/{id}/test" => Foreign,
        _ => return None,
    })
}

/// The bodies to send: a minimal valid body (so the answer is about the ids, not the body),
/// naming `foreign`'s objects where the rule needs it. Empty for body-less operations.
fn bodies(op: &Op, own: &Side, foreign: &Side) -> Vec<Value> {
    if !op.has_body {
        return Vec::new();
    }
    let fid = |kind: &str| json!(foreign.id(kind).unwrap_or_else(|| missing(op, kind)));
    let body = match op.key().as_str() {
        "POST /api/v1/auth/logout" => json!({"refresh_token": foreign.admin.refresh_token}),
        "POST /api/v1/tenants" => json!({"name": "Never", "slug": "never"}),
        "PUT /api/v1/tenants/{id}/email" => json!({"mode": "disabled"}),
        "POST /api/v1/admins" => json!({
            "username": format!("iso-{}-extra", own.slug),
            "password": PASSWORD,
            "tenant_id": fid("ten"),
        }),
        "POST /api/v1/policies" => json!({"name": "iso extra", "tenant_id": fid("ten")}),
        "POST /api/v1/users" => {
            let mut body = create_body("usr", &format!("{}-extra", own.slug), &own.ids);
            body["policy_id"] = fid("pol");
            body
        }
        "POST /api/v1/users/{id}/transfer" => json!({"tenant_id": own.id("ten")}),
        "POST /api/v1/users/{id}/protected-items" => create_body("itm", &own.slug, &own.ids),
        "POST /api/v1/protected-items/{id}/duplicate" => json!({}),
        "POST /api/v1/users/{id}/vaults" => create_body("vlt", &own.slug, &own.ids),
        "POST /api/v1/users/{id}/schedules" => create_body("sch", &own.slug, &own.ids),
        "POST /api/v1/devices/{id}/actions" => json!({"kind": "drop_connection"}),
        "POST /api/v1/webhooks" => json!({
            "name": "iso extra",
            "url": "http://127.0.0.1:9/extra",
            "tenant_id": fid("ten"),
        }),
        "POST /api/v1/webhooks/{id}/rotate-secret" => json!({}),
        "POST /api/v1/webhooks/{id}/replay" => json!({"after": 0}),
        "POST /api/v1/jobs/search" | "POST /api/v1/jobs/count" => {
            // Everything in scope, then a filter naming the other tenant's user and job:
            // neither matches anything.
            return vec![
                json!({}),
                json!({"filter": {"or": [
                    {"field": "user_id", "op": "str_eq", "value": fid("usr")},
                    {"field": "job_id", "op": "str_eq", "value": fid("job")},
                ]}}),
            ];
        }
        "POST /api/v1/agent/jobs" => json!({
            "protected_item_id": fid("itm"),
            "vault_id": fid("vlt"),
            "started_at": "2026-01-01T00:00:00Z",
        }),
        "POST /api/v1/agent/jobs/{id}/progress" => {
            json!({"bytes_done": 1, "items_done": 1, "items_total": 2})
        }
        "POST /api/v1/agent/jobs/{id}/finish" => json!({
            "status": 5000,
            "ended_at": "2026-01-01T01:00:00Z",
            "total_bytes": 1,
            "upload_bytes": 1,
            "download_bytes": 0,
            "total_files": 1,
            "total_dirs": 1,
        }),
        "POST /api/v1/vaults/replace-address" => {
            // A dry run over an address part both tenants' vaults share shows what the
            // caller can match; a real run aimed at the other's address must match nothing.
            return vec![
                json!({"find": "iso.example", "replace": "elsewhere.example", "dry_run": true}),
                json!({
                    "find": format!("{}.iso.example", foreign.slug),
                    "replace": "taken.example",
                    "dry_run": false,
                }),
            ];
        }
        _ if op.method == Method::PATCH => json!({}),
        key => panic!(
            "{key} takes a body the cross-tenant walk does not know: add a minimal valid one \
             to `bodies` in tests/it/cross_tenant.rs"
        ),
    };
    vec![body]
}

fn missing(op: &Op, kind: &str) -> ! {
    panic!(
        "{} needs a `{kind}_…` object of the other tenant, which the walk cannot create: add \
         its create route to `CREATABLE` in tests/it/surface.rs",
        op.key()
    )
}

/// The other tenant's id for each path parameter of `op`.
fn foreign_path(op: &Op, foreign: &Side) -> String {
    op.fill(|param| {
        let kind = id_kind(op, param).unwrap_or_else(|| {
            panic!(
                "{}: the walk does not know what kind of id `{{{param}}}` is: teach \
                 `surface::id_kind`",
                op.key()
            )
        });
        foreign
            .id(kind)
            .unwrap_or_else(|| missing(op, kind))
            .to_owned()
    })
}

async fn call(client: &Client, op: &Op, path: &str, body: Option<&Value>) -> Res {
    let builder = client.request(op.method.clone(), path);
    let builder = match body {
        Some(body) => builder.json(body),
        None => builder,
    };
    client.send(builder).await
}

/// Calls `op` once per body (once without one when it takes none).
async fn call_all(client: &Client, op: &Op, path: &str, bodies: &[Value]) -> Vec<Res> {
    let mut out = Vec::new();
    if bodies.is_empty() {
        out.push(call(client, op, path, None).await);
    }
    for body in bodies {
        out.push(call(client, op, path, Some(body)).await);
    }
    out
}

/// Asserts `res` mentions nothing of `foreign`'s beyond what the request itself named
/// (a 404 may echo the id it did not find).
#[track_caller]
fn assert_clean(what: &str, res: &Res, foreign: &Side) {
    let text = foreign
        .marks
        .iter()
        .filter(|m| what.contains(m.as_str()))
        .fold(res.text.clone(), |text, named| {
            text.replace(named.as_str(), "")
        });
    if let Some(mark) = foreign.mentioned_in(&text) {
        panic!(
            "{what} mentions tenant {}'s `{mark}`: {}",
            foreign.slug, res.text
        );
    }
}

/// The query strings a scoped operation is called with: plain (required parameters
/// filled), then each `*_id` filter naming the other tenant's object, and `q` matching
/// names both tenants share.
fn scoped_queries(op: &Op, foreign: &Side) -> Vec<String> {
    let required: Vec<String> = op
        .query_params
        .iter()
        .filter(|(_, required)| *required)
        .map(|(name, _)| match name.as_str() {
            "q" => "q=iso".to_owned(),
            other => panic!(
                "{}: required query parameter `{other}` is unknown to the walk: add a value \
                 in `scoped_queries`",
                op.key()
            ),
        })
        .collect();
    let mut queries = vec![required.clone()];
    for (name, is_required) in &op.query_params {
        if *is_required {
            continue;
        }
        let extra = match (name.as_str(), kind_of_field(name)) {
            // Job search's `q` is a filter expression, not a name term.
            ("q", _) if op.path == "/api/v1/jobs" => continue,
            ("q", _) => "q=iso".to_owned(),
            (_, Some(kind)) => match foreign.id(kind) {
                Some(id) => format!("{name}={id}"),
                None => continue,
            },
            _ => continue,
        };
        let mut query = required.clone();
        query.push(extra);
        queries.push(query);
    }
    queries
        .into_iter()
        .map(|q| {
            if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            }
        })
        .collect()
}

/// `own`'s admin calls every operation with `foreign`'s ids.
async fn walk(ops: &[Op], own: &Side, foreign: &Side) {
    let client = &own.admin;
    let by = format!("tenant {}'s admin", own.slug);
    let mut unknown = Vec::new();
    // Removals last, so a broken 404 cannot hide the later calls' answers.
    let mut ordered: Vec<&Op> = ops.iter().collect();
    ordered.sort_by_key(|op| op.method == Method::DELETE);
    for op in ordered {
        let Some(rule) = rule(op) else {
            unknown.push(op.key());
            continue;
        };
        let what = |path: &str| format!("{} {path} by {by}", op.method);
        match rule {
            Rule::Public => assert!(
                !op.secured,
                "{} needs a bearer token, so it is not Public",
                op.key()
            ),
            Rule::Device => {
                let path = if op.path_params.is_empty() {
                    op.path.clone()
                } else {
                    foreign_path(op, foreign)
                };
                let bodies = bodies(op, own, foreign);
                for res in call_all(client, op, &path, &bodies).await {
                    assert_eq!(res.status, 401, "{}: {}", what(&path), res.text);
                }
                if op.method == Method::GET {
                    continue;
                }
                let mut device = client.clone();
                device.token = Some(
                    own.device_token
                        .clone()
                        .unwrap_or_else(|| missing(op, "dev")),
                );
                for res in call_all(&device, op, &path, &bodies).await {
                    if op.path_params.is_empty() {
                        // A report naming objects that are not its user's is invalid
                        // input, whoever owns them: 400 naming each such field.
                        res.problem(400);
                        let fields = res.error_fields();
                        assert!(
                            !fields.is_empty() && fields.iter().all(|f| f.ends_with("_id")),
                            "{} (device): {}",
                            what(&path),
                            res.text
                        );
                    } else {
                        assert_eq!(res.status, 404, "{} (device): {}", what(&path), res.text);
                        res.problem(404);
                    }
                }
            }
            Rule::Foreign => {
                let path = foreign_path(op, foreign);
                for res in call_all(client, op, &path, &bodies(op, own, foreign)).await {
                    assert_eq!(res.status, 404, "{}: {}", what(&path), res.text);
                    res.problem(404);
                    assert_clean(&what(&path), &res, foreign);
                }
                if op.method == Method::GET {
                    let path = op.fill(|param| {
                        let kind = id_kind(op, param).unwrap();
                        own.id(kind).unwrap_or_else(|| missing(op, kind)).to_owned()
                    });
                    let res = call(client, op, &path, None).await;
                    assert!(
                        [200, 403].contains(&res.status),
                        "{}: {}",
                        what(&path),
                        res.text
                    );
                    assert_clean(&what(&path), &res, foreign);
                }
            }
            Rule::RootOnly => {
                for res in call_all(client, op, &op.path, &bodies(op, own, foreign)).await {
                    assert_eq!(res.status, 403, "{}: {}", what(&op.path), res.text);
                    res.problem(403);
                }
            }
            Rule::Scoped => {
                for query in scoped_queries(op, foreign) {
                    let path = format!("{}{query}", op.path);
                    for res in call_all(client, op, &path, &bodies(op, own, foreign)).await {
                        assert_eq!(res.status, 200, "{}: {}", what(&path), res.text);
                        assert_clean(&what(&path), &res, foreign);
                        if let Some(items) = res.body["items"].as_array() {
                            for item in items {
                                let id = item["id"].as_str().unwrap_or_default();
                                assert!(
                                    !foreign.ids.values().any(|f| f == id),
                                    "{} lists {id}",
                                    what(&path)
                                );
                            }
                        }
                    }
                }
            }
            Rule::NamesForeign => {
                for res in call_all(client, op, &op.path, &bodies(op, own, foreign)).await {
                    assert_eq!(res.status, 404, "{}: {}", what(&op.path), res.text);
                    res.problem(404);
                }
            }
            Rule::Stream => {
                let res = call(client, op, &op.path, None).await;
                assert_eq!(res.status, 400, "{}: {}", what(&op.path), res.text);
                assert_clean(&what(&op.path), &res, foreign);
            }
            Rule::Logout => {
                for res in call_all(client, op, &op.path, &bodies(op, own, foreign)).await {
                    assert_eq!(res.status, 204, "{}: {}", what(&op.path), res.text);
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "operations the cross-tenant walk does not cover: {unknown:?}. Add each to `rule` in \
         tests/it/cross_tenant.rs, saying how a tenant admin calling it with another \
         tenant's ids is answered"
    );
}

async fn log_head(app: &TestServer) -> u64 {
    let res = app.anonymous().get("/metrics").await;
    metric(&res.text, "halley_log_head_position").expect("the log head gauge")
}

#[tokio::test]
async fn every_route_keeps_tenants_apart_and_appends_nothing() {
    let app = TestServer::start().await;
    let root = app.root().await;
    let ops = surface::operations(&root).await;
    let a = surface::side(&app, &root, &ops, "ta").await;
    let b = surface::side(&app, &root, &ops, "tb").await;
    let head = log_head(&app).await;

    walk(&ops, &a, &b).await;
    walk(&ops, &b, &a).await;

    assert_eq!(
        log_head(&app).await,
        head,
        "calls across tenants appended events"
    );
    // Each side's session survived the other's logout attempt.
    for side in [&a, &b] {
        let res = side
            .admin
            .post(
                "/api/v1/auth/refresh",
                json!({"refresh_token": side.admin.refresh_token}),
            )
            .await;
        assert_eq!(res.status, 200, "{}'s session: {}", side.slug, res.text);
    }
    // And every object is still there for its own admin.
    for side in [&a, &b] {
        for op in &ops {
            let is_get_by_id = op.method == Method::GET
                && op.path_params.len() == 1
                && op.path.ends_with("/{id}")
                && op.path != "/api/v1/tenants/{id}";
            if !is_get_by_id {
                continue;
            }
            let Some(id) = id_kind(op, "id").and_then(|k| side.id(k)) else {
                continue;
            };
            let path = op.fill(|_| id.to_owned());
            let res = side.admin.get(&path).await;
            assert_eq!(res.status, 200, "{path} for {}: {}", side.slug, res.text);
        }
    }
    app.stop().await;
}
