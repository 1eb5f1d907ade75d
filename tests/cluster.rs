//! The cluster lock and `cluster create` as a library: round trips through the
//! files `create_cluster` writes, bad locks named by their culprit, the Charon
//! import and key recovery.

use std::path::{Path, PathBuf};

use dv_aggregator::cluster::charon::load_charon_lock;
use dv_aggregator::cluster::create::{
    decrypt_keystore_file, recover_validator_keystore, ShareKeystoreFile,
};
use dv_aggregator::cluster::{
    create_cluster, load_any_lock, load_node_key, ClusterLock, CreateConfig, CreateError,
    NodeIdentity, ValidatorKeys,
};
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::keystore::{Kdf, Keystore};
use serde_json::Value;

fn config(out_dir: &Path, operators: u64, keys: ValidatorKeys) -> CreateConfig {
    CreateConfig {
        name: "test".into(),
        operators,
        threshold: None,
        validator_keys: keys,
        out_dir: out_dir.to_owned(),
        peer_host: "127.0.0.1".into(),
        peer_base_port: 9100,
        network: "minimal".into(),
        fork_version: [0, 0, 0, 1],
        kdf: Kdf::INSECURE_FAST,
    }
}

#[cfg(unix)]
fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

#[cfg(not(unix))]
fn assert_private(_: &Path) {}

#[test]
fn create_then_load_round_trips_and_every_share_matches_its_pubshare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cluster");
    let created = create_cluster(&config(&out, 4, ValidatorKeys::Generate(2))).expect("create");
    let lock = ClusterLock::load(&created.lock_path).expect("load");
    assert_eq!(lock, created.lock);
    assert_eq!(lock.threshold, 3, "ceil(2*4/3)");
    assert_eq!(lock.validators.len(), 2);
    assert_eq!(created.operator_dirs.len(), 4);
    for (operator, dir) in lock.operators.iter().zip(&created.operator_dirs) {
        assert_eq!(dir, &out.join(format!("operator-{}", operator.index)));
        assert_eq!(
            operator.peer_address.as_deref(),
            Some(format!("127.0.0.1:{}", 9099 + operator.index).as_str())
        );
        assert_eq!(
            ClusterLock::load(&dir.join("cluster-lock.json")).expect("copy"),
            lock
        );
        let node_key_path = dir.join("node-key");
        assert_private(&node_key_path);
        let node_key = load_node_key(&node_key_path).expect("node key");
        assert_eq!(operator.identity, NodeIdentity::Bls(node_key.public_key()));
        for (k, validator) in lock.validators.iter().enumerate() {
            let keystore = dir.join(format!("validator_keys/keystore-{k}.json"));
            let password = keystore.with_extension("txt");
            assert_private(&keystore);
            assert_private(&password);
            let share = decrypt_keystore_file(&keystore, &password).expect("decrypt share");
            assert_eq!(
                Some(&share.public_key()),
                validator.public_share(operator.index),
                "operator {} validator {k}",
                operator.index
            );
        }
    }
}

/// Writes interop keys 0..count as Charon-style keystore-<k>.json + .txt.
fn write_existing_keys(dir: &Path, count: u64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..count)
        .map(|k| {
            let secret = interop_secret_key(k);
            let pubkey = hex::encode(secret.public_key().to_bytes());
            let password = format!("password-{k}");
            let keystore = Keystore::encrypt(
                &secret.to_bytes(),
                &password,
                &pubkey,
                "",
                Kdf::INSECURE_FAST,
            )
            .expect("encrypt");
            let path = dir.join(format!("keystore-{k}.json"));
            keystore.save(&path).expect("save");
            std::fs::write(path.with_extension("txt"), format!("{password}\n")).expect("pw");
            path
        })
        .collect()
}

#[test]
fn split_existing_keys_keeps_the_group_keys_in_natural_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    // 11 keys so that keystore-10 would sort before keystore-2 by name.
    write_existing_keys(&keys, 11);
    let out = dir.path().join("cluster");
    let mut config = config(&out, 3, ValidatorKeys::SplitExisting(keys));
    config.threshold = Some(2);
    let created = create_cluster(&config).expect("create");
    let expected: Vec<_> = (0..11)
        .map(|k| interop_secret_key(k).public_key())
        .collect();
    let found: Vec<_> = created.lock.validators.iter().map(|v| v.pubkey).collect();
    assert_eq!(found, expected);
}

