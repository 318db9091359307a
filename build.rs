//! Makes every binary and test of this package find libtorch by itself.
//!
//! torch-sys reports where it linked libtorch (`DEP_TCH_LIBTORCH_LIB`); we
//! bake that folder into the rpath, and expose it to the code so that the
//! runtime can dlopen `libtorch_cuda.so` from the same place when present.
//! It also compiles the C++ shims over libtorch's c10d (`src/distributed`)
//! and its autocast controls (`src/runtime`) against the headers of that
//! same libtorch.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    match std::env::var("DEP_TCH_LIBTORCH_LIB") {
        Ok(lib) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            println!("cargo:rustc-env=TUNEBOOK_LIBTORCH_LIB={lib}");
            compile_c10d_shim(std::path::Path::new(&lib));
            compile_amp_shim(std::path::Path::new(&lib));
        }
        Err(_) => {
            println!("cargo:warning=torch-sys did not report its libtorch folder; run scripts/bootstrap");
            println!("cargo:rustc-env=TUNEBOOK_LIBTORCH_LIB=");
        }
    }
    let repo = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    println!("cargo:rustc-env=TUNEBOOK_DEFAULT_CACHE={repo}/.cache");
}

/// Builds `src/distributed/c10d_shim.cpp` with the flags torch-sys uses for
/// its own wrapper, and links it before libtorch.
fn compile_c10d_shim(lib: &std::path::Path) {
    let root = lib.parent().unwrap_or(lib);
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    println!("cargo:rerun-if-changed=src/distributed/c10d_shim.cpp");
    println!("cargo:rerun-if-changed=src/distributed/gloo_decls");
    cc::Build::new()
        .cpp(true)
        .file("src/distributed/c10d_shim.cpp")
        .include("src/distributed/gloo_decls")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // The c10d headers hide the Gloo process group unless told it is built in.
        .define("USE_DISTRIBUTED", None)
        .define("USE_C10D_GLOO", None)
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("tunebook_c10d_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}

/// Builds `src/runtime/amp_shim.cpp` (libtorch's autocast controls and fused
/// unscale), `src/runtime/memory_shim.cpp` (CUDA's caching allocator),
/// `src/runtime/checkpoint_shim.cpp` (gradient checkpointing) and
/// `src/runtime/optim_shim.cpp` (fused Adam and AdamW).
fn compile_amp_shim(lib: &std::path::Path) {
    let root = lib.parent().unwrap_or(lib);
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    println!("cargo:rerun-if-changed=src/runtime/amp_shim.cpp");
    println!("cargo:rerun-if-changed=src/runtime/memory_shim.cpp");
    println!("cargo:rerun-if-changed=src/runtime/checkpoint_shim.cpp");
    println!("cargo:rerun-if-changed=src/runtime/optim_shim.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/runtime/amp_shim.cpp")
        .file("src/runtime/memory_shim.cpp")
        .file("src/runtime/checkpoint_shim.cpp")
        .file("src/runtime/optim_shim.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .warnings(false)
        .compile("tunebook_amp_shim");
}
