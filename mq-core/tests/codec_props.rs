//! Generative tests of the frame codec and the stored batch format
//! (docs/protocol.md sections "Frames" and "Stored batches").
//!
//! Every property here would fail on a plausible codec bug: a field not serialized,
//! a length that counts the wrong bytes, a CRC over the wrong range, a decoder that
//! waits for bytes it should refuse, or one that accepts a damaged frame.

use bytes::Bytes;
use mq_core::group::{assign::Assignor, GroupMode};
use mq_core::security::acl::{Grant, Operation, Resource};
use mq_core::security::{StoredCredential, KEY_BYTES};
use mq_core::wire::codec::{
    decode_stored_batches, encode_stored_batch, StoredTail, BATCH_HEADER_BYTES, FRAME_HEADER_BYTES, FRAME_VERSION,
};
use mq_core::wire::{
    decode_frame, encode_frame, frame_bytes, AckKind, Acks, BatchKind, CodecError, DeliveredRecord, ErrorCode,
    FetchMode, GroupAck, GroupFetch, GroupSeek, GroupSettings, GroupView, Header, JoinGroup, Joined, Message,
    OffsetSpec, PartitionInfo, ProducerStamp, Record, RecordBatch, Request, RequestBody, Response, ResponseBody,
    SeekTo, StartPosition, TopicConfig, TopicInfo, WireError, DEFAULT_MAX_FRAME_BYTES,
};
use mq_core::{
    CorrelationId, Duration, Generation, GroupGeneration, LeaderEpoch, MemberId, NodeId, Offset, PartitionId,
    ProducerEpoch, ProducerId, Sequence, TopicPartition,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ----- strategies -----

/// Every error code, in wire order (their postcard tag is their index here).
const ERROR_CODES: [ErrorCode; 28] = [
    ErrorCode::InvalidRequest,
    ErrorCode::UnknownTopic,
    ErrorCode::TopicExists,
    ErrorCode::UnknownPartition,
    ErrorCode::OffsetOutOfRange,
    ErrorCode::RecordTooLarge,
    ErrorCode::InvalidConfig,
    ErrorCode::Backpressure,
    ErrorCode::NotLeader,
    ErrorCode::NotEnoughReplicas,
    ErrorCode::FencedEpoch,
    ErrorCode::UnknownEpoch,
    ErrorCode::Timeout,
    ErrorCode::Unauthenticated,
    ErrorCode::Unauthorized,
    ErrorCode::NotReady,
    ErrorCode::OutOfOrderSequence,
    ErrorCode::TopicDeleted,
    ErrorCode::Internal,
    ErrorCode::LeadershipLost,
    ErrorCode::ProducerFenced,
    ErrorCode::NotCoordinator,
    ErrorCode::CoordinatorNotAvailable,
    ErrorCode::RebalanceInProgress,
    ErrorCode::UnknownMember,
    ErrorCode::IllegalGeneration,
    ErrorCode::InconsistentGroup,
    ErrorCode::UnknownProducerId,
];

fn payload() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

/// Short strings, including multi-byte characters (postcard length-prefixes bytes,
/// not chars).
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9._-]{0,12}", "\\PC{0,6}"]
}

fn header() -> impl Strategy<Value = Header> {
    (text(), payload()).prop_map(|(key, value)| Header { key, value })
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        prop::option::of(payload()),
        payload(),
        prop::collection::vec(header(), 0..3),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(|(timestamp_ms, key, value, headers, tags)| Record { timestamp_ms, key, value, headers, tags })
}

fn producer_stamp() -> impl Strategy<Value = ProducerStamp> {
    (any::<u64>(), any::<u16>(), any::<u32>()).prop_map(|(id, epoch, seq)| ProducerStamp {
        producer_id: ProducerId(id),
        producer_epoch: ProducerEpoch(epoch),
        base_sequence: Sequence(seq),
    })
}

