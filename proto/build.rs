//! Generates the gRPC types from `routewatch/v1/*.proto` with protox, a pure
//! Rust protobuf compiler, so a fresh machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["routewatch/v1/routewatch.proto"];
    let fds = protox::compile(protos, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds does not write the descriptor set itself; reflection needs it.
    std::fs::write(
        out.join("routewatch_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // SubscribeResponse is hand-written (src/batch.rs) so that encoded events
    // can be shared among subscribers.
    tonic_prost_build::configure()
        .extern_path(
            ".routewatch.v1.SubscribeResponse",
            "crate::batch::SubscribeResponse",
        )
        // Rare and large: an encapsulation (264 bytes inline) and a
        // route's copy of its nexthop object live behind a pointer, so that
        // a route without them -- nearly every route of a full table --
        // costs 8 bytes for each instead.
        .boxed(".routewatch.v1.Route.encap")
        .boxed(".routewatch.v1.Route.nh_info")
        .boxed(".routewatch.v1.NextHop.encap")
        .boxed(".routewatch.v1.Nexthop.encap")
        .compile_fds(fds)?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
