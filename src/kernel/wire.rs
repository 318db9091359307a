//! The Jupyter wire format: identities, the `<IDS|MSG>` delimiter, an
//! HMAC-SHA256 signature, four JSON frames and optional buffers.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const DELIMITER: &[u8] = b"<IDS|MSG>";

/// How many recent signatures are remembered to refuse replays. A client
/// signs each message once, and its msg_id and date make every signature new.
const REMEMBERED_SIGNATURES: usize = 1 << 16;

/// Signatures already accepted, oldest first, so that a captured message
/// sent again is refused (as jupyter_client's `Session` does).
#[derive(Default)]
struct SeenSignatures {
    set: HashSet<Vec<u8>>,
    order: VecDeque<Vec<u8>>,
}

impl SeenSignatures {
    /// Records `signature`; false when it was seen before.
    fn first_use(&mut self, signature: &[u8]) -> bool {
        if self.set.contains(signature) {
            return false;
        }
        if self.order.len() == REMEMBERED_SIGNATURES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(signature.to_vec());
        self.order.push_back(signature.to_vec());
        true
    }
}

/// Signs and verifies messages with the connection file's key, and refuses
/// replayed ones. Clones share the memory of seen signatures.
#[derive(Clone)]
pub struct Signer {
    mac: Option<Hmac<Sha256>>,
    seen: Arc<Mutex<SeenSignatures>>,
}

