//! Compiles `proto/peer.proto` with protox (pure Rust, no `protoc` binary)
//! and generates the prost types into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/peer.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
