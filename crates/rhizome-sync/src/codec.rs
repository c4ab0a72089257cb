//! The layers a bundle file may be wrapped in: age encryption to recipients (outside), zstd
//! compression (inside), each detected by its magic bytes on import and decoded as a stream,
//! with bounded memory: age authenticates 64 KiB chunks before releasing them, and the zstd
//! window is capped. How much a compressed stream expands is not limited: what it costs is
//! bounded where it is spent (the import holds at most one line of bounded length per line
//! read and a byte budget of lines in flight; time is the time of reading that many plain
//! bytes), so valid data compressed thousands of times over imports whole (PROTOCOL 8.10).
//!
//! Each instance has an age X25519 identity derived from its instance key (see
//! [`instance_identity`]) and publishes the recipient in its manifests (PROTOCOL 8.12).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::str::FromStr;

use rhizome_core::SecretKey;
use sha2::{Digest, Sha256};

/// The first four bytes of every zstd frame.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The start of a binary age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/";
/// The start of an ASCII-armored age file.
pub const AGE_ARMOR: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
/// Largest zstd window accepted (2^25 = 32 MiB): the decoder holds a window of this size, so
/// it bounds the decoder's memory (a frame asking for 2^27 took 128 MiB more). zstd's levels 1
/// to 20 stay within it (level 19: 2^23); `--long` and levels 21-22 ask for more.
pub const WINDOW_LOG_MAX: u32 = 25;
/// Domain of the derivation of an instance's age identity from its instance key.
const AGE_DERIVATION: &[u8] = b"RHIZOME-AGE-X25519-V1\n";

/// How a bundle file was wrapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Layers {
    /// age-encrypted (to recipients or a passphrase).
    pub encrypted: bool,
    /// zstd-compressed.
    pub compressed: bool,
}

/// Supplies the identities that may open an encrypted bundle; called only when the bundle is
/// encrypted, with `true` when it is encrypted to a passphrase (scrypt) rather than to keys.
pub type Keys<'k> = dyn FnMut(bool) -> io::Result<Vec<Box<dyn age::Identity>>> + 'k;

/// Unwraps `input`: decrypts it if it is an age file, then decompresses it if it is zstd.
/// The file size (`_file_len`) no longer bounds anything: see the module docs.
/// The reader is `Send`, so that an import can read on its own thread.
pub fn decode<'a, R: BufRead + Send + 'a>(
    mut input: R,
    _file_len: Option<u64>,
    keys: &mut Keys<'_>,
) -> io::Result<(Box<dyn BufRead + Send + 'a>, Layers)> {
    if !is_encrypted(input.fill_buf()?) {
        return decompress(input, false);
    }
    let plain = decrypt(input, keys)?;
    decompress(BufReader::with_capacity(1 << 16, plain), true)
}

/// True when a file starting with `head` is an age file, binary or armored (whitespace may
/// come before the armor).
pub fn is_encrypted(head: &[u8]) -> bool {
    head.starts_with(AGE_MAGIC) || head.trim_ascii_start().starts_with(AGE_ARMOR)
}

/// Opens an age file (binary or armored) with the identities `keys` gives.
pub fn decrypt<'a, R: BufRead + Send + 'a>(
    mut input: R,
    keys: &mut Keys<'_>,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    // Whitespace may surround an armored file (not a binary one).
    if skip_whitespace(&mut input)? > 0 && !input.fill_buf()?.starts_with(AGE_ARMOR) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "encrypted bundle: whitespace before a binary age header",
        ));
    }
    let checked = StanzaCheck::new(age::armor::ArmoredReader::new(input));
    let decryptor = age::Decryptor::new(checked).map_err(age_error)?;
    let identities = keys(decryptor.is_scrypt())?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(age_error)?;
    Ok(Box::new(reader))
}

