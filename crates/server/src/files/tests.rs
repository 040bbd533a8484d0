use super::*;

fn digest(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn files(dir: &Path) -> Files {
    let config = FilesConfig {
        dir: Some(dir.to_owned()),
        max_file_size: 1 << 20,
        max_storage: 3 << 20,
        ..FilesConfig::default()
    };
    Files::open(config, 64 << 10)
}

use std::path::Path;

fn offer(data: &[u8], to: Target) -> Offer {
    Offer {
        to,
        name: "f.bin".into(),
        size: data.len() as u64,
        sha256: digest(data),
        chunk_size: Some(MIN_CHUNK),
        transfer: None,
    }
}

fn id_of(o: &Offered) -> TransferId {
    TransferId::parse(o.reply["transfer"].as_str().unwrap()).unwrap()
}

fn chunk(id: TransferId, index: u32, data: &[u8]) -> chunk::Chunk {
    let c = MIN_CHUNK as usize;
    let start = index as usize * c;
    let end = (start + c).min(data.len());
    chunk::decode(&chunk::encode(id, index, &data[start..end])).unwrap()
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn chunks_in_order_complete_with_a_notice_and_download() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let data = body(2500);
    let o = f
        .offer("alice", offer(&data, Target::Room("r".into())))
        .unwrap();
    assert_eq!(o.reply["chunks"], 3);
    assert_eq!(o.reply["next"], 0);
    let id = id_of(&o);
    assert!(f.write(&chunk(id, 0, &data)).unwrap().notice.is_none());
    assert_eq!(f.write(&chunk(id, 2, &data)).unwrap_err().next, Some(1));
    assert!(f.write(&chunk(id, 1, &data)).unwrap().notice.is_none());
    // Not ready until complete; then only for those allowed.
    assert_eq!(
        f.download(id, 0, "bob", |_| true).unwrap_err().code,
        "not_ready"
    );
    let w = f.write(&chunk(id, 2, &data)).unwrap();
    let notice = w.notice.unwrap();
    assert_eq!(notice.room, "r");
    assert_eq!(notice.from, "alice");
    assert_eq!(notice.data["size"], 2500);
    assert_eq!(notice.complete["duplicates"], 0);
    assert_eq!(
        f.download(id, 0, "bob", |_| false).unwrap_err().code,
        "forbidden"
    );
    let d = f.download(id, 1, "bob", |r| r == "r").unwrap();
    assert_eq!(d.chunks, 3);
    let mut got = Vec::new();
    for i in 0..3 {
        let frame = f.read(id, i).unwrap();
        got.extend_from_slice(&chunk::decode(&frame).unwrap().data);
    }
    assert_eq!(got, data);
    assert_eq!(f.list("bob", &["r"]).len(), 1);
    assert!(f.list("bob", &["s"]).is_empty());
}

#[test]
fn a_held_chunk_is_acknowledged_again_and_counted_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let data = body(3000);
    let id = id_of(
        &f.offer("a", offer(&data, Target::User("b".into())))
            .unwrap(),
    );
    f.write(&chunk(id, 0, &data)).unwrap();
    let again = f.write(&chunk(id, 0, &data)).unwrap();
    assert_eq!(again.ack["chunk"], 0);
    assert_eq!(f.counts(id), Some((2, 1)));
    // Resuming says where to go on.
    let mut resume = offer(&data, Target::User("b".into()));
    resume.transfer = Some(id);
    assert_eq!(f.offer("a", resume.clone()).unwrap().reply["next"], 1);
    resume.size += 1;
    assert_eq!(f.offer("a", resume).unwrap_err().code, "bad_request");
}

#[test]
fn a_wrong_digest_deletes_the_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let data = body(1500);
    let mut o = offer(&data, Target::Room("r".into()));
    o.sha256 = digest(b"other");
    let id = id_of(&f.offer("a", o).unwrap());
    f.write(&chunk(id, 0, &data)).unwrap();
    let short = chunk::decode(&chunk::encode(id, 1, &data[1024..1400])).unwrap();
    assert_eq!(f.write(&short).unwrap_err().code, "bad_chunk");
    assert_eq!(
        f.write(&chunk(id, 1, &data)).unwrap_err().code,
        "checksum_mismatch"
    );
    assert_eq!(f.write(&chunk(id, 1, &data)).unwrap_err().code, "not_found");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_reopened_store_resumes_where_the_data_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data = body(5000);
    let (id, done) = {
        let f = files(dir.path());
        let id = id_of(
            &f.offer("a", offer(&data, Target::Room("r".into())))
                .unwrap(),
        );
        f.write(&chunk(id, 0, &data)).unwrap();
        f.write(&chunk(id, 1, &data)).unwrap();
        let small = body(10);
        let done = id_of(
            &f.offer("a", offer(&small, Target::Room("r".into())))
                .unwrap(),
        );
        assert!(f.write(&chunk(done, 0, &small)).unwrap().notice.is_some());
        (id, done)
    };
    let f = files(dir.path());
    let mut resume = offer(&data, Target::Room("r".into()));
    resume.transfer = Some(id);
    assert_eq!(f.offer("a", resume).unwrap().reply["next"], 2);
    for i in 2..5 {
        let w = f.write(&chunk(id, i, &data)).unwrap();
        assert_eq!(w.notice.is_some(), i == 4, "chunk {i}");
    }
    assert!(f.download(done, 0, "a", |_| true).is_ok());
}

#[test]
fn limits_size_storage_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let mut big = offer(b"", Target::Room("r".into()));
    big.size = (1 << 20) + 1;
    assert_eq!(f.offer("a", big.clone()).unwrap_err().code, "too_large");
    big.size = 1 << 20;
    for _ in 0..3 {
        f.offer("a", big.clone()).unwrap();
    }
    assert_eq!(f.offer("a", big.clone()).unwrap_err().code, "unavailable");
    // An empty file completes at its offer.
    let empty = f.offer("a", offer(b"", Target::Room("r".into()))).unwrap();
    assert_eq!(empty.reply["complete"], true);
    assert!(empty.notice.is_some());
    let mut bad_size = offer(b"x", Target::Room("r".into()));
    bad_size.chunk_size = Some(10);
    assert_eq!(f.offer("a", bad_size).unwrap_err().code, "bad_request");
}

#[test]
fn cancel_and_expiry_delete() {
    let dir = tempfile::tempdir().unwrap();
    let config = FilesConfig {
        dir: Some(dir.path().to_owned()),
        ttl: Duration::ZERO,
        ..FilesConfig::default()
    };
    let f = Files::open(config, 64 << 10);
    let data = body(10);
    let id = id_of(
        &f.offer("a", offer(&data, Target::Room("r".into())))
            .unwrap(),
    );
    f.write(&chunk(id, 0, &data)).unwrap();
    assert_eq!(f.cancel(id, "b").unwrap_err().code, "forbidden");
    f.cancel(id, "a").unwrap();
    assert_eq!(f.cancel(id, "a").unwrap_err().code, "not_found");
    f.offer("a", offer(&data, Target::Room("r".into())))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(f.expire(), 1);
    assert_eq!(f.reserved.load(Ordering::Relaxed), 0);
}
