//! `bench api`: the real server started in-process on loopback (temporary data directory,
//! production argon2id parameters), loaded by N concurrent HTTP/1.1 connections for a fixed
//! time per endpoint: reads of one user, a filtered user list, a durable protected-item
//! create, and, separately because argon2id makes them slow on purpose, logins and user
//! creations. A trivial actix-web handler, served by the same process, is measured the same
//! way right before each endpoint, and that endpoint's line carries it as `baseline_rps`: on a
//! shared 2-core machine the trivial handler's throughput drifts by half within a run, so
//! only an adjacent baseline makes a fair ratio.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{ensure, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Method};
use serde_json::{json, Value};

const ROOT_PASSWORD: &str = "bench-root-password";
const PASSWORD: &str = "bench-user-password";

/// One endpoint's measurement.
pub struct Measured {
    endpoint: String,
    connections: usize,
    requests: usize,
    elapsed: Duration,
    p50_us: u64,
    p99_us: u64,
}

impl Measured {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn to_json(&self, baseline_rps: f64) -> Value {
        json!({
            "name": "api",
            "endpoint": self.endpoint,
            "connections": self.connections,
            "rps": self.rps().round(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "baseline_rps": baseline_rps.round(),
        })
    }
}

/// Each measurement with the trivial handler's throughput measured right before it.
pub struct Report {
    pub lines: Vec<(Measured, f64)>,
}

/// What a load worker sends: method, path, body.
type Request = (Method, String, Option<Value>);

/// Where load goes: the server, the bearer token (if any), how many connections.
#[derive(Clone, Copy)]
struct Target<'a> {
    base: &'a str,
    token: Option<&'a str>,
    connections: usize,
}

/// `connections` workers, each on its own connection, sending `next(worker, i)` back to back
/// until `duration` is up (or `count` requests in all have been sent, when given). Every
/// answer must have status `expect`.
async fn load(
    endpoint: &str,
    target: Target<'_>,
    duration: Duration,
    count: Option<usize>,
    expect: u16,
    next: Arc<dyn Fn(&mut StdRng) -> Request + Send + Sync>,
) -> anyhow::Result<Measured> {
    let Target {
        base,
        token,
        connections,
    } = target;
    let started = Instant::now();
    let deadline = started + duration;
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let client = Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()
            .context("building an HTTP client")?;
        let (base, token, next, sent) = (
            base.to_owned(),
            token.map(str::to_owned),
            Arc::clone(&next),
            Arc::clone(&sent),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(worker as u64);
            let mut latencies = Vec::new();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                if let Some(count) = count {
                    if sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= count {
                        break;
                    }
                }
                let (method, path, body) = next(&mut rng);
                let mut request = client.request(method, format!("{base}{path}"));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &body {
                    request = request.json(body);
                }
                let t = Instant::now();
                let response = request.send().await?;
                let status = response.status().as_u16();
                let text = response.bytes().await?;
                latencies.push(t.elapsed().as_micros() as u64);
                anyhow::ensure!(
                    status == expect,
                    "{path}: {status} {}",
                    String::from_utf8_lossy(&text)
                );
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("load worker")??);
    }
    let elapsed = started.elapsed();
    ensure!(!latencies.is_empty(), "{endpoint}: no request finished");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Measured {
        endpoint: endpoint.to_owned(),
        connections,
        requests: latencies.len(),
        elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

/// The trivial handler every endpoint is compared with: actix-web with the server's worker
/// count, answering a small JSON body.
struct Baseline {
    base: String,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Baseline {
    fn start() -> anyhow::Result<Baseline> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the baseline")?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = HttpServer::new(|| {
            App::new().route(
                "/trivial",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
        })
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(Baseline { base, handle, task })
    }

    async fn measure(&self, connections: usize, duration: Duration) -> anyhow::Result<Measured> {
        load(
            "GET /trivial (actix-web baseline)",
            Target {
                base: &self.base,
                token: None,
                connections,
            },
            duration,
            None,
            200,
            Arc::new(|_| (Method::GET, "/trivial".to_owned(), None)),
        )
        .await
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        self.task.await.context("baseline server")??;
        Ok(())
    }
}