fn age_error(e: age::DecryptError) -> io::Error {
    use age::DecryptError as E;
    let why = match e {
        // A stanza that does not open (X25519: skipped; scrypt: its AEAD fails) is a key that
        // does not match, not damage.
        E::NoMatchingKeys | E::DecryptionFailed | E::KeyDecryptionFailed => {
            "encrypted bundle: not encrypted to this instance, or the passphrase is wrong (no matching key)".into()
        }
        E::InvalidHeader | E::UnknownFormat => {
            "encrypted bundle: its age header is damaged or of an unknown version".into()
        }
        E::InvalidMac => {
            "encrypted bundle: its header MAC does not verify (damaged or altered)".into()
        }
        E::ExcessiveWork { required, target } => format!(
            "encrypted bundle: its passphrase work factor 2^{required} is far above this machine's 2^{target}: refused"
        ),
        E::Io(e) => return e,
        #[allow(unreachable_patterns)]
        other => format!("encrypted bundle: {other}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, why)
}

fn skip_whitespace<R: BufRead>(input: &mut R) -> io::Result<usize> {
    let mut skipped = 0;
    loop {
        let buf = input.fill_buf()?;
        let n = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        if n == 0 {
            return Ok(skipped);
        }
        input.consume(n);
        skipped += n;
    }
}

/// Longest age header accepted: far beyond any number of recipients a bundle is sent to.
const MAX_HEADER: usize = 1 << 20;

/// Checks the one rule of the age header grammar that the age crate does not: every stanza
/// ends with a body line shorter than 64 characters (possibly empty). Watches the bytes the
/// decryptor reads until the header's MAC line, then gets out of the way.
struct StanzaCheck<R> {
    inner: R,
    line: Vec<u8>,
    seen: usize,
    /// In a stanza body, waiting for its final short line.
    in_body: bool,
    done: bool,
}

impl<R> StanzaCheck<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            line: Vec::new(),
            seen: 0,
            in_body: false,
            done: false,
        }
    }

    fn check_line(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let starts_stanza = line.starts_with(b"-> ");
        let is_mac = line.starts_with(b"---");
        if self.in_body && (starts_stanza || is_mac) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "encrypted bundle: its age header is damaged (a stanza lacks its final short body line)",
            ));
        }
        self.in_body = if starts_stanza {
            true
        } else {
            self.in_body && line.len() == 64
        };
        self.done = is_mac;
        Ok(())
    }
}

impl<R: Read> Read for StanzaCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut i = 0;
        while !self.done && i < n {
            let b = buf[i];
            i += 1;
            self.seen += 1;
            if self.seen > MAX_HEADER {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "encrypted bundle: its age header is over 1 MiB: refused",
                ));
            }
            if b == b'\n' {
                self.check_line()?;
            } else {
                self.line.push(b);
            }
        }
        Ok(n)
    }
}

fn decompress<'a, R: BufRead + Send + 'a>(
    mut input: R,
    encrypted: bool,
) -> io::Result<(Box<dyn BufRead + Send + 'a>, Layers)> {
    let head = input.fill_buf()?;
    if head.len() < 4 || head[..4] != ZSTD_MAGIC {
        let layers = Layers {
            encrypted,
            compressed: false,
        };
        return Ok((Box::new(input), layers));
    }
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
    decoder.window_log_max(WINDOW_LOG_MAX)?;
    let reader = BufReader::with_capacity(1 << 20, decoder);
    let layers = Layers {
        encrypted,
        compressed: true,
    };
    Ok((Box::new(reader), layers))
}

/// The age X25519 identity of an instance: its secret is SHA-256 of a domain prefix and the
/// instance key's seed, so it needs no storage of its own and is as protected as that key.
pub fn instance_identity(instance_key: &SecretKey) -> age::x25519::Identity {
    let mut h = Sha256::new();
    h.update(AGE_DERIVATION);
    h.update(instance_key.to_seed().as_slice());
    let secret: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(h.finalize().into());
    let hrp = bech32::Hrp::parse_unchecked("age-secret-key-");
    // 32 bytes are far below Bech32's length limit, and any 32 bytes are an X25519 secret
    // (clamped when used): neither step can fail.
    let text = zeroize::Zeroizing::new(
        bech32::encode::<bech32::Bech32>(hrp, secret.as_slice())
            .expect("32 bytes fit in Bech32")
            .to_uppercase(),
    );
    age::x25519::Identity::from_str(&text).expect("a Bech32 AGE-SECRET-KEY of 32 bytes")
}

/// The recipient string (`age1...`) of an instance.
pub fn instance_recipient(instance_key: &SecretKey) -> String {
    instance_identity(instance_key).to_public().to_string()
}

/// Highest scrypt work factor accepted for a passphrase-encrypted bundle: 2^20 needs 1 GiB
/// and about a second here; a file asking for more is refused before any work is done.
pub const MAX_SCRYPT_LOG_N: u8 = 20;

/// An identity that opens bundles encrypted to a passphrase.
pub fn passphrase_identity(passphrase: &str) -> Box<dyn age::Identity> {
    let mut id = age::scrypt::Identity::new(passphrase.to_owned().into());
    id.set_max_work_factor(MAX_SCRYPT_LOG_N);
    Box::new(id)
}

/// Wraps `out` so that what is written is encrypted to `recipients` (`age1...` strings); call
/// `finish` on the result when done.
pub fn encrypt<W: Write>(
    out: W,
    recipients: &[String],
) -> io::Result<age::stream::StreamWriter<W>> {
    let parsed = recipients
        .iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("age recipient {r:?}: {e}"),
                )
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    let encryptor =
        age::Encryptor::with_recipients(parsed.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    encryptor.wrap_output(out)
}

