//! `Idempotency-Key` on POST: a retry with the same key and body gets the first answer, a
//! reuse with another body 422, a retry while the first is still running 409. Keys are
//! scoped to the caller's tenant. Answers are kept in memory (bounded); the writer is given
//! the same key, so after a restart the log still refuses a second effect and the handler
//! answers from the current state.

use std::collections::{HashMap, VecDeque};
use std::future::{ready, Future, Ready};
use std::sync::Mutex;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError};
use sha2::{Digest, Sha256};

use crate::auth::Scope;
use crate::extract::BodyDigest;
use crate::problem::{ApiError, PROBLEM_JSON};
use crate::reply::Reply;

pub const HEADER: &str = "Idempotency-Key";
const MAX_KEY_CHARS: usize = 255;
/// Answers kept; the oldest are forgotten first.
const MAX_KEPT: usize = 10_000;

/// The `Idempotency-Key` header of a request, if any. Use it through [`IdempotencyKey::run`].
pub struct IdempotencyKey {
    key: Option<String>,
    req: HttpRequest,
}

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<IdempotencyKey, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = match req.headers().get(HEADER) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_CHARS)
                .filter(|k| k.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
                .map(|k| Some(k.to_owned()))
                .ok_or_else(|| {
                    ApiError::invalid(HEADER, "must be 1 to 255 printable ASCII characters")
                }),
        };
        ready(key.map(|key| IdempotencyKey {
            key,
            req: req.clone(),
        }))
    }
}

/// The key as the writer sees it (`<tenant or root>:<method> <path>:<key>`), handed to the work inside
/// [`IdempotencyKey::run`] for [`crate::write::Write::idempotent`].
#[derive(Debug, Clone, Default)]
pub struct Idempotent(Option<String>);

impl Idempotent {
    pub fn log_key(&self) -> Option<String> {
        self.0.clone()
    }
}

impl IdempotencyKey {
    /// Runs `work` once per key: the first call runs it and keeps its answer; a retry with
    /// the same method, path and body gets that answer back.
    pub async fn run<F, Fut>(
        self,
        cache: &IdempotencyCache,
        scope: &Scope,
        work: F,
    ) -> Result<Reply, ApiError>
    where
        F: FnOnce(Idempotent) -> Fut,
        Fut: Future<Output = Result<Reply, ApiError>>,
    {
        let IdempotencyKey { key, req } = self;
        let Some(key) = key else {
            return work(Idempotent(None)).await;
        };
        // The endpoint is part of the key, so one key on two endpoints is two requests, in
        // the log as well (where, after a restart, only the key is left to compare).
        let scoped = format!("{}:{} {}:{key}", scope.owner(), req.method(), req.path());
        let fingerprint = fingerprint(&req);
        match cache.begin(&scoped, fingerprint) {
            Begin::Fresh => {}
            Begin::Done(reply) => return Ok(reply),
            Begin::InFlight => return Err(ApiError::IdempotencyInFlight),
            Begin::Mismatch => return Err(ApiError::IdempotencyMismatch),
        }
        let guard = InFlight {
            cache,
            key: &scoped,
        };
        let result = work(Idempotent(Some(scoped.clone()))).await;
        let kept = match &result {
            Ok(reply) => Some(reply.clone()),
            // Client errors are answers too; a retry of a 5xx or 429 should run again.
            Err(e) if e.status_code().is_client_error() && e.status_code() != 429 => Some(Reply {
                status: e.status_code(),
                body: Some(serde_json::to_vec(&e.problem()).expect("problems serialize")),
                content_type: PROBLEM_JSON,
            }),
            Err(_) => None,
        };
        cache.finish(&scoped, fingerprint, kept);
        std::mem::forget(guard);
        result
    }
}

/// What a retry must repeat: method, path and body.
fn fingerprint(req: &HttpRequest) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(req.method().as_str());
    hash.update(b" ");
    hash.update(req.path());
    hash.update(b"\n");
    if let Some(BodyDigest(body)) = req.extensions().get::<BodyDigest>() {
        hash.update(body);
    }
    hash.finalize().into()
}

