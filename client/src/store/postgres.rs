//! The PostgreSQL backend (being written): targets shared among collectors
//! through advisory locks, binary COPY for the rows.

use super::plan::{OpenVersion, TargetRow, Write};
use super::{Outcome, Pruned, StoreError, Value};

pub struct PgStore {
    _client: tokio_postgres::Client,
}

fn unfinished() -> StoreError {
    StoreError::Open {
        store: "postgres".into(),
        problem: "the PostgreSQL backend is not finished".into(),
    }
}

impl PgStore {
    pub async fn open(_url: &str) -> Result<PgStore, StoreError> {
        Err(unfinished())
    }
    pub async fn claim(
        &mut self,
        _name: &str,
    ) -> Result<Option<(TargetRow, Vec<OpenVersion>)>, StoreError> {
        Err(unfinished())
    }
    pub async fn release(&mut self, _target_id: i64) -> Result<(), StoreError> {
        Err(unfinished())
    }
    pub async fn commit(&mut self, _writes: &[Write]) -> Result<Vec<Outcome>, StoreError> {
        Err(unfinished())
    }
    pub fn is_closed(&self) -> bool {
        self._client.is_closed()
    }
    pub async fn prune(&mut self, _before: i64) -> Result<Pruned, StoreError> {
        Err(unfinished())
    }
    pub async fn select(
        &mut self,
        _sql: &str,
        _params: &[Value],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        Err(unfinished())
    }
}