/// A zstd encoder over `out`; call `finish` on it when done. Level 3 uses a window of at
/// most 2^21 bytes, far within [`WINDOW_LOG_MAX`].
pub fn encoder<W: Write>(out: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    zstd::stream::write::Encoder::new(out, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_keys(_: bool) -> io::Result<Vec<Box<dyn age::Identity>>> {
        Ok(vec![])
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut e = encoder(Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_input_passes_through_and_zstd_is_decoded() {
        let text = b"{\"format\":\"x\"}\nline two\n".to_vec();
        let mut out = Vec::new();
        decode(&text[..], None, &mut no_keys)
            .unwrap()
            .0
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
        let z = compress(&text);
        assert_eq!(z[..4], ZSTD_MAGIC);
        let mut out = Vec::new();
        decode(&z[..], Some(z.len() as u64), &mut no_keys)
            .unwrap()
            .0
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
    }

    /// What expands thousands of times is read whole (valid data can: a bundle of repeated
    /// payloads); what bounds the cost is the reader of lines, not the decoder.
    #[test]
    fn a_stream_that_expands_thousands_of_times_is_read_whole() {
        // 200 MiB of newlines compress to a few KiB.
        let mut e = encoder(Vec::new()).unwrap();
        let chunk = vec![b'\n'; 1 << 20];
        for _ in 0..200 {
            e.write_all(&chunk).unwrap();
        }
        let z = e.finish().unwrap();
        assert!(z.len() < 1 << 20);
        let (mut r, _) = decode(&z[..], Some(z.len() as u64), &mut no_keys).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) => panic!("after {total} bytes: {e}"),
            }
        }
        assert_eq!(total, 200 << 20);
    }

    /// A frame asking for a window beyond [`WINDOW_LOG_MAX`] is refused before it is decoded;
    /// one at the limit is read (PROTOCOL 8.10).
    #[test]
    fn a_window_beyond_the_limit_is_refused() {
        let framed = |log: u32| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.long_distance_matching(true).unwrap();
            e.window_log(log).unwrap();
            e.write_all(&vec![b'a'; 1 << 16]).unwrap();
            e.finish().unwrap()
        };
        let read = |z: &[u8]| {
            let mut out = Vec::new();
            decode(z, Some(z.len() as u64), &mut no_keys)
                .and_then(|(mut r, _)| r.read_to_end(&mut out))
                .map(|_| out.len())
        };
        let over = framed(WINDOW_LOG_MAX + 1);
        let e = read(&over).unwrap_err();
        assert!(e.to_string().to_lowercase().contains("memory"), "{e}");
        // The same frame is valid zstd: a decoder allowing the window reads it.
        let mut d = zstd::stream::read::Decoder::new(&over[..]).unwrap();
        d.window_log_max(WINDOW_LOG_MAX + 1).unwrap();
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1 << 16);
        assert_eq!(read(&framed(WINDOW_LOG_MAX)).unwrap(), 1 << 16);
    }

    fn sealed_to(recipients: &[String], data: &[u8]) -> Vec<u8> {
        let mut w = encrypt(Vec::new(), recipients).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn open_with(file: &[u8], key: &SecretKey) -> io::Result<(Vec<u8>, Layers)> {
        let mut keys = |_: bool| -> io::Result<Vec<Box<dyn age::Identity>>> {
            Ok(vec![Box::new(instance_identity(key))])
        };
        let (mut r, layers) = decode(file, Some(file.len() as u64), &mut keys)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok((out, layers))
    }

    #[test]
    fn encrypted_to_one_instance_opens_there_only() {
        let (b, c) = (
            SecretKey::from_seed(&[1; 32]),
            SecretKey::from_seed(&[2; 32]),
        );
        let rb = instance_recipient(&b);
        assert!(rhizome_core::bundle::is_age_recipient(&rb), "{rb}");
        assert_eq!(rb, instance_recipient(&b), "derivation is deterministic");
        assert_ne!(rb, instance_recipient(&c));
        let text = b"{\"format\":\"x\"}\n".repeat(10_000);
        // Compressed inside, encrypted outside: both layers are found.
        let file = sealed_to(&[rb], &compress(&text));
        assert!(file.starts_with(AGE_MAGIC));
        let (out, layers) = open_with(&file, &b).unwrap();
        assert_eq!(out, text);
        assert_eq!(
            layers,
            Layers {
                encrypted: true,
                compressed: true
            }
        );
        let err = open_with(&file, &c).unwrap_err();
        assert!(
            err.to_string().contains("not encrypted to this instance"),
            "{err}"
        );
        // A damaged header (the recipient stanza altered) is refused, clearly, no panic.
        let mut damaged = file.clone();
        damaged[40] ^= 0x01;
        assert!(open_with(&damaged, &b).is_err());
        // A cut file fails while reading, after what was authenticated.
        let cut = &file[..file.len() - 100];
        assert!(open_with(cut, &b).is_err());
        assert!(encrypt(Vec::new(), &["age1nope".into()]).is_err());
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let mut z = compress(&b"hello\n".repeat(1000));
        let mid = z.len() / 2;
        z[mid] ^= 0xff;
        z.truncate(z.len() - 3);
        let mut out = Vec::new();
        let result = decode(&z[..], Some(z.len() as u64), &mut no_keys)
            .and_then(|(mut r, _)| r.read_to_end(&mut out));
        assert!(result.is_err());
    }
}