fn batch() -> impl Strategy<Value = RecordBatch> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        prop_oneof![Just(BatchKind::Data), Just(BatchKind::Control)],
        prop::option::of(producer_stamp()),
        prop::collection::vec(record(), 0..4),
    )
        .prop_map(|(base, epoch, append_time_ms, kind, producer, records)| RecordBatch {
            base_offset: Offset(base),
            leader_epoch: LeaderEpoch(epoch),
            append_time_ms,
            kind,
            producer,
            records,
        })
}

fn topic_config() -> impl Strategy<Value = TopicConfig> {
    (
        text(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        prop::option::of(any::<u64>().prop_map(Duration::from_nanos)),
        prop::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(name, partitions, rf, min_isr, retention_time, retention_bytes, unclean)| TopicConfig {
            name,
            partitions,
            replication_factor: rf,
            min_insync_replicas: min_isr,
            retention_time,
            retention_bytes,
            unclean_leader_election: unclean,
        })
}

fn acks() -> impl Strategy<Value = Acks> {
    prop_oneof![Just(Acks::None), Just(Acks::Leader), Just(Acks::All)]
}

fn offset_spec() -> impl Strategy<Value = OffsetSpec> {
    prop_oneof![Just(OffsetSpec::Earliest), Just(OffsetSpec::Latest), any::<u64>().prop_map(OffsetSpec::Timestamp)]
}

fn group_mode() -> impl Strategy<Value = GroupMode> {
    prop_oneof![
        Just(GroupMode::Exclusive(Assignor::Range)),
        Just(GroupMode::Exclusive(Assignor::RoundRobin)),
        Just(GroupMode::Exclusive(Assignor::Sticky)),
        Just(GroupMode::Shared),
        Just(GroupMode::KeyShared),
    ]
}

fn group_generation() -> impl Strategy<Value = GroupGeneration> {
    (any::<u32>(), any::<u32>())
        .prop_map(|(e, g)| GroupGeneration { coordinator_epoch: LeaderEpoch(e), generation: Generation(g) })
}

fn group_settings() -> impl Strategy<Value = GroupSettings> {
    (prop::collection::vec(text(), 0..3), any::<u64>(), any::<u32>(), any::<bool>()).prop_map(
        |(filter, t, n, latest)| GroupSettings {
            filter,
            ack_timeout: Duration::from_nanos(t),
            max_deliveries: n,
            start: if latest { StartPosition::Latest } else { StartPosition::Earliest },
        },
    )
}

fn members() -> impl Strategy<Value = Vec<(MemberId, u32)>> {
    prop::collection::vec((any::<u64>().prop_map(MemberId), any::<u32>()), 0..4)
}

fn tp() -> impl Strategy<Value = TopicPartition> {
    (text(), any::<u32>()).prop_map(|(t, p)| TopicPartition::new(t, p))
}

fn delivery_request_body() -> impl Strategy<Value = RequestBody> {
    let view = (text(), any::<u64>(), group_generation(), group_mode(), group_settings(), members()).prop_map(
        |(group, m, generation, mode, settings, members)| GroupView {
            group,
            member: MemberId(m),
            generation,
            mode,
            settings,
            members,
        },
    );
    let fetch_mode = prop_oneof![
        any::<u64>().prop_map(|t| FetchMode::Pull { max_wait: Duration::from_nanos(t) }),
        any::<u32>().prop_map(|prefetch| FetchMode::Push { prefetch }),
    ];
    let ack_kind = prop_oneof![
        Just(AckKind::Ack),
        any::<u64>().prop_map(|t| AckKind::Nack { delay: Duration::from_nanos(t) }),
        Just(AckKind::Reject),
    ];
    let seek_to = prop_oneof![
        any::<u64>().prop_map(|o| SeekTo::Offset(Offset(o))),
        any::<u64>().prop_map(SeekTo::Timestamp),
        Just(SeekTo::Earliest),
        Just(SeekTo::Latest),
    ];
    prop_oneof![
        (view, tp(), any::<u32>(), fetch_mode).prop_map(|(view, tp, max_records, mode)| RequestBody::GroupFetch(
            GroupFetch { view, tp, max_records, mode }
        )),
        (
            text(),
            any::<u64>(),
            group_generation(),
            tp(),
            prop::collection::vec((any::<u64>().prop_map(Offset), ack_kind), 0..4),
            prop::option::of(any::<u64>().prop_map(Offset))
        )
            .prop_map(|(group, m, generation, tp, acks, up_to)| RequestBody::GroupAck(GroupAck {
                group,
                member: MemberId(m),
                generation,
                tp,
                acks,
                up_to
            })),
        (text(), any::<u64>(), group_generation(), tp(), seek_to).prop_map(|(group, m, generation, tp, to)| {
            RequestBody::GroupSeek(GroupSeek { group, member: MemberId(m), generation, tp, to })
        }),
    ]
}

fn grant() -> impl Strategy<Value = Grant> {
    let op = prop_oneof![Just(Operation::Produce), Just(Operation::Consume), Just(Operation::Admin)];
    let res = prop_oneof![text().prop_map(Resource::Topic), text().prop_map(Resource::Group), Just(Resource::Cluster)];
    (text(), op, res).prop_map(|(principal, operation, resource)| Grant { principal, operation, resource })
}

fn key() -> impl Strategy<Value = [u8; KEY_BYTES]> {
    any::<[u8; KEY_BYTES]>()
}

fn security_request_body() -> impl Strategy<Value = RequestBody> {
    let credential = (any::<[u8; 16]>(), key()).prop_map(|(salt, stored_key)| StoredCredential { salt, stored_key });
    prop_oneof![
        (text(), key()).prop_map(|(app_key, client_nonce)| RequestBody::AuthStart { app_key, client_nonce }),
        key().prop_map(|proof| RequestBody::AuthProof { proof }),
        (text(), credential).prop_map(|(app_key, credential)| RequestBody::PutPrincipal { app_key, credential }),
        text().prop_map(|app_key| RequestBody::DeletePrincipal { app_key }),
        grant().prop_map(RequestBody::PutAcl),
        grant().prop_map(RequestBody::DeleteAcl),
        Just(RequestBody::DescribeSecurity),
    ]
}

fn group_request_body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        text().prop_map(|group| RequestBody::FindCoordinator { group }),
        (text(), prop::option::of(any::<u64>()), prop::collection::vec(text(), 0..3), group_mode(), any::<u64>())
            .prop_map(|(group, member, topics, mode, t)| RequestBody::JoinGroup(JoinGroup {
                group,
                member: member.map(MemberId),
                topics,
                mode,
                session_timeout: Duration::from_nanos(t),
                settings: GroupSettings::default(),
                weight: 1,
            })),
        (text(), any::<u64>(), group_generation()).prop_map(|(group, m, generation)| RequestBody::Heartbeat {
            group,
            member: MemberId(m),
            generation
        }),
        (text(), any::<u64>()).prop_map(|(group, m)| RequestBody::LeaveGroup { group, member: MemberId(m) }),
    ]
}