impl Signer {
    /// A signer for `key`; an empty key disables signing, as the spec allows.
    pub fn new(key: &str) -> Self {
        let mac = (!key.is_empty()).then(|| Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length"));
        Self { mac, seen: Arc::default() }
    }

    /// Whether messages are signed (the key is not empty).
    pub fn is_signing(&self) -> bool {
        self.mac.is_some()
    }

    /// Records a verified signature; false for a replay. Without a key every
    /// signature is empty, so nothing is refused.
    fn first_use(&self, signature: &[u8]) -> bool {
        self.mac.is_none() || self.seen.lock().unwrap_or_else(|e| e.into_inner()).first_use(signature)
    }

    /// The hex signature of the four JSON frames.
    pub fn sign(&self, frames: &[&[u8]]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for f in frames {
                    mac.update(f);
                }
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Whether `signature` (hex) is right for the frames, compared in constant time.
    pub fn verify(&self, signature: &[u8], frames: &[&[u8]]) -> bool {
        match &self.mac {
            None => true,
            Some(mac) => {
                let Ok(sig) = hex::decode(signature) else { return false };
                let mut mac = mac.clone();
                for f in frames {
                    mac.update(f);
                }
                mac.verify_slice(&sig).is_ok()
            }
        }
    }
}

/// A message as received, with its JSON frames parsed.
#[derive(Debug, Clone)]
pub struct Message {
    /// Routing identities (ROUTER sockets).
    pub identities: Vec<Vec<u8>>,
    /// The header, exactly as sent.
    pub header: Value,
    /// The parent header.
    pub parent_header: Value,
    /// Metadata.
    pub metadata: Value,
    /// Content.
    pub content: Value,
    /// Binary buffers after the content.
    pub buffers: Vec<Vec<u8>>,
}

impl Message {
    /// The header's `msg_type`.
    pub fn msg_type(&self) -> &str {
        self.header.get("msg_type").and_then(Value::as_str).unwrap_or("")
    }

    /// The header's `msg_id`.
    pub fn msg_id(&self) -> &str {
        self.header.get("msg_id").and_then(Value::as_str).unwrap_or("")
    }
}

/// Why a multipart message was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// No `<IDS|MSG>` delimiter.
    #[error("no <IDS|MSG> delimiter")]
    NoDelimiter,
    /// Fewer than the signature and four JSON frames.
    #[error("expected a signature and 4 JSON frames after the delimiter, got {0} frames")]
    TooFewFrames(usize),
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// The signature was already used: a replayed message.
    #[error("replayed message (its signature was already used)")]
    Replayed,
    /// A JSON frame does not parse, or the header lacks msg_id/msg_type.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Parses and verifies a multipart message; a message whose signature was
/// seen before is refused as a replay.
pub fn decode(frames: Vec<Vec<u8>>, signer: &Signer) -> Result<Message, WireError> {
    let split = frames.iter().position(|f| f == DELIMITER).ok_or(WireError::NoDelimiter)?;
    let mut rest = frames.into_iter();
    let identities: Vec<Vec<u8>> = rest.by_ref().take(split).collect();
    rest.next(); // the delimiter
    let rest: Vec<Vec<u8>> = rest.collect();
    if rest.len() < 5 {
        return Err(WireError::TooFewFrames(rest.len()));
    }
    let json_frames: Vec<&[u8]> = rest[1..5].iter().map(Vec::as_slice).collect();
    if !signer.verify(&rest[0], &json_frames) {
        return Err(WireError::BadSignature);
    }
    if !signer.first_use(&rest[0]) {
        return Err(WireError::Replayed);
    }
    let parse = |i: usize, what: &'static str| -> Result<Value, WireError> {
        let v: Value = serde_json::from_slice(&rest[i]).map_err(|_| WireError::Malformed(what))?;
        if v.is_object() { Ok(v) } else { Err(WireError::Malformed(what)) }
    };
    let header = parse(1, "header")?;
    if header.get("msg_type").and_then(Value::as_str).is_none() || header.get("msg_id").and_then(Value::as_str).is_none() {
        return Err(WireError::Malformed("header (msg_id and msg_type are required)"));
    }
    Ok(Message {
        identities,
        header,
        parent_header: parse(2, "parent_header")?,
        metadata: parse(3, "metadata")?,
        content: parse(4, "content")?,
        buffers: rest[5..].to_vec(),
    })
}

/// A new header for a message this kernel sends.
pub fn new_header(msg_type: &str, session: &str) -> Value {
    json!({
        "msg_id": uuid::Uuid::new_v4().to_string(),
        "session": session,
        "username": "tunebook",
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "msg_type": msg_type,
        "version": "5.3",
    })
}

/// The frames of a message to send.
pub fn encode(identities: &[Vec<u8>], header: &Value, parent: &Value, metadata: &Value, content: &Value, signer: &Signer) -> Vec<Vec<u8>> {
    let json: Vec<Vec<u8>> = [header, parent, metadata, content].iter().map(|v| serde_json::to_vec(v).expect("JSON values serialize")).collect();
    let refs: Vec<&[u8]> = json.iter().map(Vec::as_slice).collect();
    let signature = signer.sign(&refs);
    let mut frames: Vec<Vec<u8>> = identities.to_vec();
    frames.push(DELIMITER.to_vec());
    frames.push(signature.into_bytes());
    frames.extend(json);
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(signer: &Signer) -> Vec<Vec<u8>> {
        let header = new_header("kernel_info_request", "s");
        encode(&[b"id".to_vec()], &header, &json!({}), &json!({}), &json!({}), signer)
    }

    #[test]
    fn a_signed_message_round_trips() {
        let s = Signer::new("secret");
        let m = decode(frames(&s), &s).unwrap();
        assert_eq!(m.msg_type(), "kernel_info_request");
        assert_eq!(m.identities, vec![b"id".to_vec()]);
    }

    #[test]
    fn a_wrong_key_or_tampered_frame_is_rejected() {
        let s = Signer::new("secret");
        assert_eq!(decode(frames(&s), &Signer::new("other")).unwrap_err(), WireError::BadSignature);
        let mut f = frames(&s);
        let last = f.len() - 1;
        f[last] = b"{\"x\":1}".to_vec();
        assert_eq!(decode(f, &s).unwrap_err(), WireError::BadSignature);
    }

    #[test]
    fn a_replayed_message_is_refused() {
        let s = Signer::new("secret");
        let f = frames(&s);
        assert!(decode(f.clone(), &s).is_ok());
        assert_eq!(decode(f.clone(), &s.clone()).unwrap_err(), WireError::Replayed);
        // A fresh message (new msg_id and date) still goes through.
        assert!(decode(frames(&s), &s).is_ok());
    }

    #[test]
    fn the_memory_of_signatures_is_bounded() {
        let mut seen = SeenSignatures::default();
        for i in 0..REMEMBERED_SIGNATURES + 10 {
            assert!(seen.first_use(i.to_string().as_bytes()));
        }
        assert_eq!(seen.set.len(), REMEMBERED_SIGNATURES);
        assert!(!seen.first_use(b"20"));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let s = Signer::new("k");
        assert_eq!(decode(vec![b"x".to_vec()], &s).unwrap_err(), WireError::NoDelimiter);
        assert_eq!(decode(vec![DELIMITER.to_vec(), b"sig".to_vec()], &s).unwrap_err(), WireError::TooFewFrames(1));
        let none = Signer::new("");
        let bad = vec![DELIMITER.to_vec(), vec![], b"[1]".to_vec(), b"{}".to_vec(), b"{}".to_vec(), b"{}".to_vec()];
        assert!(matches!(decode(bad, &none).unwrap_err(), WireError::Malformed(_)));
    }
}
