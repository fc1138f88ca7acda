//! Opaque cursors: compact, URL-safe, versioned, optionally signed and expiring, bound to the
//! query they were issued for.
//!
//! Token layout before base64url (no padding), integers as LEB128 varints:
//!
//! | field | bytes | |
//! |---|---|---|
//! | version | 1 | [`CURSOR_VERSION`] |
//! | flags | 1 | bit 0: signed, bit 1: expires, bit 2: encrypted (only with bit 0) |
//! | key id | 1 | only when signed: which key signed it |
//! | query fingerprint | 4 | first bytes of SHA-256(sort description, query) |
//! | synthetic IV | 16 | only when encrypted: AES-SIV's, over the fields above, the full 32-byte query digest and the plaintext of the fields below, which follow encrypted |
//! | expiry | varint | only when expiring: seconds since the Unix epoch |
//! | values | per column | nullable columns: a 0/1 byte first; int and timestamp zigzag varint, uint varint, text and bytes varint length then bytes, uuid 16 bytes |
//! | tag | 16 | only when signed and not encrypted: HMAC-SHA256 over everything above and the full 32-byte query digest, truncated |

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::sealing::SealingKey;
use crate::sort::Sort;
use crate::value::{ColumnType, Value};

/// The token format version this release writes and reads.
pub const CURSOR_VERSION: u8 = 1;

/// Bytes of HMAC-SHA256 kept in a token: 128 bits, far beyond guessing, in 22 characters.
const TAG_LEN: usize = 16;

/// Bytes of the query fingerprint stored in a token, enough to tell a wrong query apart from a
/// forged token; signed tokens bind the full digest through the tag.
const FINGERPRINT_LEN: usize = 4;

/// Signing keys shorter than this are refused: HMAC's strength is the key's.
pub const MIN_KEY_LEN: usize = 16;

/// The longest cursor, in characters, a codec writes or reads: about 3 KB of key values.
/// Decoding refuses longer input before any work; encoding a key whose cursor would be longer
/// fails with [`Error::InvalidKey`] rather than hand out a cursor no request could use.
pub const MAX_CURSOR_LEN: usize = 4096;

const FLAG_SIGNED: u8 = 1;
const FLAG_EXPIRES: u8 = 2;
const FLAG_ENCRYPTED: u8 = 4;

/// An opaque cursor token as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a token received from a client (validated only when decoded).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Encodes sort keys into cursors and decodes untrusted cursors back, for one [`Sort`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shardkit_pagination::{ColumnType, CursorCodec, Error, Sort, Value};
///
/// let sort = Sort::builder()
///     .desc("created_at", ColumnType::Timestamp)
///     .unique_asc("id", ColumnType::Uint)
///     .build()?;
/// let codec = CursorCodec::builder(sort)
///     .signing_key(2, b"the-new-secret-key-32-bytes-long")   // signs
///     .signing_key(1, b"the-old-secret-key-still-accepted")  // still verifies
///     .ttl(Duration::from_secs(3600))
///     .build()?;
///
/// let query = codec.bind(b"status=open&owner=42");
/// let key = [Value::Timestamp(1_700_000_000_000_000), Value::Uint(981)];
/// let cursor = query.encode(&key)?;
/// assert!(cursor.as_str().len() <= 64);
/// assert_eq!(query.decode(cursor.as_str())?, key);
///
/// // The same cursor with other filters, or tampered with, is refused.
/// let other = codec.bind(b"status=closed");
/// assert_eq!(other.decode(cursor.as_str()), Err(Error::WrongQuery));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct CursorCodec {
    sort: Sort,
    /// The first one signs (or encrypts).
    keys: Vec<SigningKey>,
    /// Whether new cursors are encrypted ([`CodecBuilder::encrypt`]).
    encrypt: bool,
    ttl: Option<Duration>,
}

/// A signing key, ready to use: its id, its keyed MAC, and what encrypts under it.
#[derive(Clone)]
struct SigningKey {
    id: u8,
    mac: Hmac<Sha256>,
    sealing: SealingKey,
}

