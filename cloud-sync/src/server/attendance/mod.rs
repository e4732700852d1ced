//! Attendance events: the admin API (v1 with offsets, v2 with cursors) and how a list is
//! filtered, sorted and paged.

pub(crate) mod api;
pub mod query;
