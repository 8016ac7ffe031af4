//! Secret value types: passwords, private keys and opaque secret bytes.
//!
//! Each type zeroizes its memory on drop, prints a placeholder in `Debug`, has no `Display`,
//! and offers exactly one greppable accessor, `expose()`. Serde sees the plain value because
//! secrets travel inside encrypted frames; this module must never log or format a value.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Compares two byte strings in time that depends only on their lengths, not on where they
/// first differ, so comparing a guessed secret reveals nothing about the real one.
fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    // aws-lc-rs wraps the C `CRYPTO_memcmp`, which the optimiser cannot short-circuit.
    left.len() == right.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(left, right).is_ok()
}

macro_rules! secret_string_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Wraps `value`; the wrapper zeroizes it on drop.
            pub fn new(value: impl Into<String>) -> Self {
                Self(Zeroizing::new(value.into()))
            }

            /// The secret itself. Every use is a place a secret leaves its wrapper: keep it
            /// out of logs, errors and process arguments.
            pub fn expose(&self) -> &str {
                self.0.as_str()
            }

            /// Whether the secret is the empty string.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            /// Constant-time in the contents (the length may leak).
            fn eq(&self, other: &Self) -> bool {
                constant_time_equal(self.0.as_bytes(), other.0.as_bytes())
            }
        }

        impl Eq for $name {}

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Zeroizing::new(value))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }
    };
}

secret_string_type!(
    /// A password or one-time password: an account's current or candidate password, an
    /// enrollment token, an OTP.
    Password
);

secret_string_type!(
    /// A private key in PEM form (PKCS#8 unless said otherwise).
    PrivateKeyPem
);

/// Opaque secret bytes: a sealing key, an HMAC key, a raw secret value.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps `value`; the wrapper zeroizes it on drop.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself. Every use is a place a secret leaves its wrapper.
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// Number of bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SecretBytes(<redacted>)")
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time in the contents (the length may leak).
    fn eq(&self, other: &Self) -> bool {
        constant_time_equal(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self(Zeroizing::new(value))
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;

        impl<'de> serde::de::Visitor<'de> for BytesVisitor {
            type Value = SecretBytes;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, value: &[u8]) -> Result<SecretBytes, E> {
                Ok(SecretBytes::new(value))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, value: Vec<u8>) -> Result<SecretBytes, E> {
                Ok(SecretBytes::from(value))
            }

            // Self-describing formats such as JSON write bytes as a sequence of numbers.
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut sequence: A,
            ) -> Result<SecretBytes, A::Error> {
                let mut bytes =
                    Zeroizing::new(Vec::with_capacity(sequence.size_hint().unwrap_or(0)));
                while let Some(byte) = sequence.next_element::<u8>()? {
                    bytes.push(byte);
                }
                Ok(SecretBytes(bytes))
            }
        }

        deserializer.deserialize_bytes(BytesVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let password = Password::new("hunter2-very-secret");
        let key = PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nMIIsecret\n");
        let bytes = SecretBytes::new(b"raw-secret-bytes".to_vec());
        let rendered = format!(
            "{password:?} {key:?} {bytes:?} {:#?}",
            (&password, &key, &bytes)
        );
        assert!(!rendered.contains("hunter2"), "{rendered}");
        assert!(!rendered.contains("MIIsecret"), "{rendered}");
        assert!(!rendered.contains("raw-secret"), "{rendered}");
        assert!(!rendered.contains("114, 97, 119"), "{rendered}"); // b"raw" as numbers
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
        assert_eq!(format!("{key:?}"), "PrivateKeyPem(<redacted>)");
        assert_eq!(format!("{bytes:?}"), "SecretBytes(<redacted>)");
    }

    #[test]
    fn debug_of_a_containing_struct_stays_redacted() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Request {
            user: String,
            password: Password,
        }
        let request = Request {
            user: "app1".into(),
            password: Password::new("s3cr3t!"),
        };
        let rendered = format!("{request:?}");
        assert!(rendered.contains("app1"));
        assert!(!rendered.contains("s3cr3t"));
    }

    #[test]
    fn expose_and_equality() {
        let password = Password::new("abc");
        assert_eq!(password.expose(), "abc");
        assert_eq!(password, Password::new(String::from("abc")));
        assert_ne!(password, Password::new("abd"));
        assert_ne!(password, Password::new("abcd"));
        assert_eq!(SecretBytes::new(vec![1, 2]), SecretBytes::new(vec![1, 2]));
        assert_ne!(SecretBytes::new(vec![1, 2]), SecretBytes::new(vec![1, 3]));
        assert_eq!(SecretBytes::new(vec![1, 2]).expose(), &[1, 2]);
    }

    #[test]
    fn serde_carries_the_plain_value() {
        let password = Password::new("pw with spaces");
        let encoded = postcard::to_stdvec(&password).expect("encode");
        let decoded: Password = postcard::from_bytes(&encoded).expect("decode");
        assert_eq!(decoded.expose(), "pw with spaces");
        assert_eq!(
            serde_json::to_string(&password).expect("json"),
            "\"pw with spaces\""
        );

        let bytes = SecretBytes::new(vec![0, 255, 7]);
        let encoded = postcard::to_stdvec(&bytes).expect("encode");
        let decoded: SecretBytes = postcard::from_bytes(&encoded).expect("decode");
        assert_eq!(decoded.expose(), &[0, 255, 7]);
        let json = serde_json::to_string(&bytes).expect("json");
        let decoded: SecretBytes = serde_json::from_str(&json).expect("json decode");
        assert_eq!(decoded, bytes);
    }
}