#[test]
fn recover_key_from_threshold_shares_gives_the_original_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    write_existing_keys(&keys, 2);
    let out = dir.path().join("cluster");
    let created =
        create_cluster(&config(&out, 4, ValidatorKeys::SplitExisting(keys))).expect("create");
    let validator = interop_secret_key(1).public_key();
    let shares: Vec<ShareKeystoreFile> = [1u64, 3, 4]
        .iter()
        .map(|&index| {
            let keystore = out.join(format!("operator-{index}/validator_keys/keystore-1.json"));
            ShareKeystoreFile {
                share_index: index,
                password_file: keystore.with_extension("txt"),
                keystore,
            }
        })
        .collect();
    let recovered = dir.path().join("recovered.json");
    let password_file = recover_validator_keystore(
        &created.lock,
        &validator,
        &shares,
        &recovered,
        None,
        Kdf::INSECURE_FAST,
    )
    .expect("recover")
    .expect("a password file is written when no password is given");
    assert_private(&recovered);
    assert_private(&password_file);
    let secret = decrypt_keystore_file(&recovered, &password_file).expect("decrypt");
    assert_eq!(secret.to_bytes(), interop_secret_key(1).to_bytes());

    // A share filed under the wrong index is named.
    let mut swapped = shares.clone();
    swapped[0].share_index = 2;
    let error = recover_validator_keystore(
        &created.lock,
        &validator,
        &swapped,
        &dir.path().join("other.json"),
        Some("pw"),
        Kdf::INSECURE_FAST,
    )
    .expect_err("wrong index");
    let message = error.to_string();
    assert!(
        matches!(error, CreateError::ShareMismatch { share_index: 2, .. }),
        "{message}"
    );
    assert!(message.contains(&validator.to_string()), "{message}");
}

#[test]
fn create_refuses_a_non_empty_output_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("precious"), "data").expect("write");
    let error =
        create_cluster(&config(dir.path(), 4, ValidatorKeys::Generate(1))).expect_err("non-empty");
    assert!(error.to_string().contains("not empty"), "{error}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("precious")).expect("kept"),
        "data"
    );
}

#[test]
fn create_rejects_bad_thresholds() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (operators, threshold) in [(4, 1), (4, 5), (1, 1)] {
        let mut config = config(
            &dir.path().join("out"),
            operators,
            ValidatorKeys::Generate(1),
        );
        config.threshold = Some(threshold);
        let message = create_cluster(&config).expect_err("bad shape").to_string();
        assert!(
            message.contains(&format!("{operators} operators")),
            "{operators}/{threshold}: {message}"
        );
    }
}

/// A valid lock of 2 validators, 4 operators, threshold 3, as JSON.
fn valid_lock_json() -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let created = create_cluster(&config(
        &dir.path().join("c"),
        4,
        ValidatorKeys::Generate(2),
    ))
    .expect("create");
    serde_json::from_str(&created.lock.to_json()).expect("json")
}

/// Loads `valid` after `edit`, expecting an error whose message contains
/// every one of `expected`.
fn assert_refused(valid: &Value, edit: impl FnOnce(&mut Value), expected: &[&str]) {
    let mut lock = valid.clone();
    edit(&mut lock);
    let message = ClusterLock::from_json(&lock.to_string())
        .expect_err("invalid lock")
        .to_string();
    for part in expected {
        assert!(message.contains(part), "expected {part:?} in: {message}");
    }
}

fn validator_key(lock: &Value, k: usize) -> String {
    lock["validators"][k]["pubkey"]
        .as_str()
        .expect("pubkey")
        .to_owned()
}

#[test]
fn bad_locks_are_refused_naming_the_culprit() {
    let valid = valid_lock_json();
    ClusterLock::from_json(&valid.to_string()).expect("the unmodified lock is valid");
    let validator = validator_key(&valid, 1);
    let shares = |lock: &mut Value| lock["validators"][1]["public_shares"].clone();
    assert_refused(
        &valid,
        |lock| lock["validators"][1]["public_shares"][2]["share_index"] = 2.into(),
        &[&validator, "share index 2 appears more than once"],
    );
    assert_refused(
        &valid,
        |lock| lock["validators"][1]["public_shares"][0]["share_index"] = 0.into(),
        &[&validator, "share index 0 is outside 1..=4"],
    );
    assert_refused(
        &valid,
        |lock| {
            let mut fewer = shares(lock);
            fewer.as_array_mut().expect("array").pop();
            lock["validators"][1]["public_shares"] = fewer;
        },
        &[&validator, "no public share for share index 4"],
    );
    assert_refused(
        &valid,
        |lock| lock["threshold"] = 5.into(),
        &["threshold 5 is invalid for 4 operators"],
    );
    assert_refused(
        &valid,
        |lock| lock["threshold"] = 1.into(),
        &["threshold 1 is invalid for 4 operators"],
    );
    assert_refused(
        &valid,
        |lock| lock["operators"][3]["index"] = 1.into(),
        &["operator index 1 appears more than once"],
    );
    assert_refused(
        &valid,
        |lock| lock["operators"][0]["peer_address"] = "localhost".into(),
        &["operator 1: peer address \"localhost\""],
    );
}

