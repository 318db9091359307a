//! Makes every binary and test of this package find libtorch by itself.
//!
//! torch-sys reports where it linked libtorch (`DEP_TCH_LIBTORCH_LIB`); we
//! bake that folder into the rpath, and expose it to the code so that the
//! runtime can dlopen `libtorch_cuda.so` from the same place when present.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            println!("cargo:rustc-env=TUNEBOOK_LIBTORCH_LIB={lib}");
        }
        Err(_) => {
            println!("cargo:warning=torch-sys did not report its libtorch folder; run scripts/bootstrap");
            println!("cargo:rustc-env=TUNEBOOK_LIBTORCH_LIB=");
        }
    }
    let repo = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-env=TUNEBOOK_DEFAULT_CACHE={repo}/.cache");
}