impl fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("CursorCodec")
            .field("sort", &self.sort)
            .field(
                "key_ids",
                &self.keys.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .field("encrypt", &self.encrypt)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Builds a [`CursorCodec`]; see [`CursorCodec::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct CodecBuilder {
    sort: Sort,
    keys: Vec<(u8, Vec<u8>)>,
    encrypt: bool,
    ttl: Option<Duration>,
}

impl fmt::Debug for CodecBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecBuilder")
            .field("sort", &self.sort)
            .field("encrypt", &self.encrypt)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl CodecBuilder {
    /// Adds an HMAC-SHA256 signing key with an id that tokens carry. The first key added signs
    /// new tokens; every key verifies, so a key can be rotated out gradually.
    pub fn signing_key(mut self, id: u8, secret: &[u8]) -> Self {
        self.keys.push((id, secret.to_vec()));
        self
    }

    /// Encrypts new cursors as well as authenticating them, so clients cannot read the sort
    /// key values (or the expiry) they carry: AES-SIV (RFC 5297), deterministic
    /// authenticated encryption, under a key derived from the signing key with HKDF-SHA256.
    /// An encrypted cursor is as long as a signed one: SIV's 16-byte synthetic IV replaces
    /// the HMAC tag and authenticates the cursor in its place. Needs a signing key.
    ///
    /// Every codec built with the feature decodes both kinds, so a service can switch
    /// encryption on (or off) while cursors of the other kind are in use.
    ///
    /// # Examples
    ///
    /// ```
    /// use shardkit_pagination::{ColumnType, CursorCodec, Sort, Value};
    ///
    /// let sort = Sort::builder().unique_asc("email", ColumnType::Text).build()?;
    /// let codec = CursorCodec::builder(sort)
    ///     .signing_key(1, b"a-secret-key-of-32-bytes-or-more")
    ///     .encrypt()
    ///     .build()?;
    /// let query = codec.bind(b"");
    /// let key = [Value::Text("ada@example.com".into())];
    /// let cursor = query.encode(&key)?;
    /// assert_eq!(query.decode(cursor.as_str())?, key);
    /// # Ok::<(), shardkit_pagination::Error>(())
    /// ```
    #[cfg(feature = "encryption")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
    pub fn encrypt(mut self) -> Self {
        self.encrypt = true;
        self
    }

    /// Makes cursors expire this long after they are issued. Cursors issued without a lifetime
    /// (before one was set) are refused as expired, or they would never expire.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Validates the keys.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCodec`] for a key shorter than [`MIN_KEY_LEN`] bytes, a repeated id,
    /// or encryption without a key.
    pub fn build(self) -> Result<CursorCodec, Error> {
        if self.encrypt && self.keys.is_empty() {
            return Err(Error::InvalidCodec {
                reason: "encrypted cursors need a signing key".into(),
            });
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        for (i, (id, secret)) in self.keys.iter().enumerate() {
            if secret.len() < MIN_KEY_LEN {
                return Err(Error::InvalidCodec {
                    reason: format!(
                        "signing key {id} has {} bytes; use at least {MIN_KEY_LEN}",
                        secret.len()
                    ),
                });
            }
            if self.keys[..i].iter().any(|(other, _)| other == id) {
                return Err(Error::InvalidCodec {
                    reason: format!("signing key id {id} is used twice"),
                });
            }
            let mac =
                <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|_| Error::InvalidCodec {
                    reason: "unusable signing key".into(),
                })?;
            keys.push(SigningKey {
                id: *id,
                mac,
                sealing: SealingKey::derive(secret)?,
            });
        }
        Ok(CursorCodec {
            sort: self.sort,
            keys,
            encrypt: self.encrypt,
            ttl: self.ttl,
        })
    }
}

impl CursorCodec {
    /// A builder for cursors over `sort`: unsigned and never expiring until told otherwise.
    pub fn builder(sort: Sort) -> CodecBuilder {
        CodecBuilder {
            sort,
            keys: Vec::new(),
            encrypt: false,
            ttl: None,
        }
    }

    /// The sort the cursors encode.
    pub fn sort(&self) -> &Sort {
        &self.sort
    }

    /// Binds the codec to one query: `query` is a canonical description of the request's
    /// filters (for example its sorted query string). Cursors encoded through the result are
    /// accepted only by a codec bound to the same query and sort.
    pub fn bind(&self, query: &[u8]) -> BoundCodec<'_> {
        let mut hasher = Sha256::new();
        let mut description = Vec::new();
        self.sort.describe(&mut description);
        hasher.update((description.len() as u64).to_le_bytes());
        hasher.update(&description);
        hasher.update(query);
        BoundCodec {
            codec: self,
            digest: hasher.finalize().into(),
        }
    }
}

/// A [`CursorCodec`] bound to one query; encodes and decodes that query's cursors.
#[derive(Debug, Clone)]
pub struct BoundCodec<'a> {
    codec: &'a CursorCodec,
    digest: [u8; 32],
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn malformed(reason: &'static str) -> Error {
    Error::MalformedCursor { reason }
}

