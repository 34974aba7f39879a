//! The user search behind `GET /users?q=`: per partition (each owner, and everything for the
//! root scope), the searchable text of every user (username, account name, emails), ASCII
//! lowercased, kept in id order in chunks of contiguous text. A query scans a chunk's text
//! with one substring search and looks at its rows only when the chunk holds the term, so a
//! filtered list costs a pass over packed bytes instead of a visit to every user.
//!
//! It only narrows: every user that matches is a candidate (a field's lowercased text sits
//! whole in its row), but a candidate may not match (a term spanning two fields), so callers
//! decide each candidate with the real predicate.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use domain::ids::{TenantRef, UserId};
use domain::model::User;
use serde::{Deserialize, Serialize};

use super::Scope;

/// Most rows per chunk: an edit rewrites one chunk's text, a query skips a chunk in one
/// search.
const CHUNK_ROWS: usize = 64;

/// Separates fields and rows; a term containing it can only add candidates.
const SEPARATOR: char = '\0';

/// Every partition's user search.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UserSearch {
    all: Texts,
    owners: HashMap<TenantRef, Texts>,
}

impl UserSearch {
    /// Files the user `id` again after an event: out of its partition before the event (if
    /// it existed), into its partition now (if it still exists) with its current text.
    pub(crate) fn refile(&mut self, id: UserId, before: Option<TenantRef>, now: Option<&User>) {
        if let Some(owner) = before {
            self.all.remove(id);
            if let Some(texts) = self.owners.get_mut(&owner) {
                texts.remove(id);
                if texts.chunks.is_empty() {
                    self.owners.remove(&owner);
                }
            }
        }
        if let Some(user) = now {
            let text = searchable(user);
            self.all.insert(id, &text);
            self.owners
                .entry(user.tenant)
                .or_default()
                .insert(id, &text);
        }
    }

    /// The ids of `scope`'s users after `after`, in id order, that may contain `term`
    /// (ASCII case ignored).
    pub(crate) fn candidates(
        &self,
        scope: Scope,
        term: &str,
        after: Option<UserId>,
    ) -> impl Iterator<Item = UserId> + '_ {
        let texts = match scope {
            Scope::Root => Some(&self.all),
            Scope::Tenant(id) => self.owners.get(&TenantRef::Tenant(id)),
        };
        let term: Arc<str> = term.to_ascii_lowercase().into();
        texts
            .into_iter()
            .flat_map(move |texts| texts.candidates(Arc::clone(&term), after))
    }
}

/// One partition's texts: chunks keyed by their first user id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Texts {
    chunks: BTreeMap<UserId, Chunk>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Chunk {
    /// The rows' texts back to back, each ending with a separator.
    text: String,
    /// Each row's user and the end of its text, in id order.
    rows: Vec<(UserId, usize)>,
}

impl Chunk {
    fn start(&self, row: usize) -> usize {
        if row == 0 {
            0
        } else {
            self.rows[row - 1].1
        }
    }

    fn insert(&mut self, row: usize, id: UserId, text: &str) {
        let at = self.start(row);
        self.text.insert_str(at, text);
        self.rows.insert(row, (id, at + text.len()));
        for r in &mut self.rows[row + 1..] {
            r.1 += text.len();
        }
    }

    fn remove(&mut self, row: usize) {
        let (start, end) = (self.start(row), self.rows[row].1);
        self.text.replace_range(start..end, "");
        self.rows.remove(row);
        for r in &mut self.rows[row..] {
            r.1 -= end - start;
        }
    }

    /// Moves the rows from `row` on into a new chunk.
    fn split_off(&mut self, row: usize) -> Chunk {
        let at = self.start(row);
        let text = self.text.split_off(at);
        let rows = self
            .rows
            .split_off(row)
            .into_iter()
            .map(|(id, end)| (id, end - at))
            .collect();
        Chunk { text, rows }
    }
}

impl Texts {
    /// The key of the chunk `id` belongs in: the last one starting at or before it, else the
    /// first.
    fn chunk_for(&self, id: UserId) -> Option<UserId> {
        self.chunks
            .range(..=id)
            .next_back()
            .or_else(|| self.chunks.iter().next())
            .map(|(key, _)| *key)
    }

    fn insert(&mut self, id: UserId, text: &str) {
        let Some(key) = self.chunk_for(id) else {
            let mut chunk = Chunk::default();
            chunk.insert(0, id, text);
            self.chunks.insert(id, chunk);
            return;
        };
        let mut chunk = self.chunks.remove(&key).expect("found above");
        let row = chunk.rows.partition_point(|(r, _)| *r < id);
        chunk.insert(row, id, text);
        if chunk.rows.len() > CHUNK_ROWS {
            let upper = chunk.split_off(chunk.rows.len() / 2);
            self.chunks.insert(upper.rows[0].0, upper);
        }
        self.chunks.insert(chunk.rows[0].0, chunk);
    }

    fn remove(&mut self, id: UserId) {
        let Some(key) = self.chunk_for(id) else {
            return;
        };
        let mut chunk = self.chunks.remove(&key).expect("found above");
        if let Ok(row) = chunk.rows.binary_search_by_key(&id, |(r, _)| *r) {
            chunk.remove(row);
        }
        if let Some(&(first, _)) = chunk.rows.first() {
            self.chunks.insert(first, chunk);
        }
    }

    fn candidates(
        &self,
        term: Arc<str>,
        after: Option<UserId>,
    ) -> impl Iterator<Item = UserId> + '_ {
        let from = match after.and_then(|id| self.chunks.range(..=id).next_back()) {
            Some((key, _)) => Bound::Included(*key),
            None => Bound::Unbounded,
        };
        self.chunks
            .range((from, Bound::Unbounded))
            .flat_map(move |(_, chunk)| {
                // Most chunks do not hold the term at all: one search skips all their rows.
                let rows = if chunk.text.contains(&*term) {
                    chunk.rows.as_slice()
                } else {
                    &[]
                };
                let term = Arc::clone(&term);
                rows.iter()
                    .enumerate()
                    .filter_map(move |(row, &(id, end))| {
                        let past = after.is_none_or(|after| id > after);
                        (past && chunk.text[chunk.start(row)..end].contains(&*term)).then_some(id)
                    })
            })
    }
}

/// A user's searchable fields, ASCII lowercased, each followed by the separator.
fn searchable(user: &User) -> String {
    let spec = &user.spec;
    let mut text = String::new();
    for field in [&spec.username, &spec.account_name]
        .into_iter()
        .chain(&spec.emails)
    {
        text.push_str(&field.to_ascii_lowercase());
        text.push(SEPARATOR);
    }
    text
}

#[cfg(test)]
mod tests;
