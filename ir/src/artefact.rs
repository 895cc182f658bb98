//! `.flowc` files: a compiled [`Program`] with everything it needs to run.
//!
//! Layout: the magic bytes `FLOWC\0\r\n` (the CR LF catches text-mode transfers), the
//! format version (u32, little-endian), the payload length (u64, little-endian), the
//! SHA-256 of the payload (32 bytes), then the payload: the program as postcard.
//! Reading checks each part in that order and says which one is wrong.

use sha2::{Digest, Sha256};

use crate::program::{IR_VERSION, Program};

/// The first bytes of every `.flowc` file.
pub const MAGIC: &[u8; 8] = b"FLOWC\0\r\n";
/// The artefact format version: the IR version it carries.
pub const FORMAT_VERSION: u32 = IR_VERSION;
const HEADER_LEN: usize = 8 + 4 + 8 + 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArtefactError {
    #[error("not a compiled Flow program (the file does not start with the `.flowc` magic bytes)")]
    NotFlowc,
    #[error(
        "compiled program has format version {found}; this build of flow reads version {expected}: compile the source again"
    )]
    Version { found: u32, expected: u32 },
    #[error("compiled program is truncated: {expected} bytes of program expected, {found} present")]
    Truncated { expected: u64, found: u64 },
    #[error("compiled program is corrupted: its content does not match its checksum")]
    Corrupt,
    #[error("compiled program cannot be decoded: {0}")]
    Unreadable(String),
    #[error("cannot encode the program: {0}")]
    Encode(String),
}

/// A program together with its `.flowc` bytes and their SHA-256: what a run store keeps
/// (the bytes, under the hash) and what an executor runs (the program), made by one
/// encoding or one decoding.
#[derive(Clone, Debug)]
pub struct Artefact {
    pub program: Program,
    /// The whole `.flowc` file.
    pub bytes: Vec<u8>,
    /// The SHA-256 of the payload, as the header carries it.
    pub hash: [u8; 32],
}

impl Artefact {
    /// Encodes `program` (postcard, hashed once).
    pub fn encode(program: Program) -> Result<Artefact, ArtefactError> {
        let bytes = encode(&program)?;
        let hash = header_hash(&bytes).ok_or_else(|| ArtefactError::Encode("no header".into()))?;
        Ok(Artefact {
            program,
            bytes,
            hash,
        })
    }

    /// Decodes a `.flowc` file, checking it as [`decode`] does, and keeps its bytes.
    pub fn decode(bytes: Vec<u8>) -> Result<Artefact, ArtefactError> {
        let (program, hash) = decode_hashed(&bytes)?;
        Ok(Artefact {
            program,
            bytes,
            hash,
        })
    }

    /// The hash as 64 lower-case hex digits (the key a run store files the program under).
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }
}

/// 32 bytes as 64 lower-case hex digits.
pub fn hex(hash: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn header_hash(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.get(20..HEADER_LEN)?.try_into().ok()
}

/// Encodes a program as a `.flowc` file.
pub fn encode(program: &Program) -> Result<Vec<u8>, ArtefactError> {
    let payload = postcard::to_stdvec(program).map_err(|e| ArtefactError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a `.flowc` file; never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Program, ArtefactError> {
    decode_hashed(bytes).map(|(program, _)| program)
}

/// Decodes a `.flowc` file and returns its checked hash with the program.
fn decode_hashed(bytes: &[u8]) -> Result<(Program, [u8; 32]), ArtefactError> {
    let magic = bytes.get(..MAGIC.len()).ok_or(ArtefactError::NotFlowc)?;
    if magic != MAGIC {
        return Err(ArtefactError::NotFlowc);
    }
    let truncated = |expected: u64| ArtefactError::Truncated {
        expected,
        found: bytes.len().saturating_sub(HEADER_LEN) as u64,
    };
    let version = bytes
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| truncated(0))?;
    if version != FORMAT_VERSION {
        return Err(ArtefactError::Version {
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let len = bytes
        .get(12..20)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| truncated(0))?;
    let hash = bytes.get(20..HEADER_LEN).ok_or_else(|| truncated(len))?;
    let payload = &bytes[HEADER_LEN.min(bytes.len())..];
    if (payload.len() as u64) < len {
        return Err(truncated(len));
    }
    if (payload.len() as u64) > len {
        return Err(ArtefactError::Corrupt);
    }
    let hash: [u8; 32] = hash.try_into().map_err(|_| truncated(len))?;
    if Sha256::digest(payload).as_slice() != hash {
        return Err(ArtefactError::Corrupt);
    }
    postcard::from_bytes(payload)
        .map(|program| (program, hash))
        .map_err(|e| ArtefactError::Unreadable(e.to_string()))
}
