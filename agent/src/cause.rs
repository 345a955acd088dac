//! Why a change happened: who asked the kernel for it (`changed_by`) and,
//! for a reconcile, why the agent re-read the tables (`reason`). One cause
//! is shared by every change it caused and encoded once, so that stamping
//! a change with it costs a reference count and a copy of its bytes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost::Message;
use routewatch_proto::v1 as api;

/// Most reasons one reconcile names: the latest, after "…" when earlier
/// ones were left out.
pub const REASONS_MAX: usize = 4;

/// The `changed_by` and `reason` fields of a `Change`, with their encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub changed_by: Option<api::ChangedBy>,
    pub reason: String,
    /// Fields 7 and 8 of `Change`, ready to append to a change's record.
    encoded: Bytes,
}

impl Cause {
    pub fn new(changed_by: Option<api::ChangedBy>, reason: String) -> Arc<Cause> {
        let carrier = api::Change {
            changed_by: changed_by.clone(),
            reason: reason.clone(),
            ..Default::default()
        };
        Arc::new(Cause {
            changed_by,
            reason,
            encoded: carrier.encode_to_vec().into(),
        })
    }

    /// A change made by the kernel itself (port id 0), shared.
    pub fn kernel() -> Arc<Cause> {
        static KERNEL: OnceLock<Arc<Cause>> = OnceLock::new();
        KERNEL
            .get_or_init(|| {
                Cause::new(
                    Some(api::ChangedBy {
                        kernel: true,
                        ..Default::default()
                    }),
                    String::new(),
                )
            })
            .clone()
    }

    /// The cause a change read back from its API form carries, if any.
    pub fn of(change: &api::Change) -> Option<Arc<Cause>> {
        (change.changed_by.is_some() || !change.reason.is_empty())
            .then(|| Cause::new(change.changed_by.clone(), change.reason.clone()))
    }

    /// The encoded fields, to be appended after a change's other fields.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// This cause and `other` together, for one re-read that both asked
    /// for: the reasons joined (the latest [`REASONS_MAX`]), the requester
    /// kept where both name the same one.
    pub fn and(self: &Arc<Cause>, other: &Cause) -> Arc<Cause> {
        let mut reasons: Vec<&str> = self
            .reason
            .split("; ")
            .filter(|r| !r.is_empty() && *r != "…")
            .collect();
        if other.reason.is_empty() || reasons.contains(&other.reason.as_str()) {
            return self.clone();
        }
        reasons.push(&other.reason);
        let dropped = self.reason.starts_with("…; ") || reasons.len() > REASONS_MAX;
        let from = reasons.len().saturating_sub(REASONS_MAX);
        let mut reason = if dropped {
            "…; ".to_owned()
        } else {
            String::new()
        };
        reason.push_str(&reasons[from..].join("; "));
        let by = (self.changed_by == other.changed_by)
            .then(|| self.changed_by.clone())
            .flatten();
        Cause::new(by, reason)
    }

    /// The same cause with `reason` (for a reconcile caused by a request).
    pub fn with_reason(&self, reason: String) -> Arc<Cause> {
        Cause::new(self.changed_by.clone(), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_fields_decode_as_a_change_s() {
        let by = api::ChangedBy {
            port_id: 4242,
            pid: 4242,
            comm: "ip".into(),
            how: api::ChangedByHow::Pid as i32,
            ..Default::default()
        };
        let cause = Cause::new(Some(by.clone()), "link v0 went down".into());
        let back = api::Change::decode(cause.encoded()).expect("decodes");
        assert_eq!(back.changed_by, Some(by));
        assert_eq!(back.reason, "link v0 went down");
        assert!(Cause::kernel().changed_by.as_ref().unwrap().kernel);
    }

    #[test]
    fn one_re_read_for_several_reasons_names_them_all() {
        let kernel = || {
            Some(api::ChangedBy {
                kernel: true,
                ..Default::default()
            })
        };
        let up = Cause::new(kernel(), "link va came up".into());
        let down = Cause::new(kernel(), "link va went down".into());
        let both = up.and(&down);
        assert_eq!(both.reason, "link va came up; link va went down");
        assert_eq!(both.changed_by, kernel());
        assert_eq!(both.and(&down).reason, both.reason, "said once");
        let by_ip = Cause::new(None, "address 10.2.0.1/24 removed".into());
        let three = both.and(&by_ip);
        assert_eq!(three.changed_by, None, "requesters differ");
        let four = three.and(&Cause::new(None, "nexthop 10 deleted".into()));
        assert_eq!(four.reason.split("; ").count(), 4);
        let five = four.and(&Cause::new(None, "link vb went down".into()));
        assert_eq!(
            five.reason,
            "…; link va went down; address 10.2.0.1/24 removed; nexthop 10 deleted; link vb went down"
        );
        let six = five.and(&Cause::new(None, "link vc deleted".into()));
        assert!(six.reason.starts_with("…; address") && six.reason.ends_with("link vc deleted"));
    }
}
