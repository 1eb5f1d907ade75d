//! The deterministic "interop" validator keys that every test state, devnet and
//! client test suite uses: `sk_i = int.from_bytes(sha256(i.to_bytes(32, 'little')), 'little') mod r`.

use sha2::{Digest, Sha256};

use super::bls::{Scalar, SecretKey};

/// The interop secret key of validator `index` (`pk_0 = 0xa99a76ed...`).
pub fn interop_secret_key(index: u64) -> SecretKey {
    let mut preimage = [0u8; 32];
    preimage[..8].copy_from_slice(&index.to_le_bytes());
    let digest = Sha256::digest(preimage);
    match Scalar::from_le_bytes_reduced(&digest).to_secret_key() {
        Ok(key) => key,
        // A digest that is a multiple of r would be a SHA-256 preimage of a
        // chosen value; no such index is known, so this cannot be reached.
        Err(_) => unreachable!("sha256 of interop index {index} is a multiple of r"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_zero_has_the_well_known_key() {
        let pk = interop_secret_key(0).public_key().to_string();
        assert!(pk.starts_with("0xa99a76ed"), "{pk}");
    }
}