async fn call(
    client: &Client,
    base: &str,
    token: Option<&str>,
    req: Request,
) -> anyhow::Result<Value> {
    let (method, path, body) = req;
    let mut request = client.request(method.clone(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {path}"))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{method} {path}: {status} {value}");
    Ok(value)
}

pub async fn run(
    dir: &Path,
    connections: usize,
    duration: Duration,
    users: usize,
) -> anyhow::Result<Report> {
    let options = halley::ServeOptions {
        admin_password: Some(ROOT_PASSWORD.to_owned()),
        ..halley::ServeOptions::new(dir.join("data"), "127.0.0.1:0".to_owned())
    };
    let server = halley::start(&options).await.context("starting halley")?;
    server.ready().await?;
    let base = server.url();
    let client = Client::new();

    let login = |username: &str, password: &str, tenant: Option<&str>| {
        let mut body = json!({"username": username, "password": password});
        if let Some(tenant) = tenant {
            body["tenant"] = json!(tenant);
        }
        (Method::POST, "/api/v1/auth/login".to_owned(), Some(body))
    };
    let root = call(&client, &base, None, login("admin", ROOT_PASSWORD, None)).await?;
    let root = root["access_token"]
        .as_str()
        .context("root token")?
        .to_owned();
    let tenant = call(
        &client,
        &base,
        Some(&root),
        (
            Method::POST,
            "/api/v1/tenants".to_owned(),
            Some(json!({"name": "Bench", "slug": "bench"})),
        ),
    )
    .await?;
    let tenant_id = tenant["id"].as_str().context("tenant id")?.to_owned();
    call(
        &client,
        &base,
        Some(&root),
        (
            Method::POST,
            "/api/v1/admins".to_owned(),
            Some(json!({"username": "ops", "password": PASSWORD, "tenant_id": tenant_id})),
        ),
    )
    .await?;
    let admin = call(&client, &base, None, login("ops", PASSWORD, Some("bench"))).await?;
    let admin = admin["access_token"]
        .as_str()
        .context("admin token")?
        .to_owned();

    let baseline = Baseline::start()?;
    let adjacent = || async { anyhow::Ok(baseline.measure(connections, duration).await?.rps()) };
    let mut lines = Vec::new();
    eprintln!("bench api: measuring the baseline");
    let first = baseline.measure(connections, duration).await?;
    let first_rps = first.rps();
    lines.push((first, first_rps));

    // User creations double as the seeding: one argon2id hash each.
    eprintln!("bench api: creating {users} users");
    let creations_baseline = first_rps;
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let creations = {
        let counter = Arc::clone(&counter);
        load(
            "POST /api/v1/users",
            Target {
                base: &base,
                token: Some(&admin),
                connections,
            },
            Duration::from_secs(3600),
            Some(users),
            201,
            Arc::new(move |_| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = json!({
                    "username": format!("user-{n:06}"),
                    "password": PASSWORD,
                    "account_name": format!("Bench user {n}"),
                    "emails": [format!("user-{n}@bench.example")],
                });
                (Method::POST, "/api/v1/users".to_owned(), Some(body))
            }),
        )
        .await?
    };
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=1000&cursor={c}"),
            None => "/api/v1/users?limit=1000".to_owned(),
        };
        let page = call(&client, &base, Some(&admin), (Method::GET, path, None)).await?;
        for user in page["items"].as_array().context("items")? {
            ids.push(user["id"].as_str().context("user id")?.to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ensure!(ids.len() >= users, "seeded {} users of {users}", ids.len());
    let ids = Arc::new(ids);

    eprintln!("bench api: reads");
    let by_id_baseline = adjacent().await?;
    let pick = {
        let ids = Arc::clone(&ids);
        move |rng: &mut StdRng| ids[rng.gen_range(0..ids.len())].clone()
    };
    let by_id = {
        let pick = pick.clone();
        load(
            "GET /api/v1/users/{id}",
            Target {
                base: &base,
                token: Some(&admin),
                connections,
            },
            duration,
            None,
            200,
            Arc::new(move |rng| (Method::GET, format!("/api/v1/users/{}", pick(rng)), None)),
        )
        .await?
    };
    lines.push((by_id, by_id_baseline));
    let filtered_baseline = adjacent().await?;
    // A filter matching ten users of the seeded ones (`user-00012` → user-000120..129).
    let filtered = {
        let users = users.max(10);
        load(
            "GET /api/v1/users?q=",
            Target {
                base: &base,
                token: Some(&admin),
                connections,
            },
            duration,
            None,
            200,
            Arc::new(move |rng| {
                let prefix = rng.gen_range(0..users / 10);
                (
                    Method::GET,
                    format!("/api/v1/users?q=user-{prefix:05}"),
                    None,
                )
            }),
        )
        .await?
    };
    lines.push((filtered, filtered_baseline));

    eprintln!("bench api: durable writes");
    let items_baseline = adjacent().await?;
    let items = {
        let pick = pick.clone();
        load(
            "POST /api/v1/users/{id}/protected-items",
            Target {
                base: &base,
                token: Some(&admin),
                connections,
            },
            duration,
            None,
            201,
            Arc::new(move |rng| {
                let body = json!({"name": "Documents", "engine": "files"});
                (
                    Method::POST,
                    format!("/api/v1/users/{}/protected-items", pick(rng)),
                    Some(body),
                )
            }),
        )
        .await?
    };
    lines.push((items, items_baseline));

    eprintln!("bench api: logins");
    let logins_baseline = adjacent().await?;
    let logins = load(
        "POST /api/v1/auth/login",
        Target {
            base: &base,
            token: None,
            connections,
        },
        duration,
        None,
        200,
        Arc::new(move |_| login("ops", PASSWORD, Some("bench"))),
    )
    .await?;
    lines.push((logins, logins_baseline));
    lines.push((creations, creations_baseline));
    baseline.stop().await?;
    server.shutdown().await?;
    Ok(Report { lines })
}
