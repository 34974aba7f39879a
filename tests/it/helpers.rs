//! Starting and stopping a real server for a test.

use std::path::Path;

use halley::{RunningServer, ServeOptions};
use tempfile::TempDir;

/// A running server with its own data directory, and an HTTP client for it.
pub struct TestServer {
    pub server: RunningServer,
    pub client: reqwest::Client,
    /// Kept so the directory outlives the server; removed when the test drops it.
    pub data_dir: TempDir,
}

impl TestServer {
    /// Starts a server on a fresh data directory and waits until it is ready.
    pub async fn start() -> TestServer {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        TestServer::start_in(data_dir).await
    }

    /// Starts a server on an existing data directory and waits until it is ready.
    pub async fn start_in(data_dir: TempDir) -> TestServer {
        let server = halley::start(&options(data_dir.path()))
            .await
            .expect("server starts");
        server.ready().await.expect("server becomes ready");
        TestServer {
            server,
            client: reqwest::Client::new(),
            data_dir,
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

fn options(data_dir: &Path) -> ServeOptions {
    ServeOptions {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".to_owned(),
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
