//! Webhook delivery through the real server to real receivers on 127.0.0.1:0 that misbehave:
//! one fails the first attempt of every delivery (half its requests), one never answers,
//! one is healthy; a disabled and a non-matching endpoint get nothing. Also the crash loop
//! (gated by `HALLEY_SLOW_TESTS=1`): the server is SIGKILLed mid-delivery over and over, and
//! every event still arrives, with the duplicates per event reported.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use halley::ServeOptions;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::helpers::{Client, TestServer, ROOT_PASSWORD};

/// Bounds a broken test; every wait below ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(60);

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    /// 204 to everything.
    Healthy,
    /// 204 to everything, each after this long (so requests are in flight at any moment).
    Slow(Duration),
    /// 500 to the first request of each delivery id, 204 to the others: half of its
    /// requests fail when every delivery needs two attempts.
    FailFirstAttempt,
    /// Reads the request and never answers.
    Hang,
}

/// What a receiver has seen so far.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// Requests per `webhook-id`.
    by_id: HashMap<String, u32>,
    /// `data.policy_id` of each request's body, per `webhook-id`.
    policy_of: HashMap<String, String>,
    requests: u64,
    /// Requests not answered yet (nor dropped by the sender).
    open: u64,
}

impl Seen {
    fn ids(&self) -> BTreeSet<String> {
        self.by_id.keys().cloned().collect()
    }

    /// The policies the requests were about.
    fn policies(&self) -> BTreeSet<String> {
        self.policy_of.values().cloned().collect()
    }
}

/// A receiver on 127.0.0.1:0; the test awaits changes of what it has seen.
struct Receiver {
    url: String,
    seen: watch::Receiver<Seen>,
    handle: actix_web::dev::ServerHandle,
}