#[test]
fn a_share_off_the_polynomial_is_named() {
    let valid = valid_lock_json();
    let validator = validator_key(&valid, 0);
    let other_share = |i: usize| valid["validators"][1]["public_shares"][i].clone();
    // Share 4 of validator 0 replaced by share 4 of validator 1: a valid point
    // that does not interpolate.
    assert_refused(
        &valid,
        |lock| lock["validators"][0]["public_shares"][3] = other_share(3),
        &[&validator, "public share 4 does not interpolate"],
    );
    // Inside the first t shares the culprit cannot be singled out: the
    // window is named.
    assert_refused(
        &valid,
        |lock| lock["validators"][0]["public_shares"][1] = other_share(1),
        &[&validator, "public shares [1, 2, 3] do not interpolate"],
    );
}

#[test]
fn infinity_and_off_curve_keys_are_named() {
    let infinity = format!("0xc0{}", "00".repeat(47));
    let valid = valid_lock_json();
    assert_refused(
        &valid,
        |lock| lock["validators"][0]["pubkey"] = infinity.clone().into(),
        &[&infinity, "infinity"],
    );
    let validator = validator_key(&valid, 1);
    assert_refused(
        &valid,
        |lock| lock["validators"][1]["public_shares"][2]["pubkey"] = infinity.clone().into(),
        &[&validator, "public share 3", "infinity"],
    );
    // x = 0 with the compression flag: not on the curve.
    let off_curve = format!("0x80{}", "00".repeat(47));
    assert_refused(
        &valid,
        |lock| lock["validators"][1]["public_shares"][0]["pubkey"] = off_curve.clone().into(),
        &[&validator, "public share 1"],
    );
}

#[test]
fn charon_lock_imports_with_interpolating_shares() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/charon/cluster-lock-003.json");
    let lock = load_charon_lock(&path).expect("import");
    assert_eq!(load_any_lock(&path).expect("sniffed"), lock);
    assert_eq!(lock.threshold, 3);
    assert_eq!(lock.operators.len(), 4);
    assert_eq!(lock.network, "goerli");
    assert_eq!(lock.fork_version, [0x00, 0x00, 0x10, 0x20]);
    assert!(lock
        .operators
        .iter()
        .all(|o| matches!(&o.identity, NodeIdentity::Enr(enr) if enr.starts_with("enr:-"))));
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    for (validator, charon) in lock.validators.iter().zip(
        fixture["distributed_validators"]
            .as_array()
            .expect("validators"),
    ) {
        assert_eq!(
            validator.pubkey.to_string(),
            charon["distributed_public_key"]
        );
        assert_eq!(validator.public_shares.len(), 4);
        assert_eq!(
            validator
                .public_share(4)
                .map(ToString::to_string)
                .as_deref(),
            charon["public_shares"][3].as_str()
        );
    }
    // Exported in our format, it loads again as the same lock.
    assert_eq!(
        ClusterLock::from_json(&lock.to_json()).expect("reload"),
        lock
    );
}

#[test]
fn split_existing_keys_names_a_missing_or_wrong_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    let keystores = write_existing_keys(&keys, 2);
    let password_1 = keystores[1].with_extension("txt");

    std::fs::write(&password_1, "not the password\n").expect("write");
    let message = create_cluster(&config(
        &dir.path().join("a"),
        4,
        ValidatorKeys::SplitExisting(keys.clone()),
    ))
    .expect_err("wrong password")
    .to_string();
    assert!(message.contains("wrong password"), "{message}");
    assert!(message.contains("keystore-1.json"), "{message}");
    assert!(!message.contains("not the password"), "{message}");

    std::fs::remove_file(&password_1).expect("remove");
    let message = create_cluster(&config(
        &dir.path().join("b"),
        4,
        ValidatorKeys::SplitExisting(keys),
    ))
    .expect_err("missing password")
    .to_string();
    assert!(message.contains("keystore-1.txt"), "{message}");
}