fn request_body() -> impl Strategy<Value = RequestBody> {
    prop_oneof![
        topic_config().prop_map(RequestBody::CreateTopic),
        text().prop_map(|topic| RequestBody::DeleteTopic { topic }),
        Just(RequestBody::ListTopics),
        (text(), any::<u32>(), acks(), batch()).prop_map(|(topic, p, acks, batch)| RequestBody::Produce {
            topic,
            partition: PartitionId(p),
            acks,
            batch
        }),
        (text(), any::<u32>(), any::<u64>(), any::<u32>()).prop_map(|(topic, p, o, max_bytes)| RequestBody::Fetch {
            topic,
            partition: PartitionId(p),
            offset: Offset(o),
            max_bytes
        }),
        (text(), any::<u32>(), offset_spec()).prop_map(|(topic, p, spec)| RequestBody::ListOffsets {
            topic,
            partition: PartitionId(p),
            spec
        }),
        group_request_body(),
        delivery_request_body(),
        security_request_body(),
    ]
}

fn node_ids() -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::vec(any::<u32>().prop_map(NodeId), 0..4)
}

fn partition_info() -> impl Strategy<Value = PartitionInfo> {
    (any::<u32>(), prop::option::of(any::<u32>()), any::<u32>(), node_ids(), node_ids(), any::<u64>(), any::<u64>())
        .prop_map(|(p, leader, epoch, replicas, isr, start, hw)| PartitionInfo {
            partition: PartitionId(p),
            leader: leader.map(NodeId),
            leader_epoch: LeaderEpoch(epoch),
            replicas,
            isr,
            log_start: Offset(start),
            high_watermark: Offset(hw),
        })
}

