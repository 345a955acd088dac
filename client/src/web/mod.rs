//! `routewatch web`: the store `collect` writes, as web pages.
//!
//! # Layout
//!
//! - [`args`]: the command line; [`access`]: who may connect (loopback,
//!   TLS with mutual TLS or a bearer token), refusing what would expose
//!   the pages.
//! - [`server`]: the listener, TLS handshakes and the token check, in
//!   front of the pages' router.
//! - [`pool`]: read-only connections to the store.
//! - [`page`]: a page's two forms (HTML and its JSON twin) and the
//!   parameters of its URL; [`html`]: the layout and escaping;
//!   [`assets`]: the style sheet and script.
//! - [`fleet`], [`host`], [`prefix`], [`diff`], [`live`]: one file per
//!   page, each answering through `query`'s code or its own SQL, filtered
//!   and paged by the database; [`attribution`]: who opened a version, as
//!   the pages show it.

pub mod access;
pub mod args;
pub mod assets;
pub mod attribution;
pub mod diff;
pub mod fleet;
pub mod host;
pub mod html;
pub mod live;
pub mod page;
pub mod pool;
pub mod prefix;
pub mod server;

pub use access::Access;
pub use args::Web;
pub use server::run;
