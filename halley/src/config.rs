//! Configuration layering: embedded defaults, then `halley.toml`, then `HALLEY_*` variables.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The documented defaults; also the list of every accepted key.
pub const DEFAULTS_TOML: &str = include_str!("../defaults.toml");

/// The file read from the working directory, if present.
pub const CONFIG_FILE: &str = "halley.toml";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: String,
    pub log: String,
    pub log_format: LogFormat,
    /// Root admin password for a first start; empty: generate one and print it once.
    pub admin_password: String,
    #[serde(deserialize_with = "number")]
    pub access_token_ttl_secs: u64,
    #[serde(deserialize_with = "number")]
    pub body_limit_bytes: usize,
    #[serde(deserialize_with = "number")]
    pub argon2_memory_kib: u32,
    #[serde(deserialize_with = "number")]
    pub argon2_iterations: u32,
    #[serde(deserialize_with = "number")]
    pub job_abandon_grace_secs: u64,
    /// Comma-separated seconds between webhook delivery attempts.
    pub webhook_retry_schedule: String,
}

/// A number written as a TOML integer or, as environment variables always are, a string.
fn number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + TryFrom<i64>,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(i) => T::try_from(i).map_err(|_| serde::de::Error::custom("number out of range")),
        Raw::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// Loads the layered configuration as the process sees it: `halley.toml` from the current
    /// directory and the real environment.
    pub fn load() -> anyhow::Result<Config> {
        let cwd = std::env::current_dir().context("reading the working directory")?;
        Config::load_from(&cwd, |key| std::env::var(key).ok())
    }

    /// Loads the configuration with `dir` as the working directory and `env` as the
    /// environment, so tests need not touch the process's.
    pub fn load_from(dir: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let mut table: toml::Table =
            toml::from_str(DEFAULTS_TOML).context("parsing the embedded defaults")?;

        let file = dir.join(CONFIG_FILE);
        if file.exists() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let overrides: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
            for (key, value) in overrides {
                if !table.contains_key(&key) {
                    bail!("{}: unknown key `{key}`", file.display());
                }
                table.insert(key, value);
            }
        }

        // An environment value replaces a key as a string; numeric keys accept strings.
        for (key, value) in table.iter_mut() {
            if let Some(from_env) = env(&env_name(key)) {
                *value = toml::Value::String(from_env);
            }
        }

        toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")
    }
}

/// `data_dir` -> `HALLEY_DATA_DIR`.
pub fn env_name(key: &str) -> String {
    format!("HALLEY_{}", key.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = file {
            std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        }
        Config::load_from(dir.path(), |key| {
            env.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_apply_without_file_or_env() {
        let config = load(None, &[]).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.access_token_ttl_secs, 900);
        assert_eq!(config.admin_password, "");
    }

    #[test]
    fn numbers_come_from_the_file_or_the_environment() {
        let config = load(
            Some("body_limit_bytes = 1024\n"),
            &[("HALLEY_ARGON2_ITERATIONS", "3")],
        )
        .unwrap();
        assert_eq!(config.body_limit_bytes, 1024);
        assert_eq!(config.argon2_iterations, 3);
        assert!(load(None, &[("HALLEY_ACCESS_TOKEN_TTL_SECS", "soon")]).is_err());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let file = "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/halley\"\n";
        let config = load(Some(file), &[("HALLEY_DATA_DIR", "/env/dir")]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert_eq!(config.data_dir, PathBuf::from("/env/dir"));
    }

    #[test]
    fn unknown_key_in_file_is_rejected() {
        let err = load(Some("listn = \"x\"\n"), &[]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown key `listn`"),
            "{err:#}"
        );
    }

    #[test]
    fn invalid_log_format_is_rejected() {
        assert!(load(None, &[("HALLEY_LOG_FORMAT", "xml")]).is_err());
    }
}
