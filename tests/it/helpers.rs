//! Starting and stopping a real server for a test.

use std::path::Path;

use std::sync::Arc;

use halley::{RunningServer, ServeOptions};
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;
use writer::{Clock, ManualClock, SystemClock};

/// The root admin's password in every test server.
pub const ROOT_PASSWORD: &str = "root-password-for-tests";
/// The password every test admin gets.
pub const PASSWORD: &str = "admin-password-for-tests";

/// sled 0.34.7 guards its batches with one lock shared by every database in the process
/// (`concurrency_control`). With servers of parallel tests side by side in this binary, one
/// server's closing flush (holding that lock to read while it waited for its I/O buffer) and
/// another server's batch (waiting to write) hung the suite once. A halley process holds
/// one database, so tests run their servers one at a time, as production does.
static ONE_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running server with its own data directory, and an HTTP client for it.
pub struct TestServer {
    pub server: RunningServer,
    /// The server's clock: starts at the real time and moves only when a test says so.
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    /// Kept so the directory outlives the server; removed when the test drops it.
    pub data_dir: TempDir,
    /// This server's turn (see [`ONE_SERVER`]); released after the server is gone.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl TestServer {
    /// Starts a server on a fresh data directory and waits until it is ready.
    pub async fn start() -> TestServer {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        TestServer::start_in(data_dir).await
    }

    /// Starts a server on an existing data directory and waits until it is ready.
    pub async fn start_in(data_dir: TempDir) -> TestServer {
        TestServer::launch(data_dir, options).await
    }

    /// Starts a server with `options` for its data directory (the clock is the test's) and
    /// waits until it is ready, once no other server of this test binary is running.
    pub async fn launch(
        data_dir: TempDir,
        options: impl FnOnce(&Path) -> ServeOptions,
    ) -> TestServer {
        let turn = tokio::time::timeout(std::time::Duration::from_secs(300), ONE_SERVER.lock())
            .await
            .expect("no other test server for 5 minutes (does a test hold two at once?)");
        let clock = Arc::new(ManualClock::new(SystemClock.now_us()));
        let options = ServeOptions {
            clock: clock.clone(),
            ..options(data_dir.path())
        };
        let server = halley::start(&options).await.expect("server starts");
        server.ready().await.expect("server becomes ready");
        TestServer {
            server,
            clock,
            client: reqwest::Client::new(),
            data_dir,
            _turn: turn,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Shuts the server down cleanly and hands back its data directory.
    pub async fn stop(self) -> TempDir {
        self.server.shutdown().await.expect("clean shutdown");
        self.data_dir
    }
}

/// The options every test server starts with.
pub fn options(data_dir: &Path) -> ServeOptions {
    ServeOptions {
        admin_password: Some(ROOT_PASSWORD.to_owned()),
        // Still argon2id, at a cost that keeps the suite fast.
        api: api::ApiConfig {
            argon2: api::Argon2Params {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
            ..api::ApiConfig::default()
        },
        ..ServeOptions::new(data_dir.to_path_buf(), "127.0.0.1:0".to_owned())
    }
}

/// An HTTP answer, read whole: status, headers, and the body as JSON (`Null` if empty or
/// not JSON; the raw text is kept too).
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer with `status`; returns the problem.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        &self.body
    }

    /// The field names of a validation problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A client of one test server, logged in or not.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    pub token: Option<String>,
    pub refresh_token: Option<String>,
}

impl Client {
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Res {
        let res = builder.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Res {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Res {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Res {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Res {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }

    /// Logs in; panics unless it succeeds. `tenant` is a slug or id.
    pub async fn login(&self, username: &str, password: &str, tenant: Option<&str>) -> Client {
        let mut body = json!({"username": username, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let res = self.post("/api/v1/auth/login", body).await;
        assert_eq!(res.status, 200, "login as {username}: {}", res.text);
        Client {
            token: Some(res.body["access_token"].as_str().unwrap().to_owned()),
            refresh_token: Some(res.body["refresh_token"].as_str().unwrap().to_owned()),
            ..self.clone()
        }
    }
}

impl TestServer {
    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        Client {
            base: self.server.url(),
            http: self.client.clone(),
            token: None,
            refresh_token: None,
        }
    }

    /// The root admin `admin`, logged in.
    pub async fn root(&self) -> Client {
        self.anonymous().login("admin", ROOT_PASSWORD, None).await
    }

    /// Creates a tenant named after `slug`; returns its JSON.
    pub async fn tenant(&self, root: &Client, slug: &str) -> Value {
        let res = root
            .post(
                "/api/v1/tenants",
                json!({"name": format!("Tenant {slug}"), "slug": slug}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        res.body
    }

    /// Creates an admin of `tenant` (an id) with `permissions` (JSON, may be `{}`) and
    /// password [`PASSWORD`], and logs it in.
    pub async fn tenant_admin(
        &self,
        root: &Client,
        tenant: &str,
        username: &str,
        permissions: Value,
    ) -> Client {
        let res = root
            .post(
                "/api/v1/admins",
                json!({
                    "username": username,
                    "password": PASSWORD,
                    "tenant_id": tenant,
                    "permissions": permissions,
                }),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        self.anonymous()
            .login(username, PASSWORD, Some(tenant))
            .await
    }

    /// A fresh tenant with one admin holding every `allow_*` permission: the usual start of
    /// a test. Returns the tenant's JSON and its admin.
    pub async fn tenant_with_admin(&self, root: &Client, slug: &str) -> (Value, Client) {
        let tenant = self.tenant(root, slug).await;
        let id = tenant["id"].as_str().unwrap().to_owned();
        let admin = self
            .tenant_admin(
                root,
                &id,
                &format!("{slug}-admin"),
                json!({
                    "allow_edit_webhooks": true,
                    "allow_edit_email_options": true,
                    "allow_edit_branding": true,
                    "allow_upgrade_campaigns": true,
                }),
            )
            .await;
        (tenant, admin)
    }

    /// The event log's head position, to check that a request appended nothing.
    pub fn head(&self) -> u64 {
        use eventlog::EventLog;
        self.server.log().head()
    }
}

/// The value of an unlabelled Prometheus sample, e.g. `halley_log_head_position`.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
}
