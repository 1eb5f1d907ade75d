//! EIP-2335 keystores: the JSON file that holds one 32-byte BLS secret
//! encrypted under a password (version 4; kdf scrypt or pbkdf2 with
//! hmac-sha256, checksum sha256, cipher aes-128-ctr).
//!
//! Everything in a keystore file is untrusted: the kdf cost parameters are
//! bounded before any work is done, so a hostile file cannot make us allocate
//! gigabytes or spin for minutes. Secrets and derived keys live in
//! [`Zeroizing`] buffers and never appear in errors or `Debug` output.
//!
//! This module does not know BLS: callers compare the decrypted secret's public
//! key with [`Keystore::pubkey`] themselves.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aes::cipher::{KeyIvInit, StreamCipher};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The only keystore version EIP-2335 defines.
pub const KEYSTORE_VERSION: u32 = 4;
/// Length of the derived decryption key and of the stored secret.
const DKLEN: u32 = 32;
const SECRET_LEN: usize = 32;
const IV_LEN: usize = 16;
const SALT_LEN: usize = 32;
/// A salt longer than this is not a salt but an attempt to waste memory.
const MAX_SALT_LEN: usize = 1024;
/// Real keystores are about 1 KiB; anything past this is refused unread.
const MAX_KEYSTORE_FILE_LEN: u64 = 64 * 1024;
/// scrypt allocates `128 * r * n` bytes: allow twice the EIP's 256 MiB.
const MAX_SCRYPT_MEMORY: u64 = 512 * 1024 * 1024;
/// scrypt work is proportional to `n * r * p`: allow 4x the EIP's setting.
const MAX_SCRYPT_WORK: u64 = 4 * (1 << 18) * 8;
const MAX_SCRYPT_LOG_N: u8 = 20;
const MAX_SCRYPT_R: u32 = 32;
const MAX_SCRYPT_P: u32 = 16;
/// 16x the EIP's 2^18 iterations: a few seconds, never minutes.
const MAX_PBKDF2_C: u32 = 1 << 22;

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// Errors of reading, writing, encrypting and decrypting keystores.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The keystore file could not be read or written.
    #[error("keystore file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The keystore file is larger than any real keystore.
    #[error("keystore file {path} is {len} bytes, more than the {max} a keystore can need")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// The JSON does not have the EIP-2335 shape.
    #[error("keystore {origin} is not EIP-2335 JSON: {source}")]
    Json {
        /// File path, or "(in memory)".
        origin: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A version other than 4.
    #[error("keystore {keystore} has version {version}, only {KEYSTORE_VERSION} is supported")]
    UnsupportedVersion {
        /// Which keystore.
        keystore: String,
        /// The version found.
        version: u32,
    },
    /// A kdf, checksum or cipher function this implementation does not know.
    #[error(
        "keystore {keystore}: unsupported {module} function {function:?} (supported: {supported})"
    )]
    UnsupportedFunction {
        /// Which keystore.
        keystore: String,
        /// "kdf", "checksum", "cipher" or "prf".
        module: &'static str,
        /// The function found.
        function: String,
        /// What we accept.
        supported: &'static str,
    },
    /// A module's params do not have the expected fields.
    #[error("keystore {keystore}: bad {module} params: {source}")]
    Params {
        /// Which keystore.
        keystore: String,
        /// The module.
        module: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A kdf parameter outside what we are willing to compute.
    #[error("keystore {keystore}: {param} = {value} is not allowed: {reason}")]
    ParamOutOfBounds {
        /// Which keystore.
        keystore: String,
        /// The parameter, e.g. "scrypt n".
        param: &'static str,
        /// Its value.
        value: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A hex field that does not decode or has the wrong length.
    #[error("keystore {keystore}: field {field} {problem}")]
    BadField {
        /// Which keystore.
        keystore: String,
        /// The JSON field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The checksum does not match: the password is wrong (or the file is
    /// corrupted).
    #[error("wrong password for keystore {keystore} (checksum mismatch)")]
    WrongPassword {
        /// Which keystore: pubkey, uuid, derivation path and file.
        keystore: String,
    },
}

/// Cost setting of the key-derivation function, for [`Keystore::encrypt`];
/// also what a keystore's own kdf params parse to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt with `n = 2^log_n`.
    Scrypt {
        /// log2 of the cost parameter n.
        log_n: u8,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
    },
    /// PBKDF2 with HMAC-SHA256.
    Pbkdf2 {
        /// Iteration count.
        c: u32,
    },
}

impl Kdf {
    /// The EIP-2335 default: scrypt n = 2^18, r = 8, p = 1 (about 256 MiB and
    /// a second of CPU per keystore).
    pub const EIP2335_SCRYPT: Kdf = Kdf::Scrypt {
        log_n: 18,
        r: 8,
        p: 1,
    };

    /// A valid but cheap scrypt (n = 2^4) for tests and throwaway devnets
    /// only: it gives a password no protection.
    pub const INSECURE_FAST: Kdf = Kdf::Scrypt {
        log_n: 4,
        r: 8,
        p: 1,
    };

    fn check_bounds(&self, keystore: &str) -> Result<(), KeystoreError> {
        let out_of_bounds = |param, value, reason| KeystoreError::ParamOutOfBounds {
            keystore: keystore.to_owned(),
            param,
            value,
            reason,
        };
        match *self {
            Kdf::Scrypt { log_n, r, p } => {
                if log_n == 0 || log_n > MAX_SCRYPT_LOG_N {
                    return Err(out_of_bounds(
                        "scrypt log2(n)",
                        u64::from(log_n),
                        "n must be a power of two between 2 and 2^20",
                    ));
                }
                if r == 0 || r > MAX_SCRYPT_R {
                    return Err(out_of_bounds("scrypt r", r.into(), "r must be 1..=32"));
                }
                if p == 0 || p > MAX_SCRYPT_P {
                    return Err(out_of_bounds("scrypt p", p.into(), "p must be 1..=16"));
                }
                // Cannot overflow: n <= 2^20, r <= 2^5, p <= 2^4.
                let n = 1u64 << log_n;
                if 128 * u64::from(r) * n > MAX_SCRYPT_MEMORY {
                    return Err(out_of_bounds(
                        "scrypt n*r",
                        n * u64::from(r),
                        "scrypt would need more than 512 MiB",
                    ));
                }
                if n * u64::from(r) * u64::from(p) > MAX_SCRYPT_WORK {
                    return Err(out_of_bounds(
                        "scrypt n*r*p",
                        n * u64::from(r) * u64::from(p),
                        "more than 4x the EIP-2335 scrypt work",
                    ));
                }
            }
            Kdf::Pbkdf2 { c } => {
                if c == 0 || c > MAX_PBKDF2_C {
                    return Err(out_of_bounds("pbkdf2 c", c.into(), "c must be 1..=2^22"));
                }
            }
        }
        Ok(())
    }

    /// Derives the 32-byte decryption key; bounds must have been checked.
    fn derive_key(
        &self,
        password: &[u8],
        salt: &[u8],
        keystore: &str,
    ) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
        let mut key = Zeroizing::new([0u8; 32]);
        match *self {
            Kdf::Scrypt { log_n, r, p } => {
                let params = scrypt::Params::new(log_n, r, p, key.len()).map_err(|error| {
                    KeystoreError::BadField {
                        keystore: keystore.to_owned(),
                        field: "crypto.kdf.params",
                        problem: error.to_string(),
                    }
                })?;
                scrypt::scrypt(password, salt, &params, key.as_mut()).map_err(|error| {
                    KeystoreError::BadField {
                        keystore: keystore.to_owned(),
                        field: "crypto.kdf.params.dklen",
                        problem: error.to_string(),
                    }
                })?;
            }
            Kdf::Pbkdf2 { c } => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, c, key.as_mut()),
        }
        Ok(key)
    }

    fn to_module(self, salt: &[u8]) -> Module {
        let mut params = Map::new();
        params.insert("dklen".into(), DKLEN.into());
        let function = match self {
            Kdf::Scrypt { log_n, r, p } => {
                params.insert("n".into(), (1u64 << log_n).into());
                params.insert("r".into(), r.into());
                params.insert("p".into(), p.into());
                "scrypt"
            }
            Kdf::Pbkdf2 { c } => {
                params.insert("c".into(), c.into());
                params.insert("prf".into(), "hmac-sha256".into());
                "pbkdf2"
            }
        };
        params.insert("salt".into(), hex::encode(salt).into());
        Module {
            function: function.into(),
            params,
            message: String::new(),
        }
    }
}

