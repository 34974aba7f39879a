//! The README's REST tour, run as written (with bash and curl) against a real server.

use crate::helpers::{TestServer, ROOT_PASSWORD};

const README: &str = include_str!("../../README.md");

/// The shell block between `<!-- tour:begin -->` and `<!-- tour:end -->`, with the server
/// address and root password lines pointed at `url` and the test password.
fn tour(url: &str) -> String {
    let start = README
        .find("<!-- tour:begin -->")
        .expect("tour start marker");
    let end = README.find("<!-- tour:end -->").expect("tour end marker");
    README[start..end]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.starts_with("<!--"))
        .map(|l| {
            if l.starts_with("H=") {
                format!("H={url}")
            } else if l.starts_with("ADMIN_PASSWORD=") {
                format!("ADMIN_PASSWORD='{ROOT_PASSWORD}'")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_readme_tour_runs_as_written() {
    let curl = tokio::process::Command::new("curl")
        .arg("--version")
        .output()
        .await;
    if !curl.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let app = TestServer::start().await;
    let script = tour(&app.server.url());
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The replies run together (no trailing newlines); the last one shows the tenant admin.
    let me = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<serde_json::Value>()
        .last()
        .expect("a reply")
        .expect("JSON");
    assert_eq!(me["username"], "ops");
    assert_eq!(me["permissions"]["allow_edit_email_options"], true);
    assert!(me["tenant_id"].as_str().unwrap().starts_with("ten_"));
    app.stop().await;
}
