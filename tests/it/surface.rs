//! The API surface as the OpenAPI document describes it, and a "world" to call it with: two
//! tenants, each with an admin and one object of every kind the document lets us create.
//! The cross-tenant and bad-input suites walk every operation of the document, so a route
//! added later is exercised (or flagged) without editing them.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Client, TestServer, PASSWORD};

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Op {
    pub method: Method,
    /// The templated path, e.g. `/api/v1/users/{id}/vaults`.
    pub path: String,
    /// Path parameters, in order.
    pub path_params: Vec<String>,
    /// Query parameters with whether each is required.
    pub query_params: Vec<(String, bool)>,
    pub has_body: bool,
    /// Whether the operation needs a bearer token.
    pub secured: bool,
}

impl Op {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path with each parameter replaced by `value(param)`.
    pub fn fill(&self, mut value: impl FnMut(&str) -> String) -> String {
        let mut path = self.path.clone();
        for param in &self.path_params {
            path = path.replace(&format!("{{{param}}}"), &value(param));
        }
        path
    }
}

/// Every operation of `/openapi.json`, sorted by path then method.
pub async fn operations(client: &Client) -> Vec<Op> {
    let doc = client.get("/openapi.json").await;
    assert_eq!(doc.status, 200, "{}", doc.text);
    let mut ops = Vec::new();
    for (path, item) in doc.body["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().expect("an HTTP method");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let of = |place: &str| -> Vec<(String, bool)> {
                params
                    .iter()
                    .filter(|p| p["in"] == place)
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_owned(),
                            p["required"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            };
            ops.push(Op {
                method,
                path: path.clone(),
                path_params: of("path").into_iter().map(|(n, _)| n).collect(),
                query_params: of("query"),
                has_body: op.get("requestBody").is_some(),
                secured: op["security"].as_array().is_some_and(|s| !s.is_empty()),
            });
        }
    }
    ops
}

/// The id prefix a path parameter takes: `{id}` by the collection segment before it, other
/// parameters by name. `None`: the test does not know this kind yet.
pub fn id_kind(op: &Op, param: &str) -> Option<&'static str> {
    if param != "id" {
        return kind_of_field(param);
    }
    let before = op.path.split(&format!("/{{{param}}}")).next()?;
    let collection = before.rsplit('/').next()?;
    Some(match collection {
        "tenants" => "ten",
        "admins" => "adm",
        "policies" => "pol",
        "users" => "usr",
        "protected-items" => "itm",
        "vaults" => "vlt",
        "schedules" => "sch",
        "devices" => "dev",
        "jobs" => "job",
        "webhooks" => "whk",
        "reports" => "rpt",
        "campaigns" => "cmp",
        _ => return None,
    })
}

/// The id prefix of a field or parameter named `<kind>_id`.
pub fn kind_of_field(name: &str) -> Option<&'static str> {
    Some(match name {
        "tenant_id" => "ten",
        "admin_id" => "adm",
        "policy_id" => "pol",
        "user_id" => "usr",
        "protected_item_id" => "itm",
        "vault_id" => "vlt",
        "schedule_id" => "sch",
        "device_id" | "owner_device_id" => "dev",
        "job_id" => "job",
        "webhook_id" => "whk",
        "report_id" => "rpt",
        "campaign_id" => "cmp",
        "delivery_id" => "msg",
        _ => return None,
    })
}

/// A well-formed id of `kind` that names nothing.
pub fn unknown_id(kind: &str) -> String {
    format!("{kind}_01HF7YAT00000000000000001A")
}

/// One tenant with an admin holding every `allow_*` permission and one object of each kind
/// its admin can create through the API (the document says which routes exist).
pub struct Side {
    pub slug: String,
    pub admin: Client,
    /// Kind prefix (`ten`, `adm`, `pol`, …) → the id of this tenant's object of that kind.
    pub ids: BTreeMap<&'static str, String>,
    /// Strings only this tenant's rows contain (ids, usernames, a name marker).
    pub marks: Vec<String>,
    /// The token of this tenant's device, if devices exist.
    pub device_token: Option<String>,
}

impl Side {
    pub fn id(&self, kind: &str) -> Option<&str> {
        self.ids.get(kind).map(String::as_str)
    }

    /// The first of `marks` that `text` contains.
    pub fn mentioned_in(&self, text: &str) -> Option<&str> {
        self.marks
            .iter()
            .find(|m| text.contains(m.as_str()))
            .map(String::as_str)
    }
}

/// Every object kind the walk can create, in dependency order, with the route (a template
/// of the document) it is created at. Kinds whose route the document lacks are skipped.
const CREATABLE: [(&str, &str); 6] = [
    ("pol", "/api/v1/policies"),
    ("usr", "/api/v1/users"),
    ("itm", "/api/v1/users/{id}/protected-items"),
    ("vlt", "/api/v1/users/{id}/vaults"),
    ("sch", "/api/v1/users/{id}/schedules"),
    ("whk", "/api/v1/webhooks"),
];

