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
/// (`concurrency_control`), and a reader waits while a batch waits to write. A database
/// closing flushes while holding that lock to read, until its own flusher thread (which
/// needs the lock to read too) writes its last buffer; so one database closing while another
/// applies a batch hangs both for good (seen in this suite: a test that kept the event log
/// past `stop` closed it while the next test's server started). A halley process holds one
/// database, so tests run their servers one at a time, as production does, and a turn ends
/// only once its server's database is closed (see [`Turn`]).
static ONE_SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a test may wait for its server's database to close after `stop`.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A test's turn to run a server (see [`ONE_SERVER`]). It passes to the next test only once
/// sled has let go of the database file's lock, which it holds until the database is closed,
/// shortly after its last handle (and its background threads) let go.
struct Turn {
    guard: Option<tokio::sync::MutexGuard<'static, ()>>,
    /// The server's database file, opened again to wait on sled's lock.
    database: Option<std::fs::File>,
}

impl Turn {
    async fn take() -> Turn {
        let guard = tokio::time::timeout(std::time::Duration::from_secs(300), ONE_SERVER.lock())
            .await
            .expect("no other test server for 5 minutes (does a test hold two at once?)");
        Turn {
            guard: Some(guard),
            database: None,
        }
    }

    /// Watches the database of the server started in `data_dir`.
    fn watch(&mut self, data_dir: &Path) {
        let database =
            std::fs::File::open(eventlog::data_file(data_dir)).expect("the server's database");
        self.database = Some(database);
    }

    /// Waits until the watched database is closed.
    async fn closed(&mut self) {
        let Some(database) = self.database.take() else {
            return;
        };
        let closed = tokio::task::spawn_blocking(move || database.lock());
        tokio::time::timeout(CLOSE_WAIT, closed)
            .await
            .expect(
                "the server's database is still open after stop: \
                 does the test still hold the event log (`server.log()`)?",
            )
            .expect("waiting for the database")
            .expect("locking the database file");
    }
}

impl Drop for Turn {
    /// A server dropped without `stop` (a failed test, or one that just ends) closes when its
    /// runtime drops its tasks, after this: the next turn waits for that on a thread.
    fn drop(&mut self) {
        let guard = self.guard.take();
        if let Some(database) = self.database.take() {
            std::thread::spawn(move || {
                let _closed = database.lock();
                drop(guard);
            });
        }
    }
}

/// A running server with its own data directory, and an HTTP client for it.
pub struct TestServer {
    pub server: RunningServer,
    /// The server's clock: starts at the real time and moves only when a test says so.
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    /// Kept so the directory outlives the server; removed when the test drops it.
    pub data_dir: TempDir,
    turn: Turn,
}

/// A stopped server's data directory, still in its test's turn: nothing else runs a database
/// until it is dropped or started again.
pub struct Stopped {
    pub data_dir: TempDir,
    turn: Turn,
}

impl Stopped {
    /// Starts a server again on the same data directory, in the same turn, with the options
    /// every test server starts with.
    pub async fn start(self) -> TestServer {
        TestServer::launch_in_turn(self.turn, self.data_dir, options).await
    }
}

impl TestServer {
    /// Starts a server on a fresh data directory and waits until it is ready.
    pub async fn start() -> TestServer {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        TestServer::launch(data_dir, options).await
    }

    /// Starts a server with `options` for its data directory (the clock is the test's) and
    /// waits until it is ready, once no other server of this test binary is running.
    pub async fn launch(
        data_dir: TempDir,
        options: impl FnOnce(&Path) -> ServeOptions,
    ) -> TestServer {
        TestServer::launch_in_turn(Turn::take().await, data_dir, options).await
    }

    async fn launch_in_turn(
        mut turn: Turn,
        data_dir: TempDir,
        options: impl FnOnce(&Path) -> ServeOptions,
    ) -> TestServer {
        let clock = Arc::new(ManualClock::new(SystemClock.now_us()));
        let options = ServeOptions {
            clock: clock.clone(),
            ..options(data_dir.path())
        };
        let server = halley::start(&options).await.expect("server starts");
        turn.watch(data_dir.path());
        server.ready().await.expect("server becomes ready");
        TestServer {
            server,
            clock,
            client: reqwest::Client::new(),
            data_dir,
            turn,
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

    /// Shuts the server down cleanly and waits until its database is closed; the data
    /// directory stays in this test's turn until the result is dropped or started again.
    pub async fn stop(mut self) -> Stopped {
        self.server.shutdown().await.expect("clean shutdown");
        self.turn.closed().await;
        Stopped {
            data_dir: self.data_dir,
            turn: self.turn,
        }
    }

    /// Stops the server cleanly and starts it again on the same data directory.
    pub async fn restart(self) -> TestServer {
        self.stop().await.start().await
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
