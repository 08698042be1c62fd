//! Deterministic recording file contents.
//!
//! Binary files (MP4, M4A) can be gigabytes, so they are never held in memory: byte `i`
//! is a pure function of (meeting uuid, file key, i), computed by 8-byte blocks of a
//! SplitMix64 sequence, so any range can be produced on demand and resumed downloads
//! can be checked. The first bytes carry an `ftyp` box so content sniffers see a video.
//! Text files (chat, transcript, captions) are small and built in full.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The bytes of one recording file.
#[derive(Clone, Debug)]
pub(crate) enum Content {
    /// Generated on the fly; `size` bytes.
    Binary {
        seed: u64,
        size: u64,
        header: &'static [u8],
    },
    /// Held in memory (small).
    Text(Arc<Vec<u8>>),
}

const MP4_HEADER: &[u8] = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
const M4A_HEADER: &[u8] = b"\0\0\0\x1cftypM4A \0\0\x02\0M4A isommp42";

impl Content {
    pub(crate) fn mp4(uuid: &str, key: &str, size: u64) -> Self {
        Content::Binary {
            seed: seed_of(uuid, key),
            size,
            header: MP4_HEADER,
        }
    }

    pub(crate) fn m4a(uuid: &str, key: &str, size: u64) -> Self {
        Content::Binary {
            seed: seed_of(uuid, key),
            size,
            header: M4A_HEADER,
        }
    }

    pub(crate) fn text(s: String) -> Self {
        Content::Text(Arc::new(s.into_bytes()))
    }

    /// The file's entity tag: it changes whenever the bytes do.
    pub(crate) fn etag(&self) -> String {
        match self {
            Content::Binary { seed, size, .. } => format!("\"{seed:016x}-{size:x}\""),
            Content::Text(t) => {
                let d = Sha256::digest(t.as_slice());
                format!("\"{}\"", hex::encode(&d[..8]))
            }
        }
    }

    /// Another version of the file: same size, other bytes (an edit at Zoom's side).
    pub(crate) fn changed(&self) -> Content {
        match self {
            Content::Binary { seed, size, header } => Content::Binary {
                seed: splitmix(*seed),
                size: *size,
                header,
            },
            Content::Text(t) => {
                let mut v = t.as_ref().clone();
                v.extend_from_slice(b"\n(edited)\n");
                Content::Text(Arc::new(v))
            }
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match self {
            Content::Binary { size, .. } => *size,
            Content::Text(t) => t.len() as u64,
        }
    }

    /// The bytes `start..end` (clamped to the file), at most a few MiB at a time.
    pub(crate) fn range(&self, start: u64, end: u64) -> Bytes {
        let end = end.min(self.len());
        if start >= end {
            return Bytes::new();
        }
        match self {
            Content::Text(t) => Bytes::copy_from_slice(&t[start as usize..end as usize]),
            Content::Binary { seed, header, .. } => {
                // Whole 8-byte blocks covering the range, then trim to it.
                let first = start / 8;
                let last = end.div_ceil(8);
                let mut out = vec![0u8; ((last - first) * 8) as usize];
                for (i, slot) in out.chunks_exact_mut(8).enumerate() {
                    let block = first + i as u64;
                    let word = splitmix(seed.wrapping_add(block.wrapping_mul(GOLDEN)));
                    slot.copy_from_slice(&word.to_le_bytes());
                }
                let skip = (start - first * 8) as usize;
                out.truncate(skip + (end - start) as usize);
                out.drain(..skip);
                // The header overlays the first bytes.
                let hlen = header.len() as u64;
                if start < hlen {
                    let upto = end.min(hlen);
                    out[..(upto - start) as usize]
                        .copy_from_slice(&header[start as usize..upto as usize]);
                }
                Bytes::from(out)
            }
        }
    }

    /// Hex SHA-256 of the whole file (streams through binary content).
    pub(crate) fn sha256_hex(&self) -> String {
        let mut h = Sha256::new();
        let len = self.len();
        let mut pos = 0;
        while pos < len {
            let end = (pos + CHUNK).min(len);
            h.update(self.range(pos, end));
            pos = end;
        }
        hex::encode(h.finalize())
    }
}

/// Chunk size used when streaming content.
pub(crate) const CHUNK: u64 = 256 * 1024;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_of(uuid: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(uuid.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// A chat log of a few lines.
pub(crate) fn chat_text(uuid: &str, topic: &str) -> String {
    let mut s = String::new();
    for (i, who) in ["Alice", "Bob", "Carol", "Alice"].iter().enumerate() {
        s.push_str(&format!(
            "00:0{i}:1{i}\t From  {who} to  Everyone:\n\tMessage {i} about {topic} ({uuid})\n"
        ));
    }
    s
}

/// A WebVTT transcript or caption file.
pub(crate) fn vtt_text(uuid: &str, topic: &str, captions: bool) -> String {
    let mut s = String::from("WEBVTT\n\n");
    for i in 0..6u32 {
        let who = if i % 2 == 0 { "Alice" } else { "Bob" };
        let line = if captions {
            format!("[{who}] caption line {i} for {topic}")
        } else {
            format!("{who}: transcript line {i} of {topic} ({uuid})")
        };
        s.push_str(&format!(
            "{}\n00:00:{:02}.000 --> 00:00:{:02}.500\n{line}\n\n",
            i + 1,
            i * 5,
            i * 5 + 4
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_agree_with_whole() {
        let c = Content::mp4("u==", "f1", 1000);
        let whole = c.range(0, 1000);
        assert_eq!(whole.len(), 1000);
        assert_eq!(&whole[..8], &MP4_HEADER[..8]);
        for (a, b) in [(0, 3), (5, 17), (31, 40), (999, 1000), (13, 1000)] {
            assert_eq!(c.range(a, b), whole.slice(a as usize..b as usize));
        }
        assert_ne!(
            Content::mp4("u==", "f2", 64).range(0, 64),
            c.range(0, 64),
            "different files differ"
        );
    }
}