/// Reads fields from untrusted bytes; every read is bounds-checked.
struct Reader<'b> {
    buf: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.at).ok_or(malformed("token ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&'b [u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(malformed("token ends early"))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint overflows 64 bits"))
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl BoundCodec<'_> {
    /// The sort the cursors encode.
    pub fn sort(&self) -> &Sort {
        &self.codec.sort
    }

    /// Encodes `key`, now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if `key` does not fit the sort, or its cursor would be longer
    /// than [`MAX_CURSOR_LEN`] (long text or byte values), which no codec accepts back.
    pub fn encode(&self, key: &[Value]) -> Result<Cursor, Error> {
        // Reading the clock costs more than a tenth of an encode: only when the token expires.
        self.encode_with(key, || {
            self.codec
                .ttl
                .map(|_| SystemTime::now())
                .unwrap_or(UNIX_EPOCH)
        })
    }

    /// Encodes `key` as if the time were `now` (expiry counts from it).
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn encode_at(&self, key: &[Value], now: SystemTime) -> Result<Cursor, Error> {
        self.encode_with(key, || now)
    }

    fn encode_with(
        &self,
        key: &[Value],
        now: impl FnOnce() -> SystemTime,
    ) -> Result<Cursor, Error> {
        let codec = self.codec;
        codec.sort.check(key)?;
        let mut buf = Vec::with_capacity(48);
        let signer = codec.keys.first();
        let mut flags = 0;
        if signer.is_some() {
            flags |= FLAG_SIGNED;
        }
        if codec.ttl.is_some() {
            flags |= FLAG_EXPIRES;
        }
        if codec.encrypt {
            flags |= FLAG_ENCRYPTED;
        }
        buf.push(CURSOR_VERSION);
        buf.push(flags);
        if let Some(key) = signer {
            buf.push(key.id);
        }
        buf.extend_from_slice(&self.digest[..FINGERPRINT_LEN]);
        let header_len = buf.len();
        if let Some(ttl) = codec.ttl {
            put_varint(
                &mut buf,
                seconds(now()).saturating_add(ttl.as_secs().max(1)),
            );
        }
        for (col, v) in codec.sort.columns().iter().zip(key) {
            if col.nulls().is_some() {
                buf.push(u8::from(*v != Value::Null));
            }
            match v {
                Value::Null => {}
                Value::Int(i) | Value::Timestamp(i) => put_varint(&mut buf, zigzag(*i)),
                Value::Uint(u) => put_varint(&mut buf, *u),
                Value::Text(s) => {
                    put_varint(&mut buf, s.len() as u64);
                    buf.extend_from_slice(s.as_bytes());
                }
                Value::Bytes(b) => {
                    put_varint(&mut buf, b.len() as u64);
                    buf.extend_from_slice(b);
                }
                Value::Uuid(u) => buf.extend_from_slice(u),
            }
        }
        match signer {
            Some(key) if codec.encrypt => {
                let sealed =
                    key.sealing
                        .seal(&buf[..header_len], &self.digest, &buf[header_len..])?;
                buf.truncate(header_len);
                buf.extend_from_slice(&sealed);
            }
            Some(key) => {
                let tag = self.tag(&key.mac, &buf);
                buf.extend_from_slice(&tag);
            }
            None => {}
        }
        let token = URL_SAFE_NO_PAD.encode(&buf);
        if token.len() > MAX_CURSOR_LEN {
            return Err(Error::InvalidKey {
                reason: format!(
                    "its cursor would be {} characters, more than the {MAX_CURSOR_LEN} a cursor \
                     may have; sort by shorter values (a hash or an id of long ones)",
                    token.len()
                ),
            });
        }
        Ok(Cursor(token))
    }

    fn tag(&self, mac: &Hmac<Sha256>, body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = mac.clone();
        mac.update(body);
        mac.update(&self.digest);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Decodes an untrusted token, now. Never panics, whatever `token` holds.
    ///
    /// # Errors
    ///
    /// [`Error::MalformedCursor`], [`Error::UnsupportedVersion`], [`Error::UnsignedCursor`],
    /// [`Error::BadSignature`], [`Error::WrongQuery`] or [`Error::ExpiredCursor`], each saying
    /// what is wrong.
    pub fn decode(&self, token: &str) -> Result<Vec<Value>, Error> {
        self.decode_with(token, SystemTime::now)
    }

    /// Decodes an untrusted token as if the time were `now`.
    ///
    /// # Errors
    ///
    /// As [`decode`](Self::decode).
    pub fn decode_at(&self, token: &str, now: SystemTime) -> Result<Vec<Value>, Error> {
        self.decode_with(token, || now)
    }

    /// Decodes, reading the clock only for a token that can expire.
    fn decode_with(
        &self,
        token: &str,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<Vec<Value>, Error> {
        let codec = self.codec;
        // No token this codec encodes is longer; refuse huge inputs before any work.
        if token.len() > MAX_CURSOR_LEN {
            return Err(malformed("token is too long"));
        }
        let buf = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| malformed("not base64url"))?;
        let mut r = Reader { buf: &buf, at: 0 };
        let version = r.byte()?;
        if version != CURSOR_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let flags = r.byte()?;
        if flags & !(FLAG_SIGNED | FLAG_EXPIRES | FLAG_ENCRYPTED) != 0 {
            return Err(malformed("unknown flags"));
        }
        let encrypted = flags & FLAG_ENCRYPTED != 0;
        if encrypted && flags & FLAG_SIGNED == 0 {
            return Err(malformed("encrypted but not signed"));
        }
        let signer = if flags & FLAG_SIGNED != 0 {
            let id = r.byte()?;
            Some(
                codec
                    .keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or(Error::BadSignature)?,
            )
        } else if codec.keys.is_empty() {
            None
        } else {
            return Err(Error::UnsignedCursor);
        };
        // The fingerprint is compared before the signature only to name the mistake: a token
        // replayed with other filters says so. The tag (or the synthetic IV) still covers
        // every byte.
        if r.bytes(FINGERPRINT_LEN)? != &self.digest[..FINGERPRINT_LEN] {
            return Err(Error::WrongQuery);
        }
        let header = &buf[..r.at];
        let opened;
        let payload = match signer {
            Some(key) if encrypted => {
                opened = key.sealing.open(header, &self.digest, &buf[r.at..])?;
                opened.as_slice()
            }
            Some(key) => {
                let body_end = buf
                    .len()
                    .checked_sub(TAG_LEN)
                    .filter(|&e| e >= r.at)
                    .ok_or(malformed("token ends early"))?;
                let mut mac = key.mac.clone();
                mac.update(&buf[..body_end]);
                mac.update(&self.digest);
                // Constant-time comparison, so timing does not reveal how much of a forgery
                // was right.
                mac.verify_truncated_left(&buf[body_end..])
                    .map_err(|_| Error::BadSignature)?;
                &buf[r.at..body_end]
            }
            None => &buf[r.at..],
        };
        let mut r = Reader {
            buf: payload,
            at: 0,
        };
        if flags & FLAG_EXPIRES != 0 {
            let expires_at = r.varint()?;
            if seconds(now()) >= expires_at {
                return Err(Error::ExpiredCursor {
                    expired_at: expires_at,
                });
            }
        } else if codec.ttl.is_some() {
            // Issued before the service gave cursors a lifetime (with the same signing key):
            // it would otherwise stay valid for ever.
            return Err(Error::ExpiredCursor { expired_at: 0 });
        }
        let mut key = Vec::with_capacity(codec.sort.columns().len());
        for col in codec.sort.columns() {
            if col.nulls().is_some() {
                match r.byte()? {
                    0 => {
                        key.push(Value::Null);
                        continue;
                    }
                    1 => {}
                    _ => return Err(malformed("bad null marker")),
                }
            }
            key.push(match col.column_type() {
                ColumnType::Int => Value::Int(unzigzag(r.varint()?)),
                ColumnType::Timestamp => Value::Timestamp(unzigzag(r.varint()?)),
                ColumnType::Uint => Value::Uint(r.varint()?),
                ColumnType::Text => {
                    let len =
                        usize::try_from(r.varint()?).map_err(|_| malformed("length too large"))?;
                    let bytes = r.bytes(len)?;
                    Value::Text(
                        String::from_utf8(bytes.to_vec())
                            .map_err(|_| malformed("text is not UTF-8"))?,
                    )
                }
                ColumnType::Bytes => {
                    let len =
                        usize::try_from(r.varint()?).map_err(|_| malformed("length too large"))?;
                    Value::Bytes(r.bytes(len)?.to_vec())
                }
                ColumnType::Uuid => {
                    let mut u = [0; 16];
                    u.copy_from_slice(r.bytes(16)?);
                    Value::Uuid(u)
                }
            });
        }
        if r.at != payload.len() {
            return Err(malformed("trailing bytes"));
        }
        Ok(key)
    }
}
