//! Wire types and the frame codec shared by inter-broker and client traffic
//! (docs/protocol.md).

pub mod codec;
mod error;
mod group;
mod message;
mod record;

pub use codec::{decode_frame, encode_frame, frame_bytes, CodecError, DEFAULT_MAX_FRAME_BYTES};
pub use error::{ErrorCode, WireError};
pub use group::{
    AckKind, DeliveredRecord, FetchMode, GroupAck, GroupFetch, GroupSeek, GroupSettings, GroupView, SeekTo,
    StartPosition,
};
pub use message::{
    Acks, ControllerReply, JoinGroup, Joined, Message, OffsetSpec, PartitionInfo, PeerMessage, ReplicaData,
    ReplicaFetch, Request, RequestBody, Response, ResponseBody, TopicConfig, TopicInfo,
};
pub use record::{BatchKind, Header, ProducerStamp, Record, RecordBatch, BATCH_OVERHEAD_BYTES, RECORD_OVERHEAD_BYTES};
