//! The real `dv-aggregator cluster ...` binary: exit codes, output and the
//! files it writes.

use std::path::Path;
use std::process::{Command, Output};

use dv_aggregator::cluster::create::decrypt_keystore_file;
use dv_aggregator::cluster::ClusterLock;
use dv_aggregator::crypto::interop::interop_secret_key;
use dv_aggregator::crypto::keystore::{Kdf, Keystore};
use dv_aggregator::crypto::threshold::split_secret;
use dv_aggregator::crypto::SecretKey;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dv-aggregator"))
        .arg("cluster")
        .args(args)
        .output()
        .expect("run dv-aggregator")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Interop keys 0..count as keystore-<k>.json + keystore-<k>.txt.
fn write_existing_keys(dir: &Path, count: u64) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for k in 0..count {
        let secret = interop_secret_key(k);
        let pubkey = hex::encode(secret.public_key().to_bytes());
        let keystore = Keystore::encrypt(
            &secret.to_bytes(),
            "secret",
            &pubkey,
            "",
            Kdf::INSECURE_FAST,
        )
        .expect("encrypt");
        keystore
            .save(&dir.join(format!("keystore-{k}.json")))
            .expect("save");
        std::fs::write(dir.join(format!("keystore-{k}.txt")), "secret\n").expect("password");
    }
}

