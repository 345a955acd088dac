//! Who opened a version, as the store keeps it beside the version
//! (`version_columns`: `changed_by` as `tail` prints it after `by`, the
//! process's pid, comm and pod UID, and a reconcile's reason), for a
//! page's cell and its JSON twin.

use serde_json::{json, Map, Value as Json};

use super::html::esc;
use crate::query::row::Row;
use crate::query::version::Version;
use crate::store::Value;
use crate::ClientError;

/// The columns [`Attribution::read`] reads after the version's, of the
/// `version_columns vc` that [`JOIN`] brings (NULL for versions stored
/// before attribution, and for snapshots).
pub const COLUMNS: &str = "vc.changed_by_pid, vc.changed_by_comm, vc.changed_by_pod";

/// The join of `versions v` with its readable columns.
pub const JOIN: &str =
    "LEFT JOIN version_columns vc ON vc.target_id = v.target_id AND vc.vid = v.vid";

/// Who opened a version, and why a reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// `ip[4242]`, `kernel`, `kubelet[812] pod <uid>`, `port 77 (exited)`.
    pub text: Option<String>,
    pub pid: Option<i64>,
    pub comm: Option<String>,
    pub pod: Option<String>,
    pub reason: Option<String>,
}

impl Attribution {
    /// `v`'s attribution, with the cells of [`COLUMNS`] (`rest`, from
    /// their first).
    pub fn read(v: &Version, rest: &[Value]) -> Result<Attribution, ClientError> {
        let r = Row(rest);
        Ok(Attribution {
            text: v.changed_by.clone(),
            pid: r.opt_int(0)?,
            comm: r.opt_text(1)?,
            pod: r.opt_text(2)?,
            reason: v.reason.clone(),
        })
    }

    /// A delete's attribution, from its log row's `changed_by`, pid, comm,
    /// pod and reason (`rest`, from the first).
    pub fn of_delete(rest: &[Value]) -> Result<Attribution, ClientError> {
        let r = Row(rest);
        Ok(Attribution {
            text: r.opt_text(0)?,
            pid: r.opt_int(1)?,
            comm: r.opt_text(2)?,
            pod: r.opt_text(3)?,
            reason: r.opt_text(4)?,
        })
    }

    /// The fields a line of `query history` carries (`changed_by` as
    /// text, `reason`), with the process's own: `changed_by_pid`,
    /// `changed_by_comm`, `changed_by_pod`.
    pub fn add_fields(&self, m: &mut Map<String, Json>) {
        let fields = [
            ("changed_by", self.text.clone().map(Json::from)),
            ("changed_by_pid", self.pid.map(Json::from)),
            ("changed_by_comm", self.comm.clone().map(Json::from)),
            ("changed_by_pod", self.pod.clone().map(Json::from)),
            ("reason", self.reason.clone().map(Json::from)),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                m.insert(key.into(), value);
            }
        }
    }

    /// `changed_by` as `tail -o json` spells it, as far as the store
    /// knows it: `{"kernel": true}`, or the process's pid, comm and pod
    /// UID, or the port id of a requester that had exited.
    pub fn object(&self) -> Option<Json> {
        let text = self.text.as_deref()?;
        if text == "kernel" {
            return Some(json!({ "kernel": true }));
        }
        let mut m = Map::new();
        if let Some(port) = text
            .strip_prefix("port ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
        {
            m.insert("port_id".into(), port.into());
            if text.ends_with("(exited)") {
                m.insert("how".into(), "exited".into());
            }
        }
        if let Some(pid) = self.pid {
            m.insert("pid".into(), pid.into());
        }
        if let Some(comm) = &self.comm {
            m.insert("comm".into(), comm.clone().into());
        }
        if let Some(pod) = &self.pod {
            m.insert("pod_uid".into(), pod.clone().into());
        }
        Some(Json::Object(m))
    }

    /// The cell: who (`ip[4242]`, `kernel`), then a reconcile's reason.
    pub fn cell(&self) -> String {
        let mut s = match &self.text {
            Some(by) => format!("<span class=\"by\">{}</span>", esc(by)),
            None => String::new(),
        };
        if let Some(reason) = &self.reason {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!("<span class=\"reason\">({})</span>", esc(reason)));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(text: &str) -> Attribution {
        Attribution {
            text: Some(text.into()),
            ..Attribution::default()
        }
    }

    #[test]
    fn web_changed_by_is_spelled_as_tail_spells_it() {
        assert_eq!(by("kernel").object(), Some(json!({ "kernel": true })));
        let ip = Attribution {
            pid: Some(4242),
            comm: Some("ip".into()),
            ..by("ip[4242]")
        };
        assert_eq!(ip.object(), Some(json!({ "pid": 4242, "comm": "ip" })));
        assert_eq!(
            by("port 77 (exited)").object(),
            Some(json!({ "port_id": 77, "how": "exited" }))
        );
        assert_eq!(Attribution::default().object(), None);
        let reconcile = Attribution {
            reason: Some("link v0 went down".into()),
            ..by("kernel")
        };
        assert_eq!(
            reconcile.cell(),
            "<span class=\"by\">kernel</span> <span class=\"reason\">(link v0 went down)</span>"
        );
        let mut m = Map::new();
        ip.add_fields(&mut m);
        assert_eq!(
            Json::Object(m),
            json!({ "changed_by": "ip[4242]", "changed_by_pid": 4242, "changed_by_comm": "ip" })
        );
    }
}
