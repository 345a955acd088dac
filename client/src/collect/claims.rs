//! Who follows a target: a subscription asks the store's writer for its
//! target before subscribing, and follows only while the claim holds.
//!
//! With PostgreSQL several collectors share the targets; a target is
//! followed by the collector whose writer holds its advisory lock. The
//! writer answers a claim once it holds the target (at once, or when
//! another collector lets it go), with the cursor stored for it; it cancels
//! the claim when the target is lost (another collector wrote to it, or the
//! store's connection, and with it the lock, went away).

use routewatch_proto::v1::Cursor;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// What a subscription's task asks of the writer.
#[derive(Debug)]
pub enum Request {
    /// Give me the target named `name` (the address dialled).
    Claim {
        name: String,
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
}

impl Claims {
    pub fn new() -> (Claims, mpsc::UnboundedReceiver<Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Claims { tx }, rx)
    }

    /// Waits until the target is this collector's; `None` when the writer
    /// is gone (the collector is stopping).
    pub async fn claim(&self, name: &str) -> Option<Held> {
        let (reply, granted) = oneshot::channel();
        self.tx
            .send(Request::Claim {
                name: name.to_owned(),
                reply,
            })
            .ok()?;
        let granted = granted.await.ok()?;
        Some(Held {
            granted,
            name: name.to_owned(),
            tx: self.tx.clone(),
        })
    }
}

/// A held target, released when dropped.
#[derive(Debug)]
pub struct Held {
    pub granted: Granted,
    name: String,
    tx: mpsc::UnboundedSender<Request>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Release {
            name: std::mem::take(&mut self.name),
        });
    }
}
