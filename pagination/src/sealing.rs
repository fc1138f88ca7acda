//! Encrypted cursors (feature `encryption`): AES-SIV (RFC 5297) under a key derived from a
//! signing key with HKDF-SHA256.
//!
//! SIV is deterministic authenticated encryption: it needs no nonce, so no randomness and no
//! room in the token for one. Its 16-byte synthetic IV both starts the sealed part and
//! authenticates it (with the header and the full query digest as associated data), so an
//! encrypted cursor is exactly as long as a signed one, whose HMAC tag it replaces. Being
//! deterministic, it shows only whether two cursors are the same cursor.
//!
//! Without the feature, the same names exist: nothing can be sealed, and a sealed cursor is
//! refused as one this build cannot read.

#[cfg(feature = "encryption")]
mod imp {
    use aes_siv::KeyInit as _;
    use aes_siv::siv::Aes256Siv;
    use hkdf::Hkdf;
    use sha2::Sha256;

    use crate::error::Error;

    /// HKDF's `info` for cursor encryption keys: a key derived for anything else differs.
    const INFO: &[u8] = b"shardkit-pagination cursor encryption v1";

    /// The key that encrypts cursors under one signing key.
    #[derive(Clone)]
    pub(crate) struct SealingKey(aes_siv::Key<Aes256Siv>);

    impl SealingKey {
        /// The key derived from a signing key's secret.
        pub(crate) fn derive(secret: &[u8]) -> Result<Self, Error> {
            let mut key = aes_siv::Key::<Aes256Siv>::default();
            Hkdf::<Sha256>::new(None, secret)
                .expand(INFO, &mut key)
                .map_err(|_| Error::InvalidCodec {
                    reason: "no encryption key can be derived from a signing key".into(),
                })?;
            Ok(Self(key))
        }

        /// `payload` encrypted, after its synthetic IV, which also authenticates `header`
        /// and `digest`.
        pub(crate) fn seal(
            &self,
            header: &[u8],
            digest: &[u8; 32],
            payload: &[u8],
        ) -> Result<Vec<u8>, Error> {
            Aes256Siv::new(&self.0)
                .encrypt([header, digest.as_slice()], payload)
                .map_err(|_| Error::InvalidKey {
                    reason: "its cursor could not be encrypted".into(),
                })
        }

        /// The payload of `sealed`, if it is authentic for `header` and `digest`.
        pub(crate) fn open(
            &self,
            header: &[u8],
            digest: &[u8; 32],
            sealed: &[u8],
        ) -> Result<Vec<u8>, Error> {
            Aes256Siv::new(&self.0)
                .decrypt([header, digest.as_slice()], sealed)
                .map_err(|_| Error::BadSignature)
        }
    }
}

#[cfg(not(feature = "encryption"))]
mod imp {
    use crate::error::Error;

    /// Without the `encryption` feature: nothing to hold.
    #[derive(Clone)]
    pub(crate) struct SealingKey;

    impl SealingKey {
        pub(crate) fn derive(_secret: &[u8]) -> Result<Self, Error> {
            Ok(Self)
        }

        /// Never called: only a codec built with [`CodecBuilder::encrypt`] seals, and that
        /// needs the feature.
        ///
        /// [`CodecBuilder::encrypt`]: crate::CodecBuilder
        pub(crate) fn seal(&self, _: &[u8], _: &[u8; 32], _: &[u8]) -> Result<Vec<u8>, Error> {
            Err(super::needs_feature())
        }

        pub(crate) fn open(&self, _: &[u8], _: &[u8; 32], _: &[u8]) -> Result<Vec<u8>, Error> {
            Err(super::needs_feature())
        }
    }
}

/// What a build without the `encryption` feature says of an encrypted cursor.
#[cfg(not(feature = "encryption"))]
fn needs_feature() -> crate::error::Error {
    crate::error::Error::MalformedCursor {
        reason: "the cursor is encrypted, and this build lacks the `encryption` feature",
    }
}

pub(crate) use imp::SealingKey;
