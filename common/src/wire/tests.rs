//! Codec tests: round trips, pinned variant indexes, hostile input, partial input and
//! version refusal.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use serde::Serialize;
use tokio::io::{AsyncRead, ReadBuf};

use super::*;
use crate::ids::{AgentId, JobId};
use crate::secret::Password;

fn agent_id() -> AgentId {
    AgentId::new("agent-1").expect("valid id")
}

fn sample_result() -> JobResult {
    JobResult {
        id: JobId(7),
        outcome: JobOutcome::Echo {
            payload: vec![1, 2, 3],
        },
    }
}

fn agent_messages() -> Vec<AgentMessage> {
    vec![
        AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: "0.1.0".into(),
            site: "site-a".into(),
            capabilities: vec!["ssh".into(), "local".into()],
            unacknowledged_results: vec![
                sample_result(),
                JobResult {
                    id: JobId(u128::MAX),
                    outcome: JobOutcome::Failed(JobFailure {
                        certainty: FailureCertainty::Unknown,
                        message: "timeout after sending".into(),
                    }),
                },
            ],
        }),
        AgentMessage::Enroll(EnrollRequest {
            protocol_version: PROTOCOL_VERSION,
            token: Password::new("enroll-token"),
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\n".into(),
            agent_version: "0.1.0".into(),
        }),
        AgentMessage::Heartbeat { seq: u64::MAX },
        AgentMessage::Pong { nonce: 42 },
        AgentMessage::OtpVerify(OtpVerifyRequest {
            protocol_version: PROTOCOL_VERSION,
            otp: Password::new("otp-123456"),
            username: "app1".into(),
            host_addresses: vec!["10.0.4.7".into()],
            client_addr: Some("10.0.9.1".into()),
        }),
        AgentMessage::Metrics(AgentMetrics {
            uptime_secs: 3600,
            rss_bytes: 14 << 20,
            peak_rss_bytes: 15 << 20,
            jobs_running: 2,
            jobs_succeeded: 1000,
            jobs_failed: 3,
            journal_unacknowledged: 1,
            links_established: 2,
        }),
        AgentMessage::Results(vec![JobResult {
            id: JobId(7),
            outcome: JobOutcome::Echo {
                payload: b"late".to_vec(),
            },
        }]),
    ]
}

fn controller_messages() -> Vec<ControllerMessage> {
    vec![
        ControllerMessage::Welcome {
            agent_id: agent_id(),
            heartbeat_interval_ms: 5_000,
            missed_beats_allowed: 3,
        },
        ControllerMessage::Refused {
            reason: "revoked".into(),
        },
        ControllerMessage::Enrolled {
            agent_id: agent_id(),
            site: "site-a".into(),
            certificate_pem: "cert".into(),
            ca_pem: "ca".into(),
        },
        ControllerMessage::Heartbeat { seq: 1 },
        ControllerMessage::Ping { nonce: 9 },
        ControllerMessage::AckResults {
            ids: vec![JobId(1), JobId(u128::MAX)],
        },
        ControllerMessage::OtpVerdict {
            valid: false,
            reason: "expired".into(),
        },
    ]
}

fn job_replies() -> Vec<JobReply> {
    vec![
        JobReply::Accepted { id: JobId(3) },
        JobReply::Result(sample_result()),
        JobReply::Result(JobResult {
            id: JobId(4),
            outcome: JobOutcome::Failed(JobFailure {
                certainty: FailureCertainty::BeforeChange,
                message: "connection refused".into(),
            }),
        }),
    ]
}

fn jobs() -> Vec<Job> {
    vec![
        Job {
            id: JobId(5),
            deadline_unix_ms: 1_700_000_000_000,
            kind: JobKind::Echo { payload: vec![] },
        },
        Job {
            id: JobId::generate(),
            deadline_unix_ms: 0,
            kind: JobKind::Echo {
                payload: vec![0xff; 1000],
            },
        },
    ]
}

fn round_trip<T>(message: &T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let frame = encode_frame(message).expect("encode");
    let (decoded, consumed) = decode_frame::<T>(&frame)
        .expect("decode")
        .expect("whole frame");
    assert_eq!(&decoded, message);
    assert_eq!(consumed, frame.len());
    let payload_len = u32::from_be_bytes(frame[..4].try_into().expect("prefix")) as usize;
    assert_eq!(payload_len + FRAME_HEADER_LEN, frame.len());
}