/// Counts a request out once it is answered, or dropped because the sender gave up.
struct OpenRequest(watch::Sender<Seen>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.send_modify(|s| s.open -= 1);
    }
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let (tx, seen) = watch::channel(Seen::default());
        let server = HttpServer::new(move || {
            let tx = tx.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let tx = tx.clone();
                async move {
                    let id = req
                        .headers()
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let policy = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|b| b["data"]["policy_id"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    let mut attempt = 0;
                    tx.send_modify(|s| {
                        s.requests += 1;
                        let n = s.by_id.entry(id.clone()).or_default();
                        *n += 1;
                        attempt = *n;
                        s.policy_of.insert(id, policy);
                        s.open += 1;
                    });
                    let _open = OpenRequest(tx);
                    match behaviour {
                        Behaviour::Healthy => HttpResponse::NoContent().finish(),
                        Behaviour::Slow(delay) => {
                            // The receiver's own latency, not a wait for a condition.
                            tokio::time::sleep(delay).await;
                            HttpResponse::NoContent().finish()
                        }
                        Behaviour::FailFirstAttempt if attempt == 1 => {
                            HttpResponse::InternalServerError().finish()
                        }
                        Behaviour::FailFirstAttempt => HttpResponse::NoContent().finish(),
                        Behaviour::Hang => std::future::pending::<HttpResponse>().await,
                    }
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("receiver binds");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://{addr}/hook"),
            seen,
            handle,
        }
    }

    fn now(&self) -> Seen {
        self.seen.borrow().clone()
    }

    /// Waits until what the receiver has seen satisfies `done`; returns it.
    async fn until(&self, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let mut seen = self.seen.clone();
        let result = match tokio::time::timeout(WAIT, seen.wait_for(|s| done(s))).await {
            Ok(Ok(s)) => s.clone(),
            _ => panic!("{what}: not within {WAIT:?}; seen {:?}", self.now()),
        };
        result
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Options like the other test servers' (see `helpers`), with webhook retries after
/// `retry_delays` and requests cut after `request_timeout`.
fn serve_options(
    data_dir: &Path,
    retry_delays: Vec<Duration>,
    request_timeout: Duration,
) -> ServeOptions {
    let mut options = crate::helpers::options(data_dir);
    options.webhooks.retry_schedule = retry_delays;
    options.webhooks.request_timeout = request_timeout;
    options
}

async fn start_with(retry_delays: Vec<Duration>, request_timeout: Duration) -> TestServer {
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    TestServer::launch(data_dir, |dir| {
        serve_options(dir, retry_delays, request_timeout)
    })
    .await
}

async fn create_hook(client: &Client, body: Value) -> String {
    let res = client.post("/api/v1/webhooks", body).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.body["id"].as_str().unwrap().to_owned()
}

/// Creates `n` policies, a few requests at a time; returns their ids.
async fn create_policies(client: &Client, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
        let requests = chunk.iter().map(|i| {
            let client = client.clone();
            let name = format!("{prefix} {i}");
            async move { client.post("/api/v1/policies", json!({"name": name})).await }
        });
        for res in futures_util::future::join_all(requests).await {
            assert_eq!(res.status, 201, "{}", res.text);
            ids.push(res.body["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// Every delivery of `hook` in its log.
async fn delivery_log(client: &Client, hook: &str) -> Vec<Value> {
    let res = client
        .get(&format!("/api/v1/webhooks/{hook}/deliveries?limit=1000"))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_event_reaches_a_flaky_endpoint_while_a_hanging_one_delays_nobody() {
    // The clock is manual and the retry delays are zero, so retries are due at once; the
    // request timeout is real time, long enough that the hang is still on while the healthy
    // endpoint receives everything.
    let app = start_with(vec![Duration::ZERO; 3], Duration::from_secs(5)).await;
    let root = app.root().await;
    let (_tenant, admin) = app.tenant_with_admin(&root, "flaky").await;
    let healthy = Receiver::start(Behaviour::Healthy).await;
    let flaky = Receiver::start(Behaviour::FailFirstAttempt).await;
    let hang = Receiver::start(Behaviour::Hang).await;
    let quiet = Receiver::start(Behaviour::Healthy).await;
    let policies = json!([4600]);
    let healthy_id = create_hook(
        &admin,
        json!({"name": "healthy", "url": healthy.url, "event_types": policies}),
    )
    .await;
    let flaky_id = create_hook(
        &admin,
        json!({"name": "flaky", "url": flaky.url, "event_types": policies}),
    )
    .await;
    let hang_id = create_hook(
        &root,
        json!({"name": "hangs", "url": hang.url, "event_types": policies}),
    )
    .await;
    let disabled_id = create_hook(
        &admin,
        json!({"name": "off", "url": quiet.url, "enabled": false}),
    )
    .await;
    let other_types_id = create_hook(
        &admin,
        json!({"name": "jobs only", "url": quiet.url, "event_types": [4200]}),
    )
    .await;

    const EVENTS: usize = 24;
    let created = create_policies(&admin, "delivered", EVENTS).await;
    let healthy_seen = healthy
        .until("the healthy endpoint receives every event", |s| {
            s.by_id.len() == EVENTS
        })
        .await;
    // The hanging endpoint got requests (the first went out with the first event) and
    // still holds every one of them open: none has timed out yet, and the healthy endpoint
    // already has everything.
    let hang_seen = hang.now();
    assert!(hang_seen.open > 0, "{hang_seen:?}");
    assert_eq!(
        hang_seen.requests, hang_seen.open,
        "the healthy endpoint waited for the hanging one's timeout"
    );
    let expected: BTreeSet<String> = created.into_iter().collect();
    assert_eq!(healthy_seen.policies(), expected);
    assert_eq!(healthy_seen.requests, EVENTS as u64, "{healthy_seen:?}");

    // The flaky endpoint: every event, each after one 500, so half its requests failed.
    let flaky_seen = flaky
        .until("the flaky endpoint receives every event twice", |s| {
            s.by_id.len() == EVENTS && s.by_id.values().all(|n| *n >= 2)
        })
        .await;
    assert_eq!(flaky_seen.policies(), expected);
    assert_eq!(flaky_seen.requests, 2 * EVENTS as u64, "{flaky_seen:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let log = delivery_log(&admin, &flaky_id).await;
        let settled = log.len() == EVENTS && log.iter().all(|d| d["status"] == "delivered");
        if settled {
            for d in &log {
                let codes: Vec<&Value> = d["attempts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| &a["status_code"])
                    .collect();
                assert_eq!(codes, [&json!(500), &json!(204)], "{d}");
            }
            break;
        }
        // The outcome is written just after the receiver answered.
        assert!(Instant::now() < deadline, "{log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The hanging endpoint's attempts are cut by the request timeout and recorded as such.
    let deadline = Instant::now() + WAIT;
    loop {
        let log = delivery_log(&root, &hang_id).await;
        assert_eq!(log.len(), EVENTS);
        let timed_out = log.iter().any(|d| {
            d["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["error"] == "timed out")
        });
        if timed_out {
            break;
        }
        assert!(Instant::now() < deadline, "no attempt timed out: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        hang.now().requests > hang_seen.requests,
        "a timed-out attempt is retried"
    );

    // Deliveries are created when the subscriber routes an event, together with every other
    // endpoint's: the disabled and the non-matching endpoint have none, and got nothing.
    assert_eq!(delivery_log(&admin, &healthy_id).await.len(), EVENTS);
    for hook in [&disabled_id, &other_types_id] {
        assert_eq!(delivery_log(&admin, hook).await, Vec::<Value>::new());
    }
    assert_eq!(quiet.now().requests, 0, "{:?}", quiet.now());

    for receiver in [healthy, flaky, hang, quiet] {
        receiver.stop().await;
    }
    app.stop().await;
}

/// Tells a re-executed test binary to act as the server of the crash loop, in this data
/// directory.
const CRASH_CHILD_DIR: &str = "HALLEY_WEBHOOK_CRASH_CHILD_DIR";
const CRASH_CYCLES: usize = 10;
/// Concurrent event writers while the server runs.
const CRASH_WRITERS: usize = 4;
/// Events one writer creates per server life at most, so a fast machine does not pile up
/// more than the receiver drains quickly.
const CRASH_EVENTS_PER_WRITER: usize = 150;

/// The server of the crash loop, as its own process (started by
/// [`every_event_is_delivered_across_sigkills`]): the real server on a real data directory,
/// on the system clock, printing its URL and serving until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    // Retries come quickly, so a delivery cut short by a kill is not what holds the end up.
    let options = serve_options(
        Path::new(&dir),
        vec![Duration::from_secs(1); 10],
        Duration::from_secs(5),
    );
    let server = halley::start(&options).await.expect("server starts");
    server.ready().await.expect("server becomes ready");
    println!("URL {}", server.url());
    std::future::pending::<()>().await;
}

/// A random number below `n`, without a dependency: `RandomState` is seeded randomly.
fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % n
}

/// The crash loop's server process.
struct ChildServer {
    child: tokio::process::Child,
    api: ServerApi,
}

/// HTTP to the crash loop's server.
#[derive(Clone)]
struct ServerApi {
    url: String,
    http: reqwest::Client,
}

impl ChildServer {
    async fn start(dir: &Path) -> ChildServer {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "webhook_delivery::crash_child", "--nocapture"])
            .env(CRASH_CHILD_DIR, dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server process starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("child stdout") {
                // libtest running one test at a time prints `test <name> ... ` first, on
                // the same line.
                if let Some((_, url)) = line.split_once("URL ") {
                    return url.to_owned();
                }
            }
            panic!("the server process ended before printing its URL");
        })
        .await
        .expect("the server process starts in time");
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChildServer {
            child,
            api: ServerApi {
                url,
                http: reqwest::Client::new(),
            },
        }
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }
}

impl ServerApi {
    async fn login(&self) -> String {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&json!({"username": "admin", "password": ROOT_PASSWORD}))
            .send()
            .await
            .expect("login sent");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// POSTs `body`; the answer's JSON if it is a 201, `None` once the server is gone.
    async fn create(&self, token: &str, path: &str, body: Value) -> Option<Value> {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .ok()?;
        if res.status() != 201 {
            return None;
        }
        res.json().await.ok()
    }

    /// Positions of every `policy.created` in the log.
    async fn policy_positions(&self, token: &str) -> BTreeSet<u64> {
        let mut positions = BTreeSet::new();
        let mut after = "0".to_owned();
        loop {
            let page: Value = self
                .http
                .get(format!(
                    "{}/api/v1/events?types=4600&limit=1000&after={after}",
                    self.url
                ))
                .bearer_auth(token)
                .send()
                .await
                .expect("events read")
                .json()
                .await
                .unwrap();
            for event in page["items"].as_array().unwrap() {
                positions.insert(event["position"].as_u64().unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(next) => after = next.to_owned(),
                None => return positions,
            }
        }
    }
}

/// SIGKILLs the server at random moments while events are being written and delivered,
/// restarts it on the same data directory, and finally checks that every event written
/// reached the endpoint at least once; prints the duplicates per event. Gated by
/// `HALLEY_SLOW_TESTS=1` (set by `.ci/run`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_delivered_across_sigkills() {
    if std::env::var("HALLEY_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set HALLEY_SLOW_TESTS=1 to run the webhook crash loop");
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(Behaviour::Slow(Duration::from_millis(30))).await;
    let mut hook = String::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut killed_in_flight = 0;
    for cycle in 0..CRASH_CYCLES {
        let server = ChildServer::start(dir.path()).await;
        let token = server.api.login().await;
        if cycle == 0 {
            let created = server
                .api
                .create(
                    &token,
                    "/api/v1/webhooks",
                    json!({"name": "crash", "url": receiver.url, "event_types": [4600]}),
                )
                .await
                .expect("the endpoint is created");
            hook = created["id"].as_str().unwrap().to_owned();
        }
        let writers: Vec<_> = (0..CRASH_WRITERS)
            .map(|w| {
                let (api, token) = (server.api.clone(), token.clone());
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for n in 0..CRASH_EVENTS_PER_WRITER {
                        let body = json!({"name": format!("c{cycle} w{w} n{n}")});
                        match api.create(&token, "/api/v1/policies", body).await {
                            Some(policy) => acked.push(policy["id"].as_str().unwrap().to_owned()),
                            None => return acked,
                        }
                    }
                    acked
                })
            })
            .collect();
        // The random kill moment is the point of the test, not a wait for something.
        tokio::time::sleep(Duration::from_millis(200 + random_below(800))).await;
        if receiver.now().open > 0 {
            killed_in_flight += 1;
        }
        server.kill().await;
        for writer in writers {
            acked.extend(writer.await.unwrap());
        }
    }
    // One last start delivers whatever is left.
    let server = ChildServer::start(dir.path()).await;
    let token = server.api.login().await;
    let positions = server.api.policy_positions(&token).await;
    let expected: BTreeSet<String> = positions
        .iter()
        .map(|p| format!("msg_{p}_0_{hook}"))
        .collect();
    let seen = receiver
        .until(
            "every event reaches the endpoint after the last restart",
            |s| expected.iter().all(|id| s.by_id.contains_key(id)),
        )
        .await;
    server.kill().await;
    let delivered_policies = seen.policies();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|p| !delivered_policies.contains(*p))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert_eq!(seen.ids(), expected, "deliveries of events not in the log");
    let requests: u64 = expected.iter().map(|id| u64::from(seen.by_id[id])).sum();
    let most = expected.iter().map(|id| seen.by_id[id]).max().unwrap_or(0);
    let duplicated = expected.iter().filter(|id| seen.by_id[*id] > 1).count();
    writeln!(
        std::io::stderr().lock(),
        "webhook crash test: {CRASH_CYCLES} SIGKILL cycles ({killed_in_flight} with requests in \
         flight), {} events ({} acknowledged) all delivered; {requests} requests = {:.3} per \
         event, {duplicated} events delivered more than once, at most {most} times, in {:.1?}",
        expected.len(),
        acked.len(),
        requests as f64 / expected.len().max(1) as f64,
        started.elapsed()
    )
    .unwrap();
    // A delivery is sent once per server life at most (the receiver never fails).
    assert!(
        most as usize <= CRASH_CYCLES + 1,
        "{most} copies of one event"
    );
    assert!(
        killed_in_flight >= CRASH_CYCLES / 2,
        "the kills rarely hit deliveries in flight ({killed_in_flight})"
    );
    receiver.stop().await;
}