fn create_from_interop_keys(dir: &Path, count: u64) -> std::path::PathBuf {
    let keys = dir.join("keys");
    write_existing_keys(&keys, count);
    let out = dir.join("cluster");
    let output = run(&[
        "create",
        "--operators",
        "4",
        "--split-existing-keys",
        keys.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
        "--network",
        "minimal",
        "--insecure-fast-kdf",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    out
}

#[test]
fn create_writes_a_valid_lock_and_private_key_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = create_from_interop_keys(dir.path(), 2);
    let lock = ClusterLock::load(&out.join("cluster-lock.json")).expect("lock");
    assert_eq!(lock.threshold, 3);
    assert_eq!(lock.network, "minimal");
    assert_eq!(lock.fork_version, [0, 0, 0, 1]);
    for k in 0..2 {
        let pubkey = interop_secret_key(k).public_key();
        assert_eq!(lock.validators[k as usize].pubkey, pubkey);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [
            "operator-2/node-key",
            "operator-2/validator_keys/keystore-1.json",
            "operator-2/validator_keys/keystore-1.txt",
        ] {
            let mode = std::fs::metadata(out.join(file))
                .expect(file)
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    // A second run into the same directory fails and says why.
    let again = run(&[
        "create",
        "--operators",
        "4",
        "--validators",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
        "--insecure-fast-kdf",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

#[test]
fn create_prints_the_lock_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("c");
    let output = run(&[
        "create",
        "--operators",
        "5",
        "--validators",
        "2",
        "--out",
        out.to_str().expect("utf-8"),
        "--peer-base-port",
        "7000",
        "--insecure-fast-kdf",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("5 operators, threshold 4, 2 validators, network mainnet"),
        "{text}"
    );
    assert!(text.contains("operator 5 127.0.0.1:7004"), "{text}");
    let lock = ClusterLock::load(&out.join("cluster-lock.json")).expect("lock");
    for validator in &lock.validators {
        assert!(
            text.contains(&format!("validator {}", validator.pubkey)),
            "{text}"
        );
    }
}

struct Partials {
    group: SecretKey,
    shares: Vec<(u64, SecretKey)>,
    root: [u8; 32],
}

fn partials() -> Partials {
    let group = interop_secret_key(7);
    let shares = split_secret(&group, 3, 4).expect("split");
    Partials {
        group,
        shares,
        root: [0x42; 32],
    }
}

fn partial_arg(index: u64, signer: &SecretKey, root: &[u8; 32]) -> String {
    format!("{index}:{}", signer.sign(root))
}

fn pubshare_arg(index: u64, share: &SecretKey) -> String {
    format!("{index}:{}", share.public_key())
}

fn combine_args(p: &Partials, partials: &[String], with_pubshares: bool) -> Vec<String> {
    let mut args = vec![
        "combine-signatures".to_owned(),
        "--threshold".into(),
        "3".into(),
    ];
    for partial in partials {
        args.extend(["--partial".into(), partial.clone()]);
    }
    if with_pubshares {
        for (index, share) in &p.shares {
            args.extend(["--pubshare".into(), pubshare_arg(*index, share)]);
        }
    }
    args.extend([
        "--pubkey".into(),
        p.group.public_key().to_string(),
        "--signing-root".into(),
        format!("0x{}", hex::encode(p.root)),
    ]);
    args
}

fn run_strings(args: &[String]) -> Output {
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn combine_signatures_prints_the_group_signature() {
    let p = partials();
    let signed: Vec<String> = [1usize, 2, 4]
        .iter()
        .map(|&i| partial_arg(p.shares[i - 1].0, &p.shares[i - 1].1, &p.root))
        .collect();
    let output = run_strings(&combine_args(&p, &signed, true));
    assert!(output.status.success(), "{}", stderr(&output));
    // BLS signing is deterministic: the combination equals the group key's own
    // signature.
    assert_eq!(stdout(&output).trim(), p.group.sign(&p.root).to_string());
}

#[test]
fn combine_signatures_names_every_bad_partial() {
    let p = partials();
    let (share_3, share_4) = (&p.shares[2].1, &p.shares[3].1);
    let partials = vec![
        partial_arg(1, &p.shares[0].1, &p.root),
        // Share 3's signature filed as 2, share 4 signing another root.
        partial_arg(2, share_3, &p.root),
        partial_arg(4, share_4, &[0x43; 32]),
    ];
    let output = run_strings(&combine_args(&p, &partials, true));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("partial 2 does not verify"), "{message}");
    assert!(message.contains("partial 4 does not verify"), "{message}");
    assert!(!message.contains("partial 1 "), "{message}");
    assert!(stdout(&output).is_empty());

    // Without pubshares the bad combination is caught against the group key.
    let output = run_strings(&combine_args(&p, &partials, false));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("does not verify against pubkey"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn combine_signatures_rejects_too_few_partials_and_bad_input() {
    let p = partials();
    let two = vec![
        partial_arg(1, &p.shares[0].1, &p.root),
        partial_arg(2, &p.shares[1].1, &p.root),
    ];
    let output = run_strings(&combine_args(&p, &two, false));
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("need 3"), "{}", stderr(&output));

    let output = run(&[
        "combine-signatures",
        "--threshold",
        "3",
        "--partial",
        "1:0x1234",
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("partial 1"), "{}", stderr(&output));
}

/// `recover-key` of interop validator 1 from the given shares of the cluster
/// in `out`, with extra arguments.
fn recover_key(out: &Path, shares: &[u64], target: &Path, extra: &[&str]) -> Output {
    let lock = out.join("cluster-lock.json");
    let validator = interop_secret_key(1).public_key().to_string();
    let mut args = vec![
        "recover-key".to_owned(),
        "--lock".into(),
        lock.display().to_string(),
        "--validator".into(),
        validator,
        "--out".into(),
        target.display().to_string(),
        "--insecure-fast-kdf".into(),
    ];
    for index in shares {
        let keystore = out.join(format!("operator-{index}/validator_keys/keystore-1.json"));
        args.push("--share".into());
        args.push(format!(
            "{index}:{}:{}",
            keystore.display(),
            keystore.with_extension("txt").display()
        ));
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    run_strings(&args)
}

#[test]
fn recover_key_writes_the_original_validator_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = create_from_interop_keys(dir.path(), 2);
    let password_file = dir.path().join("new-password.txt");
    std::fs::write(&password_file, "fresh password\n").expect("password");
    let recovered = dir.path().join("recovered.json");
    let output = recover_key(
        &out,
        &[2, 3, 4],
        &recovered,
        &["--password-file", password_file.to_str().expect("utf-8")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let validator = interop_secret_key(1).public_key().to_string();
    assert!(stdout(&output).contains(&validator));
    let secret = decrypt_keystore_file(&recovered, &password_file).expect("decrypt");
    assert_eq!(secret.to_bytes(), interop_secret_key(1).to_bytes());

    // Without --password-file a random password is written next to the keystore.
    let second = dir.path().join("second.json");
    let output = recover_key(&out, &[1, 2, 4], &second, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let secret = decrypt_keystore_file(&second, &dir.path().join("second.txt")).expect("decrypt");
    assert_eq!(secret.to_bytes(), interop_secret_key(1).to_bytes());

    // Two shares are not enough for threshold 3.
    let output = recover_key(&out, &[2, 3], &dir.path().join("other.json"), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("need 3"), "{}", stderr(&output));
}

#[test]
fn create_encrypts_with_the_eip2335_scrypt_unless_asked_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("c");
    let output = run(&[
        "create",
        "--operators",
        "2",
        "--validators",
        "1",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let keystore =
        Keystore::load(&out.join("operator-1/validator_keys/keystore-0.json")).expect("load");
    assert_eq!(keystore.crypto.kdf.function, "scrypt");
    assert_eq!(keystore.crypto.kdf.params["n"], 262_144);
    assert_eq!(keystore.crypto.kdf.params["r"], 8);
    assert_eq!(keystore.crypto.kdf.params["p"], 1);
}
