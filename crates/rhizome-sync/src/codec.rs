//! Compressed bundles: zstd on export, detected by its magic bytes on import, decoded as a
//! stream with bounded memory and a bounded expansion ratio (a zstd bomb is refused).

use std::io::{self, BufRead, BufReader, Read, Write};

/// The first four bytes of every zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Largest zstd window accepted (2^27 = 128 MiB): bounds the decoder's memory.
const WINDOW_LOG_MAX: u32 = 27;
/// Most decompressed bytes allowed per compressed byte, plus a fixed allowance. Bundles are
/// hex-heavy JSON and compress 2-4x; anything far beyond is a bomb.
const MAX_RATIO: u64 = 64;
const ALLOWANCE: u64 = 16 << 20;

/// Wraps `input` in a zstd decoder if it starts with the zstd magic, else returns it as is.
/// `compressed_len` (the file size, when known) bounds the decompressed size. The reader is
/// `Send`, so that an import can read on a thread of its own.
pub fn decode<'a, R: BufRead + Send + 'a>(
    mut input: R,
    compressed_len: Option<u64>,
) -> io::Result<Box<dyn BufRead + Send + 'a>> {
    let head = input.fill_buf()?;
    if head.len() < 4 || head[..4] != ZSTD_MAGIC {
        return Ok(Box::new(input));
    }
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
    decoder.window_log_max(WINDOW_LOG_MAX)?;
    let limit = compressed_len.map_or(u64::MAX, |n| {
        n.saturating_mul(MAX_RATIO).saturating_add(ALLOWANCE)
    });
    Ok(Box::new(BufReader::with_capacity(
        1 << 20,
        Bounded {
            inner: decoder,
            left: limit,
        },
    )))
}

/// A reader that fails once more than `left` bytes have come out of it.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("compressed bundle expands more than {MAX_RATIO} times its size: refused (a zstd bomb?)"),
            )
        })?;
        Ok(n)
    }
}

/// A zstd encoder over `out`; call `finish` on it when done.
pub fn encoder<W: Write>(out: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    zstd::stream::write::Encoder::new(out, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut e = encoder(Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_input_passes_through_and_zstd_is_decoded() {
        let text = b"{\"format\":\"x\"}\nline two\n".to_vec();
        let mut out = Vec::new();
        decode(&text[..], None)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
        let z = compress(&text);
        assert_eq!(z[..4], ZSTD_MAGIC);
        let mut out = Vec::new();
        decode(&z[..], Some(z.len() as u64))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn a_bomb_is_refused_with_a_clear_error_and_flat_memory() {
        // 200 MiB of newlines compress to a few KiB: far beyond the allowed ratio.
        let mut e = encoder(Vec::new()).unwrap();
        let chunk = vec![b'\n'; 1 << 20];
        for _ in 0..200 {
            e.write_all(&chunk).unwrap();
        }
        let z = e.finish().unwrap();
        assert!(z.len() < 1 << 20);
        let mut r = decode(&z[..], Some(z.len() as u64)).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        let err = loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("the bomb was read to the end ({total} bytes)"),
                Ok(n) => total += n as u64,
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("bomb"), "{err}");
        assert!(total <= ALLOWANCE + MAX_RATIO * z.len() as u64);
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let mut z = compress(&b"hello\n".repeat(1000));
        let mid = z.len() / 2;
        z[mid] ^= 0xff;
        z.truncate(z.len() - 3);
        let mut out = Vec::new();
        let result = decode(&z[..], Some(z.len() as u64)).and_then(|mut r| r.read_to_end(&mut out));
        assert!(result.is_err());
    }
}