#[test]
fn every_message_round_trips() {
    agent_messages().iter().for_each(round_trip);
    controller_messages().iter().for_each(round_trip);
    job_replies().iter().for_each(round_trip);
    jobs().iter().for_each(round_trip);
}

#[test]
fn variant_indexes_are_pinned() {
    // The first payload byte is the variant index (a one-byte varint for small indexes).
    let first_byte = |frame: Vec<u8>| frame[FRAME_HEADER_LEN];
    let agent: Vec<u8> = agent_messages()
        .iter()
        .map(|message| first_byte(encode_frame(message).expect("encode")))
        .collect();
    assert_eq!(agent, [0, 1, 2, 3, 4, 5, 6]);
    let controller: Vec<u8> = controller_messages()
        .iter()
        .map(|message| first_byte(encode_frame(message).expect("encode")))
        .collect();
    assert_eq!(controller, [0, 1, 2, 3, 4, 5, 6]);
    let replies: Vec<u8> = job_replies()
        .iter()
        .map(|message| first_byte(encode_frame(message).expect("encode")))
        .collect();
    assert_eq!(replies, [0, 1, 1]);
}

#[test]
fn debug_of_messages_hides_secrets() {
    let rendered = format!("{:?}", agent_messages());
    assert!(!rendered.contains("enroll-token"), "{rendered}");
    assert!(!rendered.contains("otp-123456"), "{rendered}");
    assert!(rendered.contains("app1"));
}

#[test]
fn oversized_prefix_is_refused_before_reading_the_payload() {
    let prefix = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
    match decode_frame::<AgentMessage>(&prefix) {
        Err(FrameError::TooLarge { len, max }) => {
            assert_eq!(len, MAX_FRAME_LEN + 1);
            assert_eq!(max, MAX_FRAME_LEN);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        decode_frame::<AgentMessage>(&[0xff; 4]),
        Err(FrameError::TooLarge { len, .. }) if len == u32::MAX as usize
    ));
    // Exactly the limit is allowed (and just needs more bytes).
    let at_limit = (MAX_FRAME_LEN as u32).to_be_bytes();
    assert!(matches!(decode_frame::<AgentMessage>(&at_limit), Ok(None)));
}

/// A reader that serves `data` and fails the test if asked for anything beyond it.
struct ExactReader {
    data: Vec<u8>,
    position: usize,
}

impl AsyncRead for ExactReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        assert!(
            self.position < self.data.len(),
            "read past the length prefix"
        );
        let count = buffer.remaining().min(self.data.len() - self.position);
        let start = self.position;
        buffer.put_slice(&self.data[start..start + count]);
        self.position += count;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn read_frame_refuses_oversized_prefix_without_reading_on() {
    let mut reader = ExactReader {
        data: u32::MAX.to_be_bytes().to_vec(),
        position: 0,
    };
    let result = read_frame::<_, AgentMessage>(&mut reader).await;
    assert!(
        matches!(result, Err(FrameError::TooLarge { .. })),
        "{result:?}"
    );
}

