//! The `halley` executable itself: it prints its URL, serves, stops cleanly on SIGTERM, and
//! its offline commands report through their exit codes. (The server's behaviour is tested
//! in-process by the `tests` crate; this covers what only the binary does.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn halley(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_halley"));
    // A clean working directory, so no stray halley.toml is picked up.
    cmd.current_dir(cwd).env("HALLEY_LOG", "warn");
    cmd
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    halley(cwd).args(args).output().expect("halley runs")
}

/// One HTTP/1.1 GET over a plain socket; returns the whole response.
fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_prints_its_url_and_stops_cleanly_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = halley(cwd.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "data"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("halley serve starts");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let addr = first_line
        .trim()
        .strip_prefix("halley listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first_line:?}"))
        .to_owned();

    let response = http_get(&addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");

    // The data directory it left behind verifies clean.
    let verify = run(cwd.path(), &["verify", "--data-dir", "data"]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("clean"), "{report}");

    let rebuild = run(cwd.path(), &["rebuild", "--data-dir", "data"]);
    let summary = String::from_utf8_lossy(&rebuild.stdout);
    assert!(rebuild.status.success(), "{summary}");
    assert!(summary.contains("events/s"), "{summary}");
}

#[test]
fn verify_fails_on_a_directory_without_a_log() {
    let cwd = tempfile::tempdir().unwrap();
    let verify = run(cwd.path(), &["verify", "--data-dir", "nothing-here"]);
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stderr).contains("no sled database"));
}

#[test]
fn unknown_config_key_is_an_error() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("halley.toml"), "lissten = \"x\"\n").unwrap();
    let verify = run(cwd.path(), &["verify"]);
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stderr).contains("unknown key `lissten`"));
}
