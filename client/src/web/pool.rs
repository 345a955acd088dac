//! Read-only connections to the store, shared by the pages: a page takes
//! one for as long as it reads, and gives it back when done.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::{Store, StoreError, StoreUrl};

pub struct Pool {
    url: StoreUrl,
    idle: Mutex<Vec<Store>>,
    slots: Arc<Semaphore>,
}

/// A connection taken from the pool; back in it when dropped.
pub struct Conn<'a> {
    pool: &'a Pool,
    store: Option<Store>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    /// Opens one connection now (so that a bad --store fails at start),
    /// and up to `size` as pages need them.
    pub async fn open(url: StoreUrl, size: usize) -> Result<Pool, StoreError> {
        let first = Store::open_read_only(&url).await?;
        Ok(Pool {
            url,
            idle: Mutex::new(vec![first]),
            slots: Arc::new(Semaphore::new(size.max(1))),
        })
    }

    pub async fn get(&self) -> Result<Conn<'_>, StoreError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let idle = self.idle.lock().expect("pool lock").pop();
        let store = match idle {
            Some(store) if !store.is_closed() => store,
            _ => Store::open_read_only(&self.url).await?,
        };
        Ok(Conn {
            pool: self,
            store: Some(store),
            _permit: permit,
        })
    }
}

impl Deref for Conn<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.store.as_ref().expect("held until dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.store.as_mut().expect("held until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            self.pool.idle.lock().expect("pool lock").push(store);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn web_reads_sqlite_through_a_connection_that_cannot_write() {
        let path =
            std::env::temp_dir().join(format!("routewatch-web-ro-{}.db", std::process::id()));
        let url = StoreUrl::Sqlite(path.clone());
        drop(Store::open(&url).await.unwrap());
        let pool = Pool::open(url, 1).await.unwrap();
        let mut store = pool.get().await.unwrap();
        assert!(store
            .select("SELECT COUNT(*) FROM targets", &[])
            .await
            .is_ok());
        let e = store
            .select("INSERT INTO targets (name) VALUES ('x')", &[])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("readonly") || e.contains("read-only"), "{e}");
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        // A store that does not exist is not created.
        let missing = std::env::temp_dir().join("routewatch-web-no-such-store.db");
        assert!(Store::open_read_only(&StoreUrl::Sqlite(missing.clone()))
            .await
            .is_err());
        assert!(!missing.exists());
    }
}
