//! Given/when/then tests of `decide`, one module per command group. Every rejection rule has
//! at least one test here.

mod admins;
mod devices;
mod jobs;
mod policies;
mod properties;
mod schedules;
mod tenants;
mod users;
mod vaults;
mod webhooks;
