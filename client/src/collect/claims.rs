//! Who follows a target: a subscription asks the store's writer for its
//! target before subscribing, and follows only while the claim holds.
//!
//! With PostgreSQL several collectors share the targets; a target is
//! followed by the collector whose writer holds its advisory lock. The
//! writer answers a claim once it holds the target (at once, or when
//! another collector lets it go), with the cursor stored for it; it cancels
//! the claim when the target is lost (another collector wrote to it, or the
//! store's connection, and with it the lock, went away).
//!
//! A subscription holds one of a bounded number of connection permits
//! (what the open files limit leaves room for: see [`super::open_files`])
//! from before it asks the agent who it is (the claim is for the agent's
//! record) until it lets the target go: targets beyond them wait, neither
//! claimed nor dialled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use routewatch_proto::v1::Cursor;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The agent that answered at a target's address, as its GetInfo says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its identity, `AGENT_ID/NETNS`: the key of its record.
    pub key: String,
    /// Its host name.
    pub host: String,
    /// Its stream: one agent reached at two addresses has one, two agents
    /// claiming one identity have two.
    pub stream_id: String,
}

/// What a subscription's task asks of the writer.
#[derive(Debug)]
pub enum Request {
    /// Give me the target named `name` (the address dialled), whose agent
    /// is `agent` (`None`: an agent that reports no identity, whose record
    /// is keyed by the address).
    Claim {
        name: String,
        agent: Option<Agent>,
        reply: oneshot::Sender<Granted>,
    },
    /// The task following `name` ended: let the target go.
    Release { name: String },
}

/// A target granted to a subscription.
#[derive(Debug)]
pub struct Granted {
    /// Where the stored record stands (none: start with a snapshot).
    pub cursor: Option<Cursor>,
    /// Cancelled when the target is lost: stop following it and claim it
    /// again.
    pub lost: CancellationToken,
}

/// The subscriptions' side of the claims.
#[derive(Debug, Clone)]
pub struct Claims {
    tx: mpsc::UnboundedSender<Request>,
    connections: Arc<Semaphore>,
    /// Whether a target had to wait for a connection yet (said once).
    told: Arc<AtomicBool>,
}

impl Claims {
    /// Claims for at most `connections` targets followed at once.
    pub fn new(connections: usize) -> (Claims, mpsc::UnboundedReceiver<Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let claims = Claims {
            tx,
            connections: Arc::new(Semaphore::new(connections)),
            told: Arc::default(),
        };
        (claims, rx)
    }

    /// Waits for one of the connections the open files limit leaves room
    /// for: held from before the agent is asked who it is until the target
    /// is let go.
    pub async fn connection(&self, name: &str) -> Option<Connection> {
        let permit = match self.connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !self.told.swap(true, Ordering::Relaxed) {
                    eprintln!("routewatch collect: {name} waits for a connection to be let go: as many are open as the open files limit leaves room for (said once)");
                }
                self.connections.clone().acquire_owned().await.ok()?
            }
        };
        Some(Connection { _permit: permit })
    }

    /// Waits until the target is this collector's, on `connection`; `None`
    /// when the writer is gone (the collector is stopping).
    pub async fn claim(
        &self,
        connection: Connection,
        name: &str,
        agent: Option<Agent>,
    ) -> Option<Held> {
        let (reply, granted) = oneshot::channel();
        self.tx
            .send(Request::Claim {
                name: name.to_owned(),
                agent,
                reply,
            })
            .ok()?;
        let granted = granted.await.ok()?;
        Some(Held {
            granted,
            name: name.to_owned(),
            tx: self.tx.clone(),
            _connection: connection,
        })
    }
}

/// One of the connections the open files limit leaves room for.
#[derive(Debug)]
pub struct Connection {
    /// Given back when dropped.
    _permit: OwnedSemaphorePermit,
}

/// A held target, released when dropped.
#[derive(Debug)]
pub struct Held {
    pub granted: Granted,
    name: String,
    tx: mpsc::UnboundedSender<Request>,
    /// Given back after the release is sent.
    _connection: Connection,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Release {
            name: std::mem::take(&mut self.name),
        });
    }
}
