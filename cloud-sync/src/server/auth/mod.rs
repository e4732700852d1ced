//! Who is calling: the extractors that authenticate a request (bootstrap token, node token,
//! access token, session cookie), access tokens and passwords, and the identity endpoints
//! (login, refresh, logout, browser sessions).

pub(crate) mod extract;
pub(crate) mod identity;
pub(crate) mod passwords;
pub mod session_store;
pub(crate) mod sessions;
pub(crate) mod tokens;