/// The body creating a `kind` object for tenant `slug`; every name carries the tenant's
/// mark so a leaked row shows up in any answer.
pub fn create_body(kind: &str, slug: &str, ids: &BTreeMap<&'static str, String>) -> Value {
    let mark = format!("iso mark-{slug}");
    match kind {
        "pol" => json!({"name": format!("{mark} policy"), "description": mark}),
        "usr" => {
            let mut body = json!({
                "username": format!("iso-{slug}-user"),
                "password": PASSWORD,
                "account_name": format!("{mark} account"),
                "emails": [format!("{slug}@example.com")],
            });
            if let Some(policy) = ids.get("pol") {
                body["policy_id"] = json!(policy);
            }
            body
        }
        "itm" => json!({"name": format!("{mark} item"), "engine": "files"}),
        "vlt" => json!({
            "name": format!("{mark} vault"),
            "kind": "s3",
            "address": format!("https://{slug}.iso.example"),
            "bucket": format!("bucket-{slug}"),
        }),
        "sch" => json!({
            "name": format!("{mark} schedule"),
            "protected_item_id": ids.get("itm"),
            "vault_id": ids.get("vlt"),
            "triggers": [{"frequency": 8011, "seconds_past": 3600}],
        }),
        // Nothing listens there: deliveries fail and wait for their retry.
        "whk" => json!({"name": format!("{mark} webhook"), "url": "http://127.0.0.1:9/iso"}),
        _ => unreachable!("{kind} is not creatable"),
    }
}

/// Sets up tenant `slug` with its admin and objects.
pub async fn side(app: &TestServer, root: &Client, ops: &[Op], slug: &str) -> Side {
    let (tenant, admin) = app.tenant_with_admin(root, slug).await;
    let me = admin.get("/api/v1/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    let mut ids = BTreeMap::new();
    ids.insert("ten", tenant["id"].as_str().unwrap().to_owned());
    ids.insert("adm", me.body["id"].as_str().unwrap().to_owned());
    for (kind, route) in CREATABLE {
        let served = ops
            .iter()
            .any(|op| op.method == Method::POST && op.path == route);
        let needs = match kind {
            "itm" | "vlt" => &["usr"][..],
            "sch" => &["usr", "itm", "vlt"][..],
            _ => &[][..],
        };
        if !served || needs.iter().any(|k| !ids.contains_key(k)) {
            continue;
        }
        let path = route.replace("{id}", ids.get("usr").map_or("", String::as_str));
        let res = admin.post(&path, create_body(kind, slug, &ids)).await;
        assert_eq!(res.status, 201, "creating {kind} at {path}: {}", res.text);
        ids.insert(kind, res.body["id"].as_str().unwrap().to_owned());
        if kind == "whk" {
            // A well-formed delivery id of this endpoint (its path names the endpoint).
            ids.insert("msg", format!("msg_1_0_{}", ids["whk"]));
        }
    }
    let served =
        |method: Method, path: &str| ops.iter().any(|op| op.method == method && op.path == path);
    // Devices register with their user's password (the agent protocol), then report a job.
    let mut device_token = None;
    if ids.contains_key("usr") && served(Method::POST, "/api/v1/agent/register") {
        let res = app
            .anonymous()
            .post(
                "/api/v1/agent/register",
                json!({
                    "username": format!("iso-{slug}-user"),
                    "password": PASSWORD,
                    "device": {
                        "friendly_name": format!("iso mark-{slug} laptop"),
                        "platform": "linux",
                        "arch": "x86_64",
                        "os_version": "6.1",
                        "client_version": "1.0.0",
                        "timezone": "UTC",
                    },
                }),
            )
            .await;
        assert_eq!(res.status, 201, "registering a device: {}", res.text);
        ids.insert("dev", res.body["device_id"].as_str().unwrap().to_owned());
        device_token = Some(res.body["device_token"].as_str().unwrap().to_owned());
    }
    if let (Some(token), true) = (&device_token, served(Method::POST, "/api/v1/agent/jobs")) {
        let mut device = app.anonymous();
        device.token = Some(token.clone());
        let res = device
            .post(
                "/api/v1/agent/jobs",
                json!({
                    "protected_item_id": ids.get("itm"),
                    "vault_id": ids.get("vlt"),
                    "started_at": "2026-01-01T00:00:00Z",
                }),
            )
            .await;
        assert_eq!(res.status, 201, "reporting a job: {}", res.text);
        ids.insert("job", res.body["job_id"].as_str().unwrap().to_owned());
    }
    let username = ids.contains_key("usr").then(|| format!("iso-{slug}-user"));
    let mut marks: Vec<String> = ids.values().cloned().collect();
    marks.push(format!("mark-{slug}"));
    marks.push(format!("{slug}-admin"));
    marks.extend(username.clone());
    Side {
        slug: slug.to_owned(),
        admin,
        ids,
        marks,
        device_token,
    }
}