fn topic_info() -> impl Strategy<Value = TopicInfo> {
    (topic_config(), prop::collection::vec(partition_info(), 0..3))
        .prop_map(|(config, partitions)| TopicInfo { config, partitions })
}

fn response_body() -> impl Strategy<Value = ResponseBody> {
    prop_oneof![
        Just(ResponseBody::TopicCreated),
        Just(ResponseBody::TopicDeleted),
        prop::collection::vec(topic_info(), 0..3).prop_map(ResponseBody::Topics),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(p, base, t)| ResponseBody::Produced {
            partition: PartitionId(p),
            base_offset: Offset(base),
            append_time_ms: t
        }),
        (any::<u32>(), any::<u64>(), any::<u64>(), prop::collection::vec(batch(), 0..3)).prop_map(
            |(p, hw, start, batches)| ResponseBody::Fetched {
                partition: PartitionId(p),
                high_watermark: Offset(hw),
                log_start: Offset(start),
                batches
            }
        ),
        any::<u64>().prop_map(|o| ResponseBody::Offset { offset: Offset(o) }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(n, p, e)| ResponseBody::Coordinator {
            coordinator: NodeId(n),
            partition: PartitionId(p),
            coordinator_epoch: LeaderEpoch(e)
        }),
        (any::<u64>(), group_generation(), prop::collection::vec((text(), any::<u32>()), 0..4), any::<u64>()).prop_map(
            |(m, generation, tps, hb)| ResponseBody::Joined(Joined {
                member: MemberId(m),
                generation,
                assignment: tps.into_iter().map(|(t, p)| TopicPartition::new(t, p)).collect(),
                heartbeat_interval: Duration::from_nanos(hb),
                settings: GroupSettings::default(),
                peers: vec![("t".to_string(), vec![(MemberId(m), 1)])],
            })
        ),
        (tp(), any::<u64>(), prop::collection::vec((any::<u64>(), any::<u32>(), record()), 0..3)).prop_map(
            |(tp, hw, rs)| ResponseBody::Delivered {
                tp,
                high_watermark: Offset(hw),
                records: rs
                    .into_iter()
                    .map(|(o, delivery, record)| DeliveredRecord { offset: Offset(o), delivery, record })
                    .collect(),
            }
        ),
        (
            tp(),
            any::<u64>(),
            prop::collection::vec((any::<u64>().prop_map(Offset), prop::sample::select(ERROR_CODES.to_vec())), 0..3)
        )
            .prop_map(|(tp, p, refused)| ResponseBody::Acked { tp, prefix: Offset(p), refused }),
        (tp(), any::<u64>()).prop_map(|(tp, o)| ResponseBody::Sought { tp, offset: Offset(o) }),
        (any::<[u8; 16]>(), key()).prop_map(|(salt, server_nonce)| ResponseBody::AuthChallenge { salt, server_nonce }),
        text().prop_map(|principal| ResponseBody::Authenticated { principal }),
        Just(ResponseBody::SecurityUpdated),
        (prop::collection::vec(text(), 0..3), prop::collection::vec(grant(), 0..3))
            .prop_map(|(principals, grants)| ResponseBody::Security { principals, grants }),
        Just(ResponseBody::HeartbeatOk),
        Just(ResponseBody::Left),
    ]
}

