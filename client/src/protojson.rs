//! The API's messages in protobuf's canonical JSON mapping (what `-o
//! jsonpb` prints and `--allow`/`--deny` read), through the descriptors
//! compiled into routewatch-proto.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;

/// The descriptors of `routewatch/v1/*.proto`.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(routewatch_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("the compiled-in descriptors decode")
    })
}

fn descriptor(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is in the compiled-in descriptors"))
}

/// `message` (of type `name`, e.g. "routewatch.v1.Event") as proto JSON:
/// lowerCamelCase field names, enum names, 64-bit integers as strings,
/// default values left out.
pub fn to_json<M: prost::Message>(name: &str, message: &M) -> Value {
    let mut dynamic = DynamicMessage::new(descriptor(name));
    dynamic
        .transcode_from(message)
        .expect("a message transcodes to its own descriptor");
    serde_json::to_value(&dynamic).expect("proto JSON serialises")
}

/// A message of type `name` read from proto JSON (field names as in the
/// .proto file or lowerCamelCase; unknown fields are an error).
pub fn from_json<M: prost::Message + Default>(name: &str, text: &str) -> Result<M, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic =
        DynamicMessage::deserialize(descriptor(name), &mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    dynamic.transcode_to().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use routewatch_proto::v1::Filter;

    use super::*;

    #[test]
    fn filters_read_with_either_field_spelling() {
        for text in [
            r#"{"protocol":["bgp"],"gateway_within":["10.0.0.0/8"]}"#,
            r#"{"protocol":["bgp"],"gatewayWithin":["10.0.0.0/8"]}"#,
        ] {
            let f: Filter = from_json("routewatch.v1.Filter", text).unwrap();
            assert_eq!(f.protocol, vec!["bgp"]);
            assert_eq!(f.gateway_within, vec!["10.0.0.0/8"]);
        }
        let e = from_json::<Filter>("routewatch.v1.Filter", r#"{"proto":["bgp"]}"#).unwrap_err();
        assert!(e.contains("proto"), "{e}");
    }

    #[test]
    fn messages_print_in_the_canonical_mapping() {
        let f = Filter {
            gateway_within: vec!["10.0.0.0/8".into()],
            ..Default::default()
        };
        assert_eq!(
            to_json("routewatch.v1.Filter", &f).to_string(),
            r#"{"gatewayWithin":["10.0.0.0/8"]}"#
        );
    }
}