/// Clears an in-flight mark if the request is dropped before it finishes (the client went
/// away), so a retry can run.
struct InFlight<'a> {
    cache: &'a IdempotencyCache,
    key: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.cache.abandon(self.key);
    }
}

enum Entry {
    InFlight([u8; 32]),
    Done([u8; 32], Reply),
}

enum Begin {
    Fresh,
    Done(Reply),
    InFlight,
    Mismatch,
}

/// The kept answers, by scoped key.
#[derive(Default)]
pub struct IdempotencyCache {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
}

impl IdempotencyCache {
    fn begin(&self, key: &str, fingerprint: [u8; 32]) -> Begin {
        let mut kept = self.inner.lock().expect("idempotency lock poisoned");
        match kept.entries.get(key) {
            Some(Entry::InFlight(f) | Entry::Done(f, _)) if *f != fingerprint => Begin::Mismatch,
            Some(Entry::InFlight(_)) => Begin::InFlight,
            Some(Entry::Done(_, reply)) => Begin::Done(reply.clone()),
            None => {
                kept.entries
                    .insert(key.to_owned(), Entry::InFlight(fingerprint));
                Begin::Fresh
            }
        }
    }

    fn finish(&self, key: &str, fingerprint: [u8; 32], reply: Option<Reply>) {
        let mut kept = self.inner.lock().expect("idempotency lock poisoned");
        let Some(reply) = reply else {
            kept.entries.remove(key);
            return;
        };
        kept.entries
            .insert(key.to_owned(), Entry::Done(fingerprint, reply));
        kept.order.push_back(key.to_owned());
        while kept.order.len() > MAX_KEPT {
            if let Some(old) = kept.order.pop_front() {
                kept.entries.remove(&old);
            }
        }
    }

    fn abandon(&self, key: &str) {
        let mut kept = self.inner.lock().expect("idempotency lock poisoned");
        if let Some(Entry::InFlight(_)) = kept.entries.get(key) {
            kept.entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(n: u8) -> Reply {
        Reply {
            status: actix_web::http::StatusCode::CREATED,
            body: Some(vec![n]),
            content_type: "application/json",
        }
    }

    #[test]
    fn a_key_is_fresh_then_in_flight_then_replayed() {
        let cache = IdempotencyCache::default();
        assert!(matches!(cache.begin("k", [1; 32]), Begin::Fresh));
        assert!(matches!(cache.begin("k", [1; 32]), Begin::InFlight));
        assert!(matches!(cache.begin("k", [2; 32]), Begin::Mismatch));
        cache.finish("k", [1; 32], Some(reply(7)));
        assert!(matches!(cache.begin("k", [1; 32]), Begin::Done(r) if r == reply(7)));
        assert!(matches!(cache.begin("k", [2; 32]), Begin::Mismatch));
    }

    #[test]
    fn an_abandoned_or_failed_attempt_can_run_again() {
        let cache = IdempotencyCache::default();
        assert!(matches!(cache.begin("a", [1; 32]), Begin::Fresh));
        cache.abandon("a");
        assert!(matches!(cache.begin("a", [1; 32]), Begin::Fresh));
        cache.finish("a", [1; 32], None);
        assert!(matches!(cache.begin("a", [1; 32]), Begin::Fresh));
        // Abandoning a finished key keeps its answer.
        cache.finish("a", [1; 32], Some(reply(1)));
        cache.abandon("a");
        assert!(matches!(cache.begin("a", [1; 32]), Begin::Done(_)));
    }

    #[test]
    fn kept_answers_are_bounded() {
        let cache = IdempotencyCache::default();
        for i in 0..=MAX_KEPT {
            let key = i.to_string();
            assert!(matches!(cache.begin(&key, [0; 32]), Begin::Fresh));
            cache.finish(&key, [0; 32], Some(reply(0)));
        }
        assert!(matches!(cache.begin("0", [0; 32]), Begin::Fresh));
        assert!(matches!(cache.begin("1", [0; 32]), Begin::Done(_)));
    }
}
