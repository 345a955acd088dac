//! Who asked the kernel for a change.
//!
//! A notification the kernel sends because of a netlink request carries the
//! requesting socket's port id in `nlmsg_pid`; the kernel's own changes
//! carry 0. The port id leads to a socket inode (the namespace's netlink
//! socket table, [`sock_diag`]), the inode to the process holding it (its
//! open files, [`procfs`]), and the process's cgroup to its container and
//! pod ([`cgroup`]). [`Resolver`] does this once per socket and keeps the
//! answer while the process still holds that socket. [`Budget`] bounds the
//! time the slow paths may take.

mod budget;
pub mod cgroup;
pub mod early;
pub mod procfs;
mod resolver;
pub mod sock_diag;

pub use budget::Budget;
pub use resolver::{Resolver, ResolverStats};
pub use sock_diag::SockDiag;
