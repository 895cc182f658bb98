//! flow-connectors: Flow's connectors. The declarative HTTP driver that executes the
//! actions of `integration` declarations ([`driver`]), their auth (including AWS
//! Signature Version 4, [`sigv4`]), the request and answer encodings ([`request`],
//! [`response`], [`conform`], and [`shape`], the direct decoding of an answer into its
//! declared type), per-connection policies ([`policy`]), the credential
//! vault ([`vault`], [`source`]), webhook verification ([`events`]), health probes and
//! the integration catalogue ([`catalog`]).
//!
//! The runtime calls the driver through its `Connector` trait: [`install`] puts it
//! behind a `Router`, with the vault next to the run store.

pub mod catalog;
pub mod conform;
pub mod driver;
pub mod eval;
pub mod events;
pub mod health;
pub mod policy;
pub mod request;
pub mod response;
pub mod shape;
pub mod sigv4;
pub mod source;
pub mod vault;

use std::sync::Arc;

pub use driver::{Driver, DriverConfig};
pub use source::{Connections, MemoryConnections, VaultConnections};
pub use vault::{Connection, Vault, VaultError, VaultLocation};

/// The router with the declarative driver installed, reading connections from the vault
/// that goes with `store` (opened on first use).
pub fn install(
    router: flow_runtime::Router,
    store: &flow_runtime::store::Store,
) -> flow_runtime::Router {
    let source = Arc::new(VaultConnections::new(VaultLocation::of_store(store)));
    router.with_declarative(Arc::new(Driver::new(source, DriverConfig::default())))
}
