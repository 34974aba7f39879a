//! What protected items and vaults share: each is owned by a user and kept in the user's
//! stream, so it is found through its user, listed from the user's rows, answers with the
//! user's `version`, and `If-Match` on it guards the whole user. [`UserOwned`] says where
//! one kind is kept; the functions here are the bodies of its handlers, whose routes and
//! documentation stay in the kind's module.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Bound;
use std::str::FromStr;

use domain::model::User;
use domain::{Command, Event, UserId};
use projections::ReadModels;
use serde::Serialize;

use super::{users, PageQuery};
use crate::auth::Scope;
use crate::extract::IfMatch;
use crate::idempotency::IdempotencyKey;
use crate::paging::PageRequest;
use crate::problem::ApiError;
use crate::reply::Reply;
use crate::state::AppState;
use crate::write::Write;

/// One kind of object a user owns; implemented by its response type.
pub(super) trait UserOwned: Serialize + Sized {
    type Id: Copy + Ord + Display + FromStr + 'static;
    type Model: 'static;
    /// For a 404: `protected item`, `vault`.
    const NAME: &'static str;
    /// The id constructor, for [`AppState::new_id`].
    const NEW_ID: fn(u64, u128) -> Self::Id;

    /// The object with its user, if both are in `scope`.
    fn lookup(
        models: &ReadModels,
        scope: projections::Scope,
        id: Self::Id,
    ) -> Option<(&User, &Self::Model)>;
    /// The user's objects of this kind, by id.
    fn of(user: &User) -> &BTreeMap<Self::Id, Self::Model>;
    fn from_model(user: &User, row: &Self::Model, models: &ReadModels) -> Self;
    /// The id of the object `event` created, if it created one.
    fn created(event: &Event) -> Option<Self::Id>;
}

/// Looks an object up in the caller's scope: another tenant's is 404, like a missing one.
pub(super) fn find<'m, O: UserOwned>(
    models: &'m ReadModels,
    scope: &Scope,
    id: O::Id,
) -> Result<(&'m User, &'m O::Model), ApiError> {
    O::lookup(models, scope.read(), id)
        .ok_or_else(|| ApiError::NotFound(format!("{} {id} not found", O::NAME)))
}

/// Answers with object `id` as the read models have it now.
pub(super) fn reply<O: UserOwned>(
    state: &AppState,
    scope: &Scope,
    id: O::Id,
    ok: fn(&O) -> Reply,
) -> Result<Reply, ApiError> {
    let models = state.read_models.read();
    let (user, row) = find::<O>(&models, scope, id)?;
    Ok(ok(&O::from_model(user, row, &models)))
}

/// A page of `user_id`'s objects, by id.
pub(super) fn list<O: UserOwned>(
    state: &AppState,
    scope: &Scope,
    user_id: UserId,
    q: PageQuery,
) -> Result<Reply, ApiError> {
    let page = PageRequest::<O::Id>::new(q.limit, q.cursor.as_deref())?;
    let models = state.read_models.read();
    let user = users::find(&models, scope, user_id)?;
    let from = page.after.map_or(Bound::Unbounded, Bound::Excluded);
    let rows: Vec<(&O::Id, &O::Model)> = O::of(user)
        .range((from, Bound::Unbounded))
        .take(page.fetch())
        .collect();
    Ok(Reply::ok(&page.page(
        rows,
        |(id, _)| **id,
        |(_, row)| O::from_model(user, row, &models),
    )))
}

/// Creates an object for a user (already found in scope) with the command `create` builds
/// from a fresh id, once per `Idempotency-Key`, and answers 201 with it.
pub(super) async fn create<O: UserOwned, C: Into<Command>>(
    state: &AppState,
    scope: &Scope,
    key: IdempotencyKey,
    create: impl FnOnce(O::Id) -> C,
) -> Result<Reply, ApiError> {
    key.run(&state.idempotency, scope, move |key| async move {
        let id = state.new_id(O::NEW_ID);
        let written = Write::new(state, scope)
            .idempotent(&key)
            .execute(create(id))
            .await?;
        // A replayed key created its object the first time, under that attempt's id.
        let id = written.events.iter().find_map(O::created).unwrap_or(id);
        reply(state, scope, id, Reply::created::<O>)
    })
    .await
}

/// Changes object `id` with the command `change` builds once the object is found, under
/// `If-Match` on its user, and answers with the changed object.
pub(super) async fn update<O: UserOwned, C: Into<Command>>(
    state: &AppState,
    scope: &Scope,
    id: O::Id,
    if_match: IfMatch,
    change: impl FnOnce() -> Result<C, ApiError>,
) -> Result<Reply, ApiError> {
    let user_id = find::<O>(&state.read_models.read(), scope, id)?.0.id;
    Write::new(state, scope)
        .if_match(if_match, user_id)
        .execute(change()?)
        .await?;
    reply(state, scope, id, Reply::ok::<O>)
}

/// Removes object `id` with `command`, once it is found in scope.
pub(super) async fn remove<O: UserOwned>(
    state: &AppState,
    scope: &Scope,
    id: O::Id,
    command: impl Into<Command>,
) -> Result<Reply, ApiError> {
    find::<O>(&state.read_models.read(), scope, id)?;
    Write::new(state, scope).execute(command).await?;
    Ok(Reply::no_content())
}
