//! A tenant's people: the admin API, their storage with sites, face templates (sealed) and
//! shifts, the feed of changes the nodes pull, and the merge of people the nodes push.

pub(crate) mod api;
pub mod changes;
pub mod shifts;
pub mod store;
pub mod templates;
pub mod uploads;
