//! The cluster's BLS node keys over blst as QBFT `NodeKeys`, as the
//! middleware plugs them, counting their calls. Shared by
//! `tests/consensus_qbft.rs` and `benches/qbft.rs` (included by path).

#![allow(dead_code)] // The tests do not read the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dv_aggregator::consensus::{NodeIndex, NodeKeys, SignatureBytes};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::{PublicKey, SecretKey, Signature};

/// One node's secret key and every node's public key (node i at i - 1).
pub struct BlsKeys {
    secret: SecretKey,
    cluster: Arc<Vec<PublicKey>>,
    /// Signatures made.
    pub signs: AtomicU64,
    /// Verifications made.
    pub verifies: AtomicU64,
}

impl NodeKeys for BlsKeys {
    fn sign(&self, digest: &[u8; 32]) -> SignatureBytes {
        self.signs.fetch_add(1, Ordering::Relaxed);
        SignatureBytes::new(self.secret.sign(digest).to_bytes().to_vec()).expect("96 bytes")
    }

    fn verify(&self, source: NodeIndex, digest: &[u8; 32], signature: &SignatureBytes) -> bool {
        self.verifies.fetch_add(1, Ordering::Relaxed);
        let key = source
            .checked_sub(1)
            .and_then(|i| self.cluster.get(i as usize));
        let signature = Signature::from_bytes(signature.as_bytes());
        matches!((key, signature), (Some(key), Ok(s)) if s.verify(key, digest))
    }
}

/// Node keys of a cluster of `nodes`: the interop keys 0..n.
pub fn cluster_keys(nodes: u64) -> Vec<Arc<BlsKeys>> {
    let secrets: Vec<SecretKey> = (0..nodes).map(interop_secret_key).collect();
    let cluster = Arc::new(
        secrets
            .iter()
            .map(SecretKey::public_key)
            .collect::<Vec<_>>(),
    );
    secrets
        .into_iter()
        .map(|secret| {
            Arc::new(BlsKeys {
                secret,
                cluster: cluster.clone(),
                signs: AtomicU64::new(0),
                verifies: AtomicU64::new(0),
            })
        })
        .collect()
}
