//! Recovery specs: whatever was persisted reads back as the same `DurableState` the
//! core's reference store holds after the same writes; torn tails are cut; corruption
//! is refused.

use super::*;
use mq_core::controller::raft::{Entry, RaftWrite};
use mq_core::controller::MetadataRecord;
use mq_core::wire::{Record, RecordBatch};
use mq_core::{NodeId, Term};
use std::io::Write as _;

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn batch(base: u64, n: usize) -> RecordBatch {
    let records = (0..n).map(|i| Record::from_value(format!("value-{}", base + i as u64))).collect();
    RecordBatch { base_offset: Offset(base), append_time_ms: 1_000 + base, ..RecordBatch::new(records) }
}

fn append(p: u32, base: u64, n: usize) -> Write {
    Write::Append { tp: tp(p), batches: vec![batch(base, n)] }
}

fn small_segments() -> StorageOptions {
    StorageOptions { segment_bytes: 256, ..StorageOptions::default() }
}

/// The core's reference store after `writes`.
fn model(writes: &[Write]) -> DurableState {
    let mut s = DurableState::default();
    s.apply_all(writes);
    s
}

fn persist_all(dir: &Path, opts: StorageOptions, persists: &[Vec<Write>]) {
    let (mut store, _) = DiskStore::open(dir, opts).unwrap();
    for writes in persists {
        store.persist(writes).unwrap();
    }
}

fn segment_files(dir: &Path, p: u32) -> Vec<PathBuf> {
    let pdir = dir.join("logs/orders").join(p.to_string());
    let mut v: Vec<PathBuf> = fs::read_dir(pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn workload() -> Vec<Vec<Write>> {
    let entry = Entry { term: Term(1), index: 1, record: MetadataRecord::LeaderChange { leader: NodeId(1) } };
    let mut persists = vec![vec![
        Write::Raft(RaftWrite::HardState { term: Term(1), vote: Some(NodeId(1)) }),
        Write::Raft(RaftWrite::Append(vec![entry])),
    ]];
    let mut next = [0u64; 2];
    for i in 0..40u64 {
        let p = (i % 2) as u32;
        let n = 1 + (i % 4) as usize;
        persists.push(vec![append(p, next[p as usize], n)]);
        next[p as usize] += n as u64;
    }
    persists
}

#[test]
fn reopening_reads_back_exactly_what_was_persisted_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let persists = workload();
    persist_all(dir.path(), small_segments(), &persists);
    assert!(segment_files(dir.path(), 0).len() > 1, "the workload should roll segments");
    let (_, recovered) = DiskStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(recovered.state, model(&persists.concat()));
    assert!(recovered.notes.is_empty(), "clean shutdown needs no repair: {:?}", recovered.notes);
}

#[test]
fn torn_tail_is_truncated_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let persists = workload();
    persist_all(dir.path(), small_segments(), &persists);
    let last = segment_files(dir.path(), 1).pop().unwrap();
    let mut torn = Vec::new();
    mq_core::wire::codec::encode_stored_batch(&batch(999, 3), &mut torn);
    torn.truncate(torn.len() / 2);
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&torn).unwrap();

    let (mut store, recovered) = DiskStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(recovered.state, model(&persists.concat()));
    assert!(matches!(
        &recovered.notes[..],
        [RecoveryNote::TruncatedTornTail { dropped_bytes, .. }] if *dropped_bytes == torn.len() as u64
    ));
    let end = recovered.state.logs[&tp(1)].log_end();
    store.persist(&[append(1, end.0, 2)]).unwrap();
    drop(store);
    let (_, again) = DiskStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(again.state.logs[&tp(1)].log_end(), end.plus(2));
    assert!(again.notes.is_empty());
}

#[test]
fn zero_filled_tail_counts_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let persists = workload();
    persist_all(dir.path(), StorageOptions::default(), &persists);
    let last = segment_files(dir.path(), 0).pop().unwrap();
    fs::OpenOptions::new().append(true).open(&last).unwrap().write_all(&[0u8; 4096]).unwrap();
    let (_, recovered) = DiskStore::open(dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(recovered.state, model(&persists.concat()));
    assert_eq!(recovered.notes.len(), 1);
}

#[test]
fn corrupt_batch_followed_by_valid_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    persist_all(dir.path(), StorageOptions::default(), &workload());
    let seg = segment_files(dir.path(), 0).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes[12] ^= 0xff; // inside the first batch's payload
    fs::write(&seg, &bytes).unwrap();
    let err = DiskStore::open(dir.path(), StorageOptions::default()).unwrap_err();
    assert!(matches!(&err, StorageError::CorruptSegment { pos: 0, .. }), "{err}");
    assert!(err.to_string().contains("not a torn write"), "{err}");
}

#[test]
fn corruption_in_an_older_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    persist_all(dir.path(), small_segments(), &workload());
    let first = segment_files(dir.path(), 0).remove(0);
    let len = fs::metadata(&first).unwrap().len();
    fs::OpenOptions::new().write(true).open(&first).unwrap().set_len(len - 3).unwrap();
    let err = DiskStore::open(dir.path(), small_segments()).unwrap_err();
    assert!(matches!(err, StorageError::CorruptSegment { .. }), "{err}");
}