#[test]
fn encoding_an_oversized_message_is_refused() {
    let job = Job {
        id: JobId(1),
        deadline_unix_ms: 0,
        kind: JobKind::Echo {
            payload: vec![0; MAX_FRAME_LEN],
        },
    };
    assert!(matches!(
        encode_frame(&job),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn truncated_input_needs_more_bytes() {
    let frame = encode_frame(&controller_messages()[0]).expect("encode");
    for cut in 0..frame.len() {
        assert!(
            matches!(decode_frame::<ControllerMessage>(&frame[..cut]), Ok(None)),
            "cut at {cut}"
        );
    }
}

#[tokio::test]
async fn read_frame_reports_truncation_and_clean_eof() {
    let frame = encode_frame(&AgentMessage::Heartbeat { seq: 300 }).expect("encode");

    let mut empty: &[u8] = &[];
    assert!(matches!(
        read_frame::<_, AgentMessage>(&mut empty).await,
        Ok(None)
    ));

    let mut half_prefix: &[u8] = &frame[..2];
    match read_frame::<_, AgentMessage>(&mut half_prefix).await {
        Err(FrameError::Truncated {
            expected: 4,
            got: 2,
        }) => {}
        other => panic!("expected Truncated in the prefix, got {other:?}"),
    }

    let mut half_body: &[u8] = &frame[..frame.len() - 1];
    match read_frame::<_, AgentMessage>(&mut half_body).await {
        Err(FrameError::Truncated { expected, got }) => {
            assert_eq!(expected, frame.len());
            assert_eq!(got, frame.len() - 1);
        }
        other => panic!("expected Truncated in the body, got {other:?}"),
    }
}

#[test]
fn trailing_bytes_inside_a_payload_are_malformed() {
    let mut frame = encode_frame(&AgentMessage::Pong { nonce: 1 }).expect("encode");
    frame.push(0);
    let payload_len = (frame.len() - FRAME_HEADER_LEN) as u32;
    frame[..4].copy_from_slice(&payload_len.to_be_bytes());
    assert!(matches!(
        decode_frame::<AgentMessage>(&frame),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn malformed_errors_do_not_echo_payload_bytes() {
    // An Enroll whose token is followed by garbage instead of a valid csr string length.
    let mut payload = postcard::to_stdvec(&AgentMessage::Enroll(EnrollRequest {
        protocol_version: 1,
        token: Password::new("tok-secret"),
        csr_pem: String::new(),
        agent_version: String::new(),
    }))
    .expect("encode");
    payload.truncate(payload.len() - 2);
    payload.push(0xff);
    let error = decode_payload::<AgentMessage>(&payload).expect_err("malformed");
    assert!(!error.to_string().contains("tok-secret"), "{error}");
}

fn concatenated_frames() -> (Vec<u8>, Vec<AgentMessage>) {
    let messages = agent_messages();
    let mut stream = Vec::new();
    for message in &messages {
        stream.extend(encode_frame(message).expect("encode"));
    }
    (stream, messages)
}

#[test]
fn byte_at_a_time_feeding_reassembles() {
    let (stream, messages) = concatenated_frames();
    let mut buffer = Vec::new();
    let mut decoded = Vec::new();
    for byte in stream {
        buffer.push(byte);
        while let Some((message, consumed)) = decode_frame::<AgentMessage>(&buffer).expect("decode")
        {
            decoded.push(message);
            buffer.drain(..consumed);
        }
    }
    assert!(buffer.is_empty());
    assert_eq!(decoded, messages);
}

#[test]
fn split_at_every_position_reassembles() {
    let (stream, messages) = concatenated_frames();
    for split in 0..=stream.len() {
        let mut buffer = Vec::new();
        let mut decoded = Vec::new();
        for chunk in [&stream[..split], &stream[split..]] {
            buffer.extend_from_slice(chunk);
            while let Some((message, consumed)) =
                decode_frame::<AgentMessage>(&buffer).expect("decode")
            {
                decoded.push(message);
                buffer.drain(..consumed);
            }
        }
        assert_eq!(decoded, messages, "split at {split}");
    }
}

/// A reader that hands out one byte per read call.
struct TrickleReader {
    data: Vec<u8>,
    position: usize,
}

impl AsyncRead for TrickleReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.position < self.data.len() && buffer.remaining() > 0 {
            let byte = self.data[self.position];
            buffer.put_slice(&[byte]);
            self.position += 1;
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn read_frame_reassembles_a_trickle() {
    let (stream, messages) = concatenated_frames();
    let mut reader = TrickleReader {
        data: stream,
        position: 0,
    };
    let mut decoded = Vec::new();
    while let Some(message) = read_frame::<_, AgentMessage>(&mut reader)
        .await
        .expect("read")
    {
        decoded.push(message);
    }
    assert_eq!(decoded, messages);
}

#[tokio::test]
async fn write_then_read_over_a_pipe() {
    let (mut client, mut server) = tokio::io::duplex(64);
    let writer = tokio::spawn(async move {
        for message in controller_messages() {
            write_frame(&mut client, &message).await.expect("write");
        }
    });
    let mut received = Vec::new();
    while let Some(message) = read_frame::<_, ControllerMessage>(&mut server)
        .await
        .expect("read")
    {
        received.push(message);
    }
    writer.await.expect("writer task");
    assert_eq!(received, controller_messages());
}

/// How a future protocol might lay out its Hello: same variant index and first field,
/// everything else different.
#[derive(Serialize)]
enum FutureAgentMessage {
    Hello {
        protocol_version: u16,
        features: Vec<u64>,
        flag: bool,
    },
}

#[test]
fn future_hello_is_identified_and_refused_clearly() {
    let payload = postcard::to_stdvec(&FutureAgentMessage::Hello {
        protocol_version: 99,
        features: vec![1, 2, 3],
        flag: true,
    })
    .expect("encode");
    assert_eq!(peek_protocol_version(&payload), Some(99));
    match decode_agent_first_frame(&payload) {
        Err(FirstFrameError::IncompatibleVersion { peer: 99, message }) => assert_eq!(
            message,
            "agent speaks rotor protocol 99, this controller speaks 3: upgrade the controller or install a matching agent"
        ),
        other => panic!("expected IncompatibleVersion, got {other:?}"),
    }
}

#[test]
fn peek_reads_every_first_frame_kind() {
    for message in agent_messages() {
        let payload = postcard::to_stdvec(&message).expect("encode");
        let expected = match message {
            AgentMessage::Hello(_) | AgentMessage::Enroll(_) | AgentMessage::OtpVerify(_) => {
                Some(PROTOCOL_VERSION)
            }
            AgentMessage::Heartbeat { .. }
            | AgentMessage::Pong { .. }
            | AgentMessage::Metrics(_)
            | AgentMessage::Results(_) => None,
        };
        assert_eq!(peek_protocol_version(&payload), expected, "{message:?}");
    }
    assert_eq!(peek_protocol_version(&[]), None);
    assert_eq!(peek_protocol_version(&[0]), None);
    // A version above 127 takes a multi-byte varint.
    let payload = postcard::to_stdvec(&FutureAgentMessage::Hello {
        protocol_version: 300,
        features: vec![],
        flag: false,
    })
    .expect("encode");
    assert_eq!(peek_protocol_version(&payload), Some(300));
}

#[test]
fn first_frame_acceptance() {
    for message in agent_messages() {
        let payload = postcard::to_stdvec(&message).expect("encode");
        let result = decode_agent_first_frame(&payload);
        match message {
            AgentMessage::Hello(_) | AgentMessage::Enroll(_) | AgentMessage::OtpVerify(_) => {
                assert_eq!(result.expect("first frame"), message)
            }
            AgentMessage::Heartbeat { .. }
            | AgentMessage::Pong { .. }
            | AgentMessage::Metrics(_)
            | AgentMessage::Results(_) => {
                assert!(
                    matches!(result, Err(FirstFrameError::UnexpectedMessage { .. })),
                    "{result:?}"
                )
            }
        }
    }
    assert!(matches!(
        decode_agent_first_frame(&[0xff, 0xff]),
        Err(FirstFrameError::Malformed(_))
    ));
}

#[test]
fn compatibility_messages() {
    assert_eq!(check_compatible(PROTOCOL_VERSION), Ok(()));
    // Version-1 agents (no Metrics) are still served.
    assert_eq!(check_compatible(1), Ok(()));
    let too_old = check_compatible(0).expect_err("version 0");
    assert!(too_old.contains("upgrade the agent"), "{too_old}");
    // Version-2 agents (no Results) too.
    assert_eq!(check_compatible(2), Ok(()));
    let too_new = check_compatible(4).expect_err("version 4");
    assert_eq!(
        too_new,
        "agent speaks rotor protocol 4, this controller speaks 3: upgrade the controller or install a matching agent"
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_frame::<AgentMessage>(&bytes);
        let _ = decode_frame::<ControllerMessage>(&bytes);
        let _ = decode_frame::<JobReply>(&bytes);
        let _ = decode_frame::<Job>(&bytes);
        let _ = peek_protocol_version(&bytes);
        let _ = decode_agent_first_frame(&bytes);
    }

    #[test]
    fn arbitrary_payloads_behind_a_valid_prefix_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..512)
    ) {
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        let _ = decode_frame::<AgentMessage>(&frame);
        let _ = decode_frame::<ControllerMessage>(&frame);
        let _ = decode_frame::<JobReply>(&frame);
        let _ = decode_frame::<Job>(&frame);
    }

    #[test]
    fn mutated_valid_frames_never_panic(index in 0usize..5, position in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut frame = encode_frame(&agent_messages()[index]).expect("encode");
        let at = position.index(frame.len());
        frame[at] = value;
        let _ = decode_frame::<AgentMessage>(&frame);
        let _ = decode_agent_first_frame(&frame[FRAME_HEADER_LEN..]);
    }
}

fn database_target() -> database::DatabaseTarget {
    database::DatabaseTarget {
        name: "database/config/pg".into(),
        host: "db.site-a".into(),
        port: 5432,
        database: "app".into(),
        username: "rotor".into(),
        password: Password::new("root-secret-pw"),
        ssl_mode: database::SslMode::VerifyFull,
        password_authentication: database::PasswordAuthentication::ScramSha256,
        ca_pem: Some("-----BEGIN CERTIFICATE-----\n".into()),
        connect_timeout_ms: 5000,
        statement_timeout_ms: 10_000,
        max_open_connections: 4,
        max_idle_connections: 2,
        max_connection_lifetime_secs: 0,
    }
}

#[test]
fn job_kind_and_outcome_variant_indexes_are_pinned() {
    use database::{DbJob, DbOutcome, RoleValues};
    let role = RoleValues {
        name: "v-token-ro-abc".into(),
        password: Some(Password::new("dynamic-secret-pw")),
        expiration: Some("2026-12-02 11:00:00+0000".into()),
    };
    let kinds = [
        JobKind::Echo { payload: vec![] },
        JobKind::Os(os::OsJob::RotateLocal {
            command: "/usr/sbin/chpasswd".into(),
            changes: vec![],
        }),
        JobKind::Database(DbJob::CreateRole {
            target: database_target(),
            role: role.clone(),
            statements: vec!["CREATE ROLE \"{{name}}\"".into()],
        }),
    ];
    let indexes: Vec<u8> = kinds
        .iter()
        .map(|kind| postcard::to_stdvec(kind).expect("encode")[0])
        .collect();
    assert_eq!(indexes, [0, 1, 2]);
    let outcomes = [
        JobOutcome::Echo { payload: vec![] },
        JobOutcome::Failed(JobFailure {
            certainty: FailureCertainty::BeforeChange,
            message: String::new(),
        }),
        JobOutcome::Os(os::OsOutcome::Login {
            accepted: None,
            host_key: None,
        }),
        JobOutcome::Database(DbOutcome::Created),
    ];
    let indexes: Vec<u8> = outcomes
        .iter()
        .map(|outcome| postcard::to_stdvec(outcome).expect("encode")[0])
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3]);

    let target = database_target;
    let jobs = [
        DbJob::Verify { target: target() },
        DbJob::CreateRole {
            target: target(),
            role: role.clone(),
            statements: vec![],
        },
        DbJob::RoleExists {
            target: target(),
            name: "x".into(),
        },
        DbJob::RevokeRole {
            target: target(),
            name: "x".into(),
            statements: vec![],
            terminate_sessions: true,
        },
        DbJob::RenewRole {
            target: target(),
            role: role.clone(),
            statements: vec![],
        },
        DbJob::SetPassword {
            target: target(),
            role: role.clone(),
            statements: vec![],
        },
        DbJob::RehearseCreation {
            target: target(),
            role,
            statements: vec![],
        },
    ];
    let indexes: Vec<u8> = jobs
        .iter()
        .map(|job| postcard::to_stdvec(job).expect("encode")[0])
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6]);
    let changing: Vec<bool> = jobs.iter().map(DbJob::changes_a_credential).collect();
    assert_eq!(changing, [false, true, false, true, true, true, false]);
    for job in jobs {
        let kind = JobKind::Database(job);
        round_trip(&Job {
            id: JobId(9),
            deadline_unix_ms: 1,
            kind: kind.clone(),
        });
        let rendered = format!("{kind:?}");
        assert!(!rendered.contains("root-secret-pw"), "{rendered}");
        assert!(!rendered.contains("dynamic-secret-pw"), "{rendered}");
    }
    let outcomes = [
        DbOutcome::Verified {
            server_version: "PostgreSQL 15".into(),
        },
        DbOutcome::Created,
        DbOutcome::RoleExists { exists: true },
        DbOutcome::Revoked {
            existed: true,
            sessions_terminated: 2,
        },
        DbOutcome::Renewed,
        DbOutcome::PasswordSet,
        DbOutcome::CreationRehearsed,
    ];
    let indexes: Vec<u8> = outcomes
        .iter()
        .map(|outcome| postcard::to_stdvec(outcome).expect("encode")[0])
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5, 6]);
}