/// One EIP-2335 module: a function, its params and its message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Module {
    /// "scrypt", "pbkdf2", "sha256" or "aes-128-ctr".
    pub function: String,
    /// Function-specific parameters.
    pub params: Map<String, Value>,
    /// Hex octets (no 0x): empty for the kdf, the checksum, the ciphertext.
    pub message: String,
}

/// The `crypto` object of a keystore.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeystoreCrypto {
    /// How the decryption key is derived from the password.
    pub kdf: Module,
    /// How the password is verified.
    pub checksum: Module,
    /// How the secret is encrypted.
    pub cipher: Module,
}

/// An EIP-2335 keystore, as it is stored in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Keystore {
    /// The kdf, checksum and cipher modules.
    pub crypto: KeystoreCrypto,
    /// Free text; not unique.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The BLS public key of the secret, hex without 0x.
    #[serde(default)]
    pub pubkey: String,
    /// EIP-2334 derivation path, "" when not derived.
    pub path: String,
    /// Random identifier of the keystore.
    pub uuid: Uuid,
    /// Always 4.
    pub version: u32,
    /// The file the keystore was loaded from, for error messages.
    #[serde(skip)]
    origin: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScryptParams {
    dklen: u32,
    n: u64,
    r: u32,
    p: u32,
    salt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pbkdf2Params {
    dklen: u32,
    c: u32,
    prf: String,
    salt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherParams {
    iv: String,
}

impl Keystore {
    /// Encrypts `secret` under `password` with a fresh random salt, IV and
    /// UUID. `pubkey_hex` is the secret's public key (with or without 0x).
    pub fn encrypt(
        secret: &[u8; 32],
        password: &str,
        pubkey_hex: &str,
        path: &str,
        kdf: Kdf,
    ) -> Result<Keystore, KeystoreError> {
        let pubkey = pubkey_hex.strip_prefix("0x").unwrap_or(pubkey_hex);
        kdf.check_bounds(pubkey)?;
        let mut salt = [0u8; SALT_LEN];
        let mut iv = [0u8; IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let password = normalize_password(password);
        let key = kdf.derive_key(password.as_bytes(), &salt, pubkey)?;
        let mut ciphertext = Zeroizing::new(*secret);
        apply_aes_128_ctr(&key, &iv, ciphertext.as_mut());
        let mut iv_params = Map::new();
        iv_params.insert("iv".into(), hex::encode(iv).into());
        Ok(Keystore {
            crypto: KeystoreCrypto {
                kdf: kdf.to_module(&salt),
                checksum: Module {
                    function: "sha256".into(),
                    params: Map::new(),
                    message: hex::encode(checksum(&key, ciphertext.as_ref())),
                },
                cipher: Module {
                    function: "aes-128-ctr".into(),
                    params: iv_params,
                    message: hex::encode(ciphertext.as_ref()),
                },
            },
            description: String::new(),
            pubkey: pubkey.to_lowercase(),
            path: path.into(),
            uuid: Uuid::new_v4(),
            version: KEYSTORE_VERSION,
            origin: None,
        })
    }

    /// Decrypts the 32-byte secret. A wrong password is
    /// [`KeystoreError::WrongPassword`]; hostile kdf parameters are refused
    /// before any key derivation.
    pub fn decrypt(&self, password: &str) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
        let (kdf, salt) = self.kdf()?;
        let (iv, ciphertext) = self.cipher()?;
        let expected_checksum = self.checksum()?;
        let password = normalize_password(password);
        let key = kdf.derive_key(password.as_bytes(), &salt, &self.describe())?;
        if expected_checksum != checksum(&key, &ciphertext) {
            return Err(KeystoreError::WrongPassword {
                keystore: self.describe(),
            });
        }
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        secret.copy_from_slice(&ciphertext);
        apply_aes_128_ctr(&key, &iv, secret.as_mut());
        Ok(secret)
    }

    /// Parses and checks a keystore (version, functions, parameter bounds,
    /// field lengths) without decrypting it.
    pub fn from_json(json: &str) -> Result<Keystore, KeystoreError> {
        Self::parse(json, None)
    }

    /// The keystore as pretty JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings, maps and integers always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads and checks a keystore file (see [`Keystore::from_json`]).
    pub fn load(path: &Path) -> Result<Keystore, KeystoreError> {
        let json = read_bounded(path, MAX_KEYSTORE_FILE_LEN).map_err(|error| match error {
            ReadError::Io(source) => KeystoreError::Io {
                path: path.to_owned(),
                source,
            },
            ReadError::TooLarge(len) => KeystoreError::FileTooLarge {
                path: path.to_owned(),
                len,
                max: MAX_KEYSTORE_FILE_LEN,
            },
        })?;
        Self::parse(&json, Some(path))
    }

    /// Writes the keystore to `path`, readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeystoreError> {
        write_private_file(path, self.to_json().as_bytes()).map_err(|source| KeystoreError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Names the keystore for messages: pubkey, uuid, derivation path and,
    /// when loaded from disk, the file.
    pub fn describe(&self) -> String {
        let mut name = format!(
            "pubkey 0x{} uuid {} path {:?}",
            self.pubkey, self.uuid, self.path
        );
        if let Some(origin) = &self.origin {
            name.push_str(&format!(" file {}", origin.display()));
        }
        name
    }

    fn parse(json: &str, origin: Option<&Path>) -> Result<Keystore, KeystoreError> {
        let mut keystore: Keystore =
            serde_json::from_str(json).map_err(|source| KeystoreError::Json {
                origin: origin.map_or("(in memory)".into(), |path| path.display().to_string()),
                source,
            })?;
        keystore.origin = origin.map(Path::to_owned);
        if keystore.version != KEYSTORE_VERSION {
            return Err(KeystoreError::UnsupportedVersion {
                keystore: keystore.describe(),
                version: keystore.version,
            });
        }
        keystore.kdf()?;
        keystore.cipher()?;
        keystore.checksum()?;
        Ok(keystore)
    }

    fn kdf(&self) -> Result<(Kdf, Vec<u8>), KeystoreError> {
        let module = &self.crypto.kdf;
        let (kdf, dklen, salt) = match module.function.as_str() {
            "scrypt" => {
                let params: ScryptParams = self.params("kdf", module)?;
                let log_n =
                    scrypt_log_n(params.n).ok_or_else(|| KeystoreError::ParamOutOfBounds {
                        keystore: self.describe(),
                        param: "scrypt n",
                        value: params.n,
                        reason: "n must be a power of two between 2 and 2^20",
                    })?;
                let kdf = Kdf::Scrypt {
                    log_n,
                    r: params.r,
                    p: params.p,
                };
                (kdf, params.dklen, params.salt)
            }
            "pbkdf2" => {
                let params: Pbkdf2Params = self.params("kdf", module)?;
                if params.prf != "hmac-sha256" {
                    return Err(KeystoreError::UnsupportedFunction {
                        keystore: self.describe(),
                        module: "prf",
                        function: params.prf,
                        supported: "hmac-sha256",
                    });
                }
                (Kdf::Pbkdf2 { c: params.c }, params.dklen, params.salt)
            }
            other => {
                return Err(KeystoreError::UnsupportedFunction {
                    keystore: self.describe(),
                    module: "kdf",
                    function: other.into(),
                    supported: "scrypt, pbkdf2",
                })
            }
        };
        if dklen != DKLEN {
            return Err(KeystoreError::ParamOutOfBounds {
                keystore: self.describe(),
                param: "kdf dklen",
                value: dklen.into(),
                reason: "the decryption key must be 32 bytes",
            });
        }
        kdf.check_bounds(&self.describe())?;
        let salt = self.decode_hex("crypto.kdf.params.salt", &salt, 1..=MAX_SALT_LEN)?;
        Ok((kdf, salt))
    }

    fn cipher(&self) -> Result<([u8; IV_LEN], Vec<u8>), KeystoreError> {
        let module = &self.crypto.cipher;
        self.expect_function("cipher", module, "aes-128-ctr")?;
        let params: CipherParams = self.params("cipher", module)?;
        let iv = self.decode_hex("crypto.cipher.params.iv", &params.iv, IV_LEN..=IV_LEN)?;
        let ciphertext = self.decode_hex(
            "crypto.cipher.message",
            &module.message,
            SECRET_LEN..=SECRET_LEN,
        )?;
        let mut iv_array = [0u8; IV_LEN];
        iv_array.copy_from_slice(&iv);
        Ok((iv_array, ciphertext))
    }

    fn checksum(&self) -> Result<Vec<u8>, KeystoreError> {
        let module = &self.crypto.checksum;
        self.expect_function("checksum", module, "sha256")?;
        self.decode_hex("crypto.checksum.message", &module.message, 32..=32)
    }

    fn expect_function(
        &self,
        module_name: &'static str,
        module: &Module,
        supported: &'static str,
    ) -> Result<(), KeystoreError> {
        if module.function == supported {
            return Ok(());
        }
        Err(KeystoreError::UnsupportedFunction {
            keystore: self.describe(),
            module: module_name,
            function: module.function.clone(),
            supported,
        })
    }

    fn params<T: serde::de::DeserializeOwned>(
        &self,
        module_name: &'static str,
        module: &Module,
    ) -> Result<T, KeystoreError> {
        serde_json::from_value(Value::Object(module.params.clone())).map_err(|source| {
            KeystoreError::Params {
                keystore: self.describe(),
                module: module_name,
                source,
            }
        })
    }

    fn decode_hex(
        &self,
        field: &'static str,
        text: &str,
        len: std::ops::RangeInclusive<usize>,
    ) -> Result<Vec<u8>, KeystoreError> {
        let bad = |problem: String| KeystoreError::BadField {
            keystore: self.describe(),
            field,
            problem,
        };
        let text = text.strip_prefix("0x").unwrap_or(text);
        // Checked before decoding so a huge field is never allocated twice.
        if text.len() / 2 > *len.end() {
            return Err(bad(format!(
                "is {} hex characters, at most {} bytes are allowed",
                text.len(),
                len.end()
            )));
        }
        let bytes = hex::decode(text).map_err(|error| bad(format!("is not hex: {error}")))?;
        if !len.contains(&bytes.len()) {
            return Err(bad(format!(
                "is {} bytes, expected {}..={}",
                bytes.len(),
                len.start(),
                len.end()
            )));
        }
        Ok(bytes)
    }
}

/// The EIP-2335 password: NFKD, then C0, C1 and DEL control codes removed.
fn normalize_password(password: &str) -> Zeroizing<String> {
    Zeroizing::new(
        password
            .nfkd()
            .filter(|c| !matches!(u32::from(*c), 0x00..=0x1f | 0x7f..=0x9f))
            .collect(),
    )
}

fn scrypt_log_n(n: u64) -> Option<u8> {
    if n.is_power_of_two() && (2..=1u64 << MAX_SCRYPT_LOG_N).contains(&n) {
        u8::try_from(n.trailing_zeros()).ok()
    } else {
        None
    }
}

fn checksum(key: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(&key[16..32]);
    hasher.update(ciphertext);
    hasher.finalize().into()
}

fn apply_aes_128_ctr(key: &[u8; 32], iv: &[u8; IV_LEN], buffer: &mut [u8]) {
    let mut cipher = Aes128Ctr::new(key[..16].into(), iv.into());
    cipher.apply_keystream(buffer);
}

enum ReadError {
    Io(std::io::Error),
    TooLarge(u64),
}

/// Reads a UTF-8 file of at most `max` bytes, refusing larger files unread.
fn read_bounded(path: &Path, max: u64) -> Result<String, ReadError> {
    let file = File::open(path).map_err(ReadError::Io)?;
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > max {
        return Err(ReadError::TooLarge(len));
    }
    let mut text = String::new();
    file.take(max)
        .read_to_string(&mut text)
        .map_err(ReadError::Io)?;
    Ok(text)
}

/// Writes `contents` to `path` with mode 0600 (owner read/write only), also
/// when the file already existed with wider permissions.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_all_and_sync(file, contents)
    }
    #[cfg(not(unix))]
    {
        write_all_and_sync(options.open(path)?, contents)
    }
}

fn write_all_and_sync(mut file: File, contents: &[u8]) -> std::io::Result<()> {
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_nfkd_without_control_codes() {
        // The EIP's encoded password for its test vectors.
        let encoded = normalize_password("𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑");
        assert_eq!(
            hex::encode(encoded.as_bytes()),
            "7465737470617373776f7264f09f9491"
        );
        assert_eq!(
            normalize_password("a\u{0}b\u{7f}c\u{85}d e").as_str(),
            "abcd e"
        );
    }

    #[test]
    fn scrypt_n_must_be_a_bounded_power_of_two() {
        assert_eq!(scrypt_log_n(262_144), Some(18));
        assert_eq!(scrypt_log_n(3), None);
        assert_eq!(scrypt_log_n(1), None);
        assert_eq!(scrypt_log_n(1 << 21), None);
    }
}
