//! Why a change happened: who asked the kernel for it (`changed_by`) and,
//! for a reconcile, why the agent re-read the tables (`reason`). One cause
//! is shared by every change it caused and encoded once: a change refers
//! to it by id (`Change.cause`), and a response defines each cause its
//! changes refer to once (`SubscribeResponse.causes`), so that a run of
//! changes from one requester costs a few bytes each, not its whole
//! command line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use routewatch_proto::batch::cause_record;
use routewatch_proto::v1 as api;

/// Most reasons one reconcile names: the latest, after "…" when earlier
/// ones were left out.
pub const REASONS_MAX: usize = 4;

/// The field number of `Change.cause`.
const CHANGE_CAUSE: u32 = 9;

/// The `changed_by` and `reason` of changes, with its id and encodings.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub changed_by: Option<api::ChangedBy>,
    pub reason: String,
    /// Unique in this run of the agent, never 0.
    id: u64,
    /// Field 9 of `Change` (this cause's id), appended to a change's record.
    reference: Bytes,
    /// This cause as a field-3 record of a `SubscribeResponse`.
    record: Bytes,
}

impl Cause {
    pub fn new(changed_by: Option<api::ChangedBy>, reason: String) -> Arc<Cause> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut reference = BytesMut::new();
        prost::encoding::uint64::encode(CHANGE_CAUSE, &id, &mut reference);
        let record = cause_record(&api::Cause {
            id,
            changed_by: changed_by.clone(),
            reason: reason.clone(),
        });
        Arc::new(Cause {
            changed_by,
            reason,
            id,
            reference: reference.freeze(),
            record,
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

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The change's field that refers to this cause, to be appended after
    /// its other fields.
    pub fn reference(&self) -> &[u8] {
        &self.reference
    }

    /// The definition a response carries for its changes that refer to
    /// this cause.
    pub fn record(&self) -> &Bytes {
        &self.record
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
    fn a_change_that_refers_to_its_cause_decodes_with_it() {
        use prost::Message;
        use routewatch_proto::v1::{event, SubscribeResponse};
        let by = api::ChangedBy {
            port_id: 4242,
            pid: 4242,
            comm: "ip".into(),
            how: api::ChangedByHow::Pid as i32,
            ..Default::default()
        };
        let cause = Cause::new(Some(by.clone()), "link v0 went down".into());
        let other = Cause::new(Some(by.clone()), "link v0 went down".into());
        assert_ne!(cause.id(), other.id(), "every cause has an id of its own");
        let back = api::Change::decode(cause.reference()).expect("decodes");
        assert_eq!(back.cause, cause.id());
        let mut change = api::Change {
            action: api::Action::Add as i32,
            ..Default::default()
        }
        .encode_to_vec();
        change.extend_from_slice(cause.reference());
        let event = api::Event {
            seq: 1,
            kind: Some(event::Kind::Change(
                api::Change::decode(&change[..]).unwrap(),
            )),
            ..Default::default()
        };
        let mut response = routewatch_proto::batch::record(&event).to_vec();
        response.extend_from_slice(cause.record());
        let events = SubscribeResponse::decode(&response[..]).unwrap().events;
        let Some(event::Kind::Change(change)) = &events[0].kind else {
            panic!("a change");
        };
        assert_eq!(change.changed_by, Some(by));
        assert_eq!(change.reason, "link v0 went down");
        assert_eq!(change.cause, 0, "filled in");
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