#[test]
fn truncate_inside_a_batch_keeps_its_head_like_the_reference_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut persists = workload();
    persists.push(vec![Write::Truncate { tp: tp(0), end: Offset(7) }, append(0, 7, 2)]);
    persists.push(vec![Write::Truncate { tp: tp(1), end: Offset(0) }]);
    persist_all(dir.path(), small_segments(), &persists);
    let (_, recovered) = DiskStore::open(dir.path(), small_segments()).unwrap();
    let expected = model(&persists.concat());
    assert_eq!(recovered.state.logs.get(&tp(0)), expected.logs.get(&tp(0)));
    assert_eq!(recovered.state.logs.get(&tp(0)).unwrap().log_end(), Offset(9));
    assert!(recovered.state.logs.get(&tp(1)).is_none_or(|l| l.log_end() == Offset(0)));
}

#[test]
fn retention_deletes_whole_segments_and_the_log_start_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut persists = workload();
    persists.push(vec![Write::AdvanceLogStart { tp: tp(0), log_start: Offset(20) }]);
    persist_all(dir.path(), small_segments(), &persists);
    let (_, recovered) = DiskStore::open(dir.path(), small_segments()).unwrap();
    let log = &recovered.state.logs[&tp(0)];
    assert_eq!(log.log_start(), Offset(20));
    assert_eq!(recovered.state, model(&persists.concat()));
    let first = segment_files(dir.path(), 0).remove(0);
    let base: u64 = first.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    assert!(base > 0 && base <= 20, "segments below the log start are gone; first base {base}");
}

#[test]
fn delete_topic_removes_its_files_and_orphans_are_cleaned_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut persists = workload();
    persists.push(vec![Write::DeleteTopic { topic: "orders".into() }]);
    persist_all(dir.path(), StorageOptions::default(), &persists);
    assert!(!dir.path().join("logs/orders").exists());
    // A stray file where a topic directory belongs is removed at start.
    fs::write(dir.path().join("logs/stray"), b"x").unwrap();
    let (_, recovered) = DiskStore::open(dir.path(), StorageOptions::default()).unwrap();
    assert!(recovered.state.logs.is_empty());
    assert_eq!(recovered.state.raft.entries.len(), 1, "the metadata log is kept");
    assert!(!dir.path().join("logs/stray").exists());
    assert!(matches!(&recovered.notes[..], [RecoveryNote::RemovedOrphan { .. }]));
}

#[test]
fn a_missing_or_stale_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let persists = workload();
    persist_all(dir.path(), StorageOptions::default(), &persists);
    let index = segment_files(dir.path(), 0).pop().unwrap().with_extension("index");
    let good = fs::read(&index).unwrap();
    assert_eq!(good.len() % partition::INDEX_ENTRY_BYTES, 0);
    fs::remove_file(&index).unwrap();
    let (_, recovered) = DiskStore::open(dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(recovered.state, model(&persists.concat()));
    assert_eq!(fs::read(&index).unwrap(), good);
}

#[test]
fn a_torn_raft_log_tail_is_cut_off_and_earlier_writes_kept() {
    let dir = tempfile::tempdir().unwrap();
    persist_all(dir.path(), StorageOptions::default(), &workload());
    let wal = dir.path().join("raft.wal");
    let mut bytes = fs::read(&wal).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 40, 1, 2]); // half a frame header and payload
    fs::write(&wal, &bytes).unwrap();
    let (_, recovered) = DiskStore::open(dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(recovered.state, model(&workload().concat()));
    assert!(recovered.notes.iter().any(|n| matches!(n, RecoveryNote::TruncatedRaftLog { dropped_bytes: 6 })));
    assert_eq!(fs::read(&wal).unwrap().len(), bytes.len() - 6);
}

#[test]
fn a_corrupt_raft_frame_followed_by_good_ones_is_refused_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    persist_all(dir.path(), StorageOptions::default(), &workload());
    let wal = dir.path().join("raft.wal");
    let mut bytes = fs::read(&wal).unwrap();
    bytes[9] ^= 1; // inside the first frame's payload
    fs::write(&wal, bytes).unwrap();
    let err = DiskStore::open(dir.path(), StorageOptions::default()).unwrap_err();
    assert!(err.to_string().contains("raft.wal"), "{err}");
}

#[test]
fn unsafe_topic_names_never_reach_the_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = DiskStore::open(dir.path(), StorageOptions::default()).unwrap();
    let write = Write::Append { tp: TopicPartition::new("../escape", 0), batches: vec![batch(0, 1)] };
    assert!(store.persist(&[write]).is_err());
    assert!(!dir.path().join("escape").exists());
}

#[test]
fn a_second_store_on_the_same_directory_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let owner = StorageOptions { owner: "broker 1 on 127.0.0.1:9092".into(), ..StorageOptions::default() };
    let (first, _) = DiskStore::open(dir.path(), owner).unwrap();
    let err = DiskStore::open(dir.path(), StorageOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StorageError::Locked { .. }), "{msg}");
    let holder = format!("pid {} (broker 1 on 127.0.0.1:9092)", std::process::id());
    assert!(msg.contains(&holder), "the error names the holder: {msg}");
    assert!(msg.contains("never share a data directory"), "{msg}");
    drop(first);
    // The lock file stays behind; only the lock counts.
    assert!(dir.path().join("mq.lock").exists());
    let (_again, recovered) = DiskStore::open(dir.path(), StorageOptions::default()).unwrap();
    assert!(recovered.notes.is_empty(), "the lock file is not an orphan: {:?}", recovered.notes);
}
