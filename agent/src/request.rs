//! Checks a subscription request once, before its session starts: a bad
//! request is INVALID_ARGUMENT naming the field, never a surprise later.

use routewatch_proto::v1::SubscribeRequest;
use tonic::Status;

/// Longest stream id a cursor may carry. The agent's own are 16 hex digits;
/// a foreign one is legitimate (it gets a resync) but is echoed in logs and
/// in the resync reason, so its length is bounded.
pub const MAX_STREAM_ID: usize = 128;

/// Largest encoded request the agent reads; real ones are a few dozen bytes.
pub const MAX_REQUEST_BYTES: usize = 16 << 10;

/// `Ok` when `request` can start a session.
#[allow(clippy::result_large_err)]
pub fn validate(request: &SubscribeRequest) -> Result<(), Status> {
    if let Some(cursor) = &request.resume_from {
        if cursor.stream_id.is_empty() && cursor.seq != 0 {
            return Err(Status::invalid_argument(format!(
                "resume_from.stream_id is empty but resume_from.seq is {}: a position is only meaningful in its stream; send both from the last event applied, or no resume_from",
                cursor.seq
            )));
        }
        if cursor.stream_id.len() > MAX_STREAM_ID {
            return Err(Status::invalid_argument(format!(
                "resume_from.stream_id is {} bytes long; stream ids have at most {MAX_STREAM_ID}",
                cursor.stream_id.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use routewatch_proto::v1::Cursor;

    fn resume(stream_id: &str, seq: u64) -> SubscribeRequest {
        SubscribeRequest {
            snapshot: true,
            follow: true,
            resume_from: Some(Cursor {
                stream_id: stream_id.into(),
                seq,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_cursor_without_its_stream_is_an_invalid_argument_naming_the_field() {
        let e = validate(&resume("", 7)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("resume_from.stream_id"), "{e}");
        let e = validate(&resume(&"a".repeat(MAX_STREAM_ID + 1), 1)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("resume_from.stream_id"), "{e}");
    }

    #[test]
    fn plain_and_resuming_requests_pass() {
        assert!(validate(&SubscribeRequest::default()).is_ok());
        assert!(validate(&resume("0123456789abcdef", 42)).is_ok());
        // Another agent's stream: valid, answered with a resync.
        assert!(validate(&resume("elsewhere", 1)).is_ok());
        assert!(validate(&resume("", 0)).is_ok());
    }
}
