//! The Jupyter wire decoder and signer on arbitrary frames: never a panic.
//! Frames are the input split at 0xFF bytes; each input is decoded as sent
//! (the signature check rejects nearly all) and again with a correct
//! signature, so that the JSON and header checks behind it are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunebook::kernel::wire::{decode, Signer};

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new("fuzz-key");
    let frames: Vec<Vec<u8>> = data.split(|b| *b == 0xFF).map(<[u8]>::to_vec).collect();
    let _ = decode(frames.clone(), &signer);
    if let Some(at) = frames.iter().position(|f| f == b"<IDS|MSG>") {
        if frames.len() >= at + 6 {
            let json: Vec<&[u8]> = frames[at + 2..at + 6].iter().map(Vec::as_slice).collect();
            let mut signed = frames.clone();
            signed[at + 1] = signer.sign(&json).into_bytes();
            let _ = decode(signed, &signer);
        }
    }
    let _ = signer.verify(data, &[data]);
});
