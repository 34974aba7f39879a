//! List paging: `?limit=` (default 50, at most 1000) and an opaque `?cursor=`; responses are
//! `{items, next_cursor}`.

use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A validated `limit` and decoded `cursor`: the id of the last row of the previous page.
pub struct PageRequest<K> {
    pub limit: usize,
    pub after: Option<K>,
}

impl<K: FromStr + ToString> PageRequest<K> {
    /// Checks `limit` (1..=1000) and decodes `cursor`; each failure names its parameter.
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<PageRequest<K>, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be 1 to {MAX_LIMIT}"),
            ));
        }
        let after = cursor
            .map(|c| {
                URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor from this list"))
            })
            .transpose()?;
        Ok(PageRequest {
            limit: limit as usize,
            after,
        })
    }

    /// How many rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> usize {
        self.limit + 1
    }

    /// Turns `fetch()` rows into a page, converting each with `dto`.
    pub fn page<R, T>(
        &self,
        mut rows: Vec<R>,
        key: impl Fn(&R) -> K,
        dto: impl Fn(R) -> T,
    ) -> Page<T> {
        let next_cursor = if rows.len() > self.limit {
            rows.truncate(self.limit);
            rows.last()
                .map(|last| URL_SAFE_NO_PAD.encode(key(last).to_string()))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(dto).collect(),
            next_cursor,
        }
    }
}