fn wire_error() -> impl Strategy<Value = WireError> {
    (prop::sample::select(ERROR_CODES.to_vec()), text()).prop_map(|(code, message)| WireError::new(code, message))
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), request_body())
            .prop_map(|(c, body)| Message::Request(Request { correlation: CorrelationId(c), body })),
        (any::<u64>(), response_body())
            .prop_map(|(c, body)| Message::Response(Response { correlation: CorrelationId(c), body: Ok(body) })),
        (any::<u64>(), wire_error())
            .prop_map(|(c, e)| Message::Response(Response { correlation: CorrelationId(c), body: Err(e) })),
    ]
}

/// A frame built by hand around any payload: right length, version and CRC.
fn frame_around(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    frame.extend_from_slice(&((payload.len() + FRAME_HEADER_BYTES - 4) as u32).to_be_bytes());
    frame.push(FRAME_VERSION);
    frame.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn decode_all(buf: &[u8]) -> Result<Option<(Message, usize)>, CodecError> {
    decode_frame(buf, DEFAULT_MAX_FRAME_BYTES)
}

/// Asserts that a decoded message re-encodes into a frame that decodes to itself.
fn assert_reencodes(msg: &Message) -> Result<(), TestCaseError> {
    let again = frame_bytes(msg).map_err(|e| TestCaseError::fail(format!("re-encoding failed: {e}")))?;
    let (back, used) = decode_all(&again).unwrap().expect("a whole frame decodes");
    prop_assert_eq!(&back, msg);
    prop_assert_eq!(used, again.len());
    Ok(())
}

// ----- frames -----

proptest! {
    #[test]
    fn every_message_round_trips_through_a_frame(msg in message()) {
        let frame = frame_bytes(&msg).unwrap();
        let declared = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        prop_assert_eq!(declared, frame.len() - 4, "the length counts the bytes after itself");
        prop_assert_eq!(frame[4], FRAME_VERSION);
        prop_assert_eq!(&frame[5..9], &crc32c::crc32c(&frame[FRAME_HEADER_BYTES..]).to_be_bytes()[..]);
        let (back, used) = decode_all(&frame).unwrap().expect("a whole frame decodes");
        prop_assert_eq!(back, msg);
        prop_assert_eq!(used, frame.len());
    }

    #[test]
    fn encode_appends_after_existing_bytes(prefix in prop::collection::vec(any::<u8>(), 0..16), msg in message()) {
        let mut out = prefix.clone();
        encode_frame(&msg, DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &frame_bytes(&msg).unwrap()[..]);
    }

    #[test]
    fn a_stream_of_frames_decodes_frame_by_frame(msgs in prop::collection::vec(message(), 1..5), tail in 0usize..8) {
        let mut stream = Vec::new();
        for m in &msgs {
            encode_frame(m, DEFAULT_MAX_FRAME_BYTES, &mut stream).unwrap();
        }
        // Part of one more frame: the decoder must wait for it, not misread it.
        let extra = frame_bytes(&msgs[0]).unwrap();
        stream.extend_from_slice(&extra[..tail.min(extra.len() - 1)]);
        let mut pos = 0;
        for m in &msgs {
            let (got, used) = decode_all(&stream[pos..]).unwrap().expect("a whole frame is there");
            prop_assert_eq!(&got, m);
            pos += used;
        }
        prop_assert_eq!(decode_all(&stream[pos..]), Ok(None));
    }

    #[test]
    fn every_truncation_of_a_frame_asks_for_more(msg in message()) {
        let frame = frame_bytes(&msg).unwrap();
        for cut in 0..frame.len() {
            prop_assert_eq!(decode_all(&frame[..cut]), Ok(None), "cut at {} of {}", cut, frame.len());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_decode_without_a_valid_crc(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        limit in 0usize..128,
    ) {
        match decode_frame(&bytes, limit) {
            Ok(None) | Err(_) => {}
            Ok(Some((msg, used))) => {
                prop_assert!(used <= bytes.len());
                let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
                prop_assert!(len <= limit && used == len + 4);
                prop_assert_eq!(&crc32c::crc32c(&bytes[FRAME_HEADER_BYTES..used]).to_be_bytes()[..], &bytes[5..9]);
                assert_reencodes(&msg)?;
            }
        }
    }

    /// Random payloads inside a well-formed header get past the CRC and exercise the
    /// message decoder itself: it must reject them cleanly or decode something that
    /// round-trips.
    #[test]
    fn arbitrary_payloads_in_a_valid_frame_decode_or_are_malformed(
        payload in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        let frame = frame_around(&payload);
        match decode_all(&frame) {
            Ok(Some((msg, used))) => {
                prop_assert_eq!(used, frame.len());
                assert_reencodes(&msg)?;
            }
            Err(CodecError::Malformed(_)) => {}
            other => prop_assert!(false, "a frame with a valid header gave {:?}", other),
        }
    }

    /// Near-valid payloads (one byte of a real message changed, CRC recomputed) reach
    /// deep into the decoder.
    #[test]
    fn mutated_payloads_with_a_fixed_crc_decode_or_are_malformed(
        msg in message(),
        at in any::<Index>(),
        value in any::<u8>(),
        cut in any::<Index>(),
    ) {
        let frame = frame_bytes(&msg).unwrap();
        let mut payload = frame[FRAME_HEADER_BYTES..].to_vec();
        let i = at.index(payload.len());
        payload[i] = value;
        payload.truncate(cut.index(payload.len() + 1).max(i + 1));
        match decode_all(&frame_around(&payload)) {
            Ok(Some((got, _))) => assert_reencodes(&got)?,
            Err(CodecError::Malformed(_)) => {}
            other => prop_assert!(false, "a frame with a valid header gave {:?}", other),
        }
    }

    #[test]
    fn any_flipped_bit_is_rejected(msg in message(), at in any::<Index>(), bit in 0u8..8) {
        let frame = frame_bytes(&msg).unwrap();
        let i = at.index(frame.len());
        let mut bad = frame.clone();
        bad[i] ^= 1 << bit;
        let old_len = frame.len() - 4;
        let new_len = u32::from_be_bytes(bad[..4].try_into().unwrap()) as usize;
        let result = decode_all(&bad);
        match i {
            0..=3 => match result {
                // A longer length leaves the decoder waiting or over the limit.
                Ok(None) => prop_assert!(new_len > old_len && new_len <= DEFAULT_MAX_FRAME_BYTES),
                Err(CodecError::TooLarge { len, .. }) => prop_assert!(len == new_len && new_len > DEFAULT_MAX_FRAME_BYTES),
                Err(CodecError::TooShort { len }) => prop_assert!(len == new_len && new_len < FRAME_HEADER_BYTES - 4),
                // A shorter length makes the CRC cover a different range.
                Err(CodecError::Checksum { .. }) => prop_assert!(new_len < old_len),
                other => prop_assert!(false, "flipped length bit gave {:?}", other),
            },
            4 => prop_assert_eq!(result, Err(CodecError::UnsupportedVersion { version: bad[4] })),
            _ => prop_assert!(matches!(result, Err(CodecError::Checksum { .. })), "byte {} gave {:?}", i, result),
        }
    }

    #[test]
    fn the_frame_limit_is_honoured_on_both_sides(
        msg in message(),
        prefix in prop::collection::vec(any::<u8>(), 0..8),
        slack in -64i64..64,
    ) {
        let frame = frame_bytes(&msg).unwrap();
        let len = frame.len() - 4;
        let limit = (len as i64 + slack).max(0) as usize;
        let mut out = prefix.clone();
        let encoded = encode_frame(&msg, limit, &mut out);
        if len <= limit {
            prop_assert!(encoded.is_ok());
            prop_assert_eq!(&out[prefix.len()..], &frame[..]);
            prop_assert_eq!(decode_frame(&frame, limit).unwrap().map(|(m, _)| m), Some(msg));
        } else {
            prop_assert!(matches!(encoded, Err(CodecError::Encode(_))));
            prop_assert_eq!(out, prefix, "a refused encode leaves the buffer as it was");
            // The length alone is enough to refuse: no payload is read or allocated.
            for cut in [4, frame.len()] {
                prop_assert_eq!(decode_frame(&frame[..cut], limit), Err(CodecError::TooLarge { len, max: limit }));
            }
        }
    }
}

#[test]
fn error_codes_keep_their_wire_tags() {
    // Codes are only ever appended (docs/protocol.md): a reordering breaks old peers.
    for (tag, code) in ERROR_CODES.iter().enumerate() {
        assert_eq!(postcard::to_allocvec(code).unwrap(), vec![tag as u8], "{code:?}");
    }
}

#[test]
fn a_length_below_the_header_is_refused() {
    for len in 0u32..(FRAME_HEADER_BYTES as u32 - 4) {
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&[FRAME_VERSION, 0, 0, 0, 0]);
        assert_eq!(decode_all(&frame), Err(CodecError::TooShort { len: len as usize }));
    }
}

// ----- stored batches -----

fn encode_batches(batches: &[RecordBatch]) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for b in batches {
        encode_stored_batch(b, &mut buf);
        ends.push(buf.len());
    }
    (buf, ends)
}

proptest! {
    #[test]
    fn stored_batches_round_trip(batches in prop::collection::vec(batch(), 0..5)) {
        let (buf, ends) = encode_batches(&batches);
        let read = decode_stored_batches(&buf);
        prop_assert_eq!(&read.batches, &batches);
        let starts: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).take(batches.len()).collect();
        prop_assert_eq!(read.positions, starts);
        prop_assert_eq!(read.valid_len, buf.len());
        prop_assert_eq!(read.tail, StoredTail::Clean);
        for (i, b) in batches.iter().enumerate() {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            let len = u32::from_be_bytes(buf[start..start + 4].try_into().unwrap()) as usize;
            prop_assert_eq!(start + 4 + len, ends[i]);
            let payload = &buf[start + BATCH_HEADER_BYTES..ends[i]];
            prop_assert_eq!(&buf[start + 4..start + 8], &crc32c::crc32c(payload).to_be_bytes()[..]);
            prop_assert_eq!(&postcard::from_bytes::<RecordBatch>(payload).unwrap(), b);
        }
    }

    #[test]
    fn a_cut_keeps_exactly_the_batches_wholly_before_it(
        batches in prop::collection::vec(batch(), 1..5),
        cut in any::<Index>(),
    ) {
        let (buf, ends) = encode_batches(&batches);
        let cut = cut.index(buf.len() + 1);
        let whole = ends.iter().take_while(|&&e| e <= cut).count();
        let valid_len = if whole == 0 { 0 } else { ends[whole - 1] };
        let read = decode_stored_batches(&buf[..cut]);
        prop_assert_eq!(&read.batches[..], &batches[..whole]);
        prop_assert_eq!(read.valid_len, valid_len);
        let expected_tail =
            if cut == valid_len { StoredTail::Clean } else { StoredTail::Torn { bytes: cut - valid_len } };
        prop_assert_eq!(read.tail, expected_tail);
    }

    #[test]
    fn a_flipped_stored_bit_drops_its_batch_and_everything_after(
        batches in prop::collection::vec(batch(), 1..5),
        at in any::<Index>(),
        bit in 0u8..8,
    ) {
        let (mut buf, ends) = encode_batches(&batches);
        let i = at.index(buf.len());
        buf[i] ^= 1 << bit;
        let hit = ends.iter().take_while(|&&e| e <= i).count();
        let start = if hit == 0 { 0 } else { ends[hit - 1] };
        let read = decode_stored_batches(&buf);
        prop_assert_eq!(&read.batches[..], &batches[..hit]);
        prop_assert_eq!(read.valid_len, start);
        match read.tail {
            StoredTail::Corrupt { bytes, .. } => prop_assert_eq!(bytes, buf.len() - start),
            // Only a longer length field can make a damaged batch look torn.
            StoredTail::Torn { bytes } => {
                prop_assert!(i < start + 4, "torn tail from a flip at {} in the batch at {}", i, start);
                prop_assert_eq!(bytes, buf.len() - start);
            }
            StoredTail::Clean => prop_assert!(false, "a flipped bit went unnoticed"),
        }
    }
}
