//! The targets link libtorch (through tunebook); find it where
//! scripts/bootstrap links it, as the main package's binaries do.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{manifest}/../.libtorch/lib");
}
