//! SSH key material for the ssh engine: which key a request asks for (`key_type`/`key_bits`
//! of `config/ca` and `issue`), generating it, reading imported private keys and submitted
//! public keys, and the role's `allowed_user_key_lengths` policy.
//!
//! Must not sign (sign.rs) nor store (ca.rs) anything. Errors never carry key material.

use std::collections::BTreeMap;
use std::fmt;

use russh::keys::ssh_key::private::{EcdsaKeypair, KeypairData};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Algorithm, EcdsaCurve, PrivateKey, PublicKey};
use serde_json::Value;

/// A key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    Rsa { bits: u32 },
    Ecdsa { bits: u32 },
    Ed25519,
}

/// RSA sizes Rotor generates (aws-lc-rs offers exactly these below 8192).
const RSA_SIZES: [u32; 3] = [2048, 3072, 4096];
const EC_SIZES: [u32; 3] = [256, 384, 521];

impl KeySpec {
    /// Reads `key_type` and `key_bits`. Accepts the OpenSSH names (`ssh-rsa`,
    /// `ecdsa-sha2-nistp256/384/521`, `ssh-ed25519`) and the short ones (`rsa`, `ec`,
    /// `ed25519`). `key_bits` 0 (or absent) means `default_rsa_bits` for RSA and 256 for EC.
    pub fn parse(
        key_type: &str,
        key_bits: Option<i64>,
        default_rsa_bits: u32,
    ) -> Result<KeySpec, String> {
        let bits = match key_bits.unwrap_or(0) {
            bits if (0..=16_384).contains(&bits) => bits as u32,
            other => return Err(format!("field 'key_bits': {other} is not a key size")),
        };
        let named_curve = |curve_bits: u32| {
            if bits == 0 || bits == curve_bits {
                Ok(KeySpec::Ecdsa { bits: curve_bits })
            } else {
                Err(format!(
                    "field 'key_bits': {bits} contradicts key_type '{key_type}' (a {curve_bits}-bit curve); leave key_bits at 0"
                ))
            }
        };
        match key_type.trim() {
            "ssh-rsa" | "rsa" => {
                let bits = if bits == 0 { default_rsa_bits } else { bits };
                if RSA_SIZES.contains(&bits) {
                    Ok(KeySpec::Rsa { bits })
                } else {
                    Err(format!(
                        "field 'key_bits': RSA keys of {bits} bits are not offered; use 2048, 3072 or 4096"
                    ))
                }
            }
            "ec" | "ecdsa" => {
                let bits = if bits == 0 { 256 } else { bits };
                if EC_SIZES.contains(&bits) {
                    Ok(KeySpec::Ecdsa { bits })
                } else {
                    Err(format!(
                        "field 'key_bits': there is no {bits}-bit NIST curve; use 256, 384 or 521"
                    ))
                }
            }
            "ecdsa-sha2-nistp256" => named_curve(256),
            "ecdsa-sha2-nistp384" => named_curve(384),
            "ecdsa-sha2-nistp521" => named_curve(521),
            "ssh-ed25519" | "ed25519" => Ok(KeySpec::Ed25519),
            other => Err(format!(
                "field 'key_type': unknown key type '{other}'; use rsa, ec, ed25519 or an OpenSSH name (ssh-rsa, ecdsa-sha2-nistp256/384/521, ssh-ed25519)"
            )),
        }
    }

    /// The name `private_key_type` reports (`rsa`, `ec`, `ed25519`).
    pub fn short_name(self) -> &'static str {
        match self {
            KeySpec::Rsa { .. } => "rsa",
            KeySpec::Ecdsa { .. } => "ec",
            KeySpec::Ed25519 => "ed25519",
        }
    }

    /// What a key made from this spec will look like to the key-length policy.
    pub fn shape(self) -> KeyShape {
        match self {
            KeySpec::Rsa { bits } => KeyShape {
                family: KeyFamily::Rsa,
                bits,
            },
            KeySpec::Ecdsa { bits } => KeyShape {
                family: KeyFamily::Ecdsa,
                bits,
            },
            KeySpec::Ed25519 => KeyShape {
                family: KeyFamily::Ed25519,
                bits: 256,
            },
        }
    }
}

fn curve_for_bits(bits: u32) -> Result<EcdsaCurve, String> {
    match bits {
        256 => Ok(EcdsaCurve::NistP256),
        384 => Ok(EcdsaCurve::NistP384),
        521 => Ok(EcdsaCurve::NistP521),
        other => Err(format!("there is no {other}-bit NIST curve")),
    }
}

/// Generates a key pair. RSA comes from aws-lc-rs (ssh-key's pure-Rust RSA generation takes
/// many seconds in debug builds); EC and Ed25519 from ssh-key with the thread's CSPRNG.
/// Blocking: call from `spawn_blocking`.
pub fn generate(spec: KeySpec) -> Result<PrivateKey, String> {
    match spec {
        KeySpec::Rsa { bits } => {
            use aws_lc_rs::encoding::AsDer;
            let size = match bits {
                2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                other => return Err(format!("RSA keys of {other} bits are not offered")),
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size)
                .map_err(|_| "generating an RSA key failed in aws-lc".to_string())?;
            let der = pair
                .as_der()
                .map_err(|_| "encoding the new RSA key failed".to_string())?;
            russh::keys::pkcs8::decode_pkcs8(der.as_ref(), None)
                .map_err(|_| "converting the new RSA key to OpenSSH form failed".to_string())
        }
        KeySpec::Ecdsa { bits } => {
            let curve = curve_for_bits(bits)?;
            PrivateKey::random(&mut rand::rng(), Algorithm::Ecdsa { curve })
                .map_err(|error| format!("generating an ECDSA key failed: {error}"))
        }
        KeySpec::Ed25519 => PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .map_err(|error| format!("generating an Ed25519 key failed: {error}")),
    }
}

/// Reads an imported private key: OpenSSH (`BEGIN OPENSSH PRIVATE KEY`), PKCS#1 RSA,
/// PKCS#8 or SEC1 EC PEM. The error names the problem, never the key.
pub fn parse_private_key(text: &str) -> Result<PrivateKey, String> {
    let key = russh::keys::decode_secret_key(text.trim(), None).map_err(|error| match error {
        russh::keys::Error::KeyIsEncrypted => {
            "field 'private_key': the key is encrypted; decrypt it first (ssh-keygen -p -N '' -f FILE)"
                .to_string()
        }
        _ => "field 'private_key': not a private key Rotor can read; give it in OpenSSH format (-----BEGIN OPENSSH PRIVATE KEY-----) or as PEM (PKCS#1 RSA, PKCS#8, SEC1 EC)".to_string(),
    })?;
    match key.key_data() {
        KeypairData::Rsa(_) | KeypairData::Ed25519(_) => {}
        KeypairData::Ecdsa(pair) => match pair {
            EcdsaKeypair::NistP256 { .. }
            | EcdsaKeypair::NistP384 { .. }
            | EcdsaKeypair::NistP521 { .. } => {}
        },
        _ => {
            return Err(format!(
                "field 'private_key': a {} key cannot sign certificates here; use RSA, ECDSA or Ed25519",
                key.algorithm().as_str()
            ));
        }
    }
    Ok(key)
}

/// Reads an OpenSSH public key line (`ssh-ed25519 AAAA… comment`) given in `field`.
pub fn parse_public_key(field: &str, text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    if text.contains("-cert-v01@openssh.com") {
        return Err(format!(
            "field '{field}': this is a certificate, not a public key; send the key it certifies (the .pub file)"
        ));
    }
    if text.starts_with("-----") {
        return Err(format!(
            "field '{field}': expected an OpenSSH public key line such as 'ssh-ed25519 AAAA…', not PEM"
        ));
    }
    PublicKey::from_openssh(text).map_err(|error| {
        format!(
            "field '{field}': not an OpenSSH public key ({error}); expected a line such as 'ssh-ed25519 AAAA…'"
        )
    })
}

/// A key family as the key-length policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    Ecdsa,
    Ed25519,
    Other,
}

/// The family and size of a key, all the key-length policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyShape {
    pub family: KeyFamily,
    pub bits: u32,
}

impl KeyShape {
    pub fn of(key: &KeyData) -> KeyShape {
        match key {
            KeyData::Rsa(rsa) => KeyShape {
                family: KeyFamily::Rsa,
                bits: rsa.key_size(),
            },
            KeyData::Ecdsa(ecdsa) => KeyShape {
                family: KeyFamily::Ecdsa,
                bits: match ecdsa.curve() {
                    EcdsaCurve::NistP256 => 256,
                    EcdsaCurve::NistP384 => 384,
                    EcdsaCurve::NistP521 => 521,
                },
            },
            KeyData::Ed25519(_) => KeyShape {
                family: KeyFamily::Ed25519,
                bits: 256,
            },
            _ => KeyShape {
                family: KeyFamily::Other,
                bits: 0,
            },
        }
    }
}

impl fmt::Display for KeyShape {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.family {
            KeyFamily::Rsa => write!(formatter, "RSA key of {} bits", self.bits),
            KeyFamily::Ecdsa => write!(formatter, "ECDSA key on the {}-bit curve", self.bits),
            KeyFamily::Ed25519 => write!(formatter, "Ed25519 key"),
            KeyFamily::Other => write!(formatter, "key of a type Rotor cannot size"),
        }
    }
}

/// A role's `allowed_user_key_lengths`: key type name → allowed sizes. Empty allows any key.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AllowedKeyLengths(pub BTreeMap<String, Vec<u32>>);

/// Which family a policy entry names, and whether its name fixes the size.
fn entry_family(name: &str) -> Option<(KeyFamily, Option<u32>)> {
    match name {
        "rsa" | "ssh-rsa" => Some((KeyFamily::Rsa, None)),
        "ec" | "ecdsa" => Some((KeyFamily::Ecdsa, None)),
        "ecdsa-sha2-nistp256" => Some((KeyFamily::Ecdsa, Some(256))),
        "ecdsa-sha2-nistp384" => Some((KeyFamily::Ecdsa, Some(384))),
        "ecdsa-sha2-nistp521" => Some((KeyFamily::Ecdsa, Some(521))),
        "ed25519" | "ssh-ed25519" => Some((KeyFamily::Ed25519, Some(256))),
        _ => None,
    }
}

fn parse_sizes(name: &str, value: &Value) -> Result<Vec<u32>, String> {
    let bad = || {
        format!(
            "field 'allowed_user_key_lengths': the value for '{name}' must be a size, a list of sizes or a comma-separated string of sizes"
        )
    };
    let one = |value: &Value| -> Result<u32, String> {
        match value {
            Value::Number(number) => number
                .as_u64()
                .and_then(|size| u32::try_from(size).ok())
                .ok_or_else(bad),
            Value::String(text) => text.trim().parse::<u32>().map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        Value::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| item.parse::<u32>().map_err(|_| bad()))
            .collect(),
        other => one(other).map(|size| vec![size]),
    }
}

impl AllowedKeyLengths {
    /// Reads the JSON object a role write carries.
    pub fn parse(map: &serde_json::Map<String, Value>) -> Result<Self, String> {
        let mut allowed = BTreeMap::new();
        for (name, value) in map {
            let name = name.trim().to_string();
            if entry_family(&name).is_none() {
                return Err(format!(
                    "field 'allowed_user_key_lengths': unknown key type '{name}'; use rsa, ec, ecdsa-sha2-nistp256/384/521 or ed25519 (DSA keys are never signed)"
                ));
            }
            allowed.insert(name.clone(), parse_sizes(&name, value)?);
        }
        Ok(Self(allowed))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the role lets a key of this shape be signed; the error names the rule.
    pub fn check(&self, shape: KeyShape) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut family_listed = false;
        let mut sizes_offered = Vec::new();
        for (name, sizes) in &self.0 {
            let Some((family, fixed_bits)) = entry_family(name) else {
                continue;
            };
            if family != shape.family {
                continue;
            }
            family_listed = true;
            match fixed_bits {
                // The name fixes the size (a named curve, ed25519): its values are ignored.
                Some(bits) if bits == shape.bits => return Ok(()),
                Some(bits) => sizes_offered.push(bits),
                None if sizes.contains(&shape.bits) => return Ok(()),
                None => sizes_offered.extend(sizes),
            }
        }
        let listed: Vec<&str> = self.0.keys().map(String::as_str).collect();
        if !family_listed {
            return Err(format!(
                "key not allowed: the role's allowed_user_key_lengths does not list this {shape} (it allows: {})",
                listed.join(", ")
            ));
        }
        sizes_offered.sort_unstable();
        sizes_offered.dedup();
        let sizes: Vec<String> = sizes_offered.iter().map(u32::to_string).collect();
        Err(format!(
            "key too short or of a size not allowed: {shape}; the role's allowed_user_key_lengths allows sizes {}",
            sizes.join(", ")
        ))
    }

    /// As the role read shows it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.0).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_follow_the_reference_names_and_defaults() {
        assert_eq!(
            KeySpec::parse("ssh-rsa", None, 4096),
            Ok(KeySpec::Rsa { bits: 4096 })
        );
        assert_eq!(
            KeySpec::parse("rsa", Some(0), 2048),
            Ok(KeySpec::Rsa { bits: 2048 })
        );
        assert_eq!(
            KeySpec::parse("rsa", Some(3072), 2048),
            Ok(KeySpec::Rsa { bits: 3072 })
        );
        assert_eq!(
            KeySpec::parse("ec", None, 2048),
            Ok(KeySpec::Ecdsa { bits: 256 })
        );
        assert_eq!(
            KeySpec::parse("ec", Some(521), 2048),
            Ok(KeySpec::Ecdsa { bits: 521 })
        );
        assert_eq!(
            KeySpec::parse("ecdsa-sha2-nistp384", None, 2048),
            Ok(KeySpec::Ecdsa { bits: 384 })
        );
        assert_eq!(
            KeySpec::parse("ssh-ed25519", None, 2048),
            Ok(KeySpec::Ed25519)
        );
        for (key_type, bits, expected) in [
            ("rsa", 1024, "2048, 3072 or 4096"),
            ("ec", 512, "256, 384 or 521"),
            ("ecdsa-sha2-nistp256", 384, "contradicts"),
            ("dsa", 0, "unknown key type 'dsa'"),
        ] {
            let error = KeySpec::parse(key_type, Some(bits), 2048).expect_err(key_type);
            assert!(error.contains(expected), "{key_type}: {error}");
        }
    }

    #[test]
    fn generated_keys_have_the_requested_shape() {
        for spec in [
            KeySpec::Rsa { bits: 2048 },
            KeySpec::Ecdsa { bits: 384 },
            KeySpec::Ed25519,
        ] {
            let key = generate(spec).expect("generate");
            assert_eq!(KeyShape::of(key.public_key().key_data()), spec.shape());
        }
    }

    #[test]
    fn private_key_errors_never_echo_the_key() {
        let text = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END OPENSSH PRIVATE KEY-----\n";
        let error = parse_private_key(text).expect_err("garbage");
        assert!(!error.contains("c2VjcmV0"), "{error}");
        assert!(error.contains("OpenSSH format"), "{error}");
    }

    #[test]
    fn key_length_policy_by_family_and_size() {
        let map = serde_json::json!({"rsa": [3072, 4096], "ec": "256,384", "ssh-ed25519": 0});
        let policy = AllowedKeyLengths::parse(map.as_object().expect("object")).expect("parse");
        let rsa = |bits| KeyShape {
            family: KeyFamily::Rsa,
            bits,
        };
        assert!(policy.check(rsa(4096)).is_ok());
        let error = policy.check(rsa(2048)).expect_err("short");
        assert!(error.contains("key too short"), "{error}");
        assert!(error.contains("3072, 4096"), "{error}");
        assert!(
            policy
                .check(KeyShape {
                    family: KeyFamily::Ecdsa,
                    bits: 384
                })
                .is_ok()
        );
        assert!(
            policy
                .check(KeyShape {
                    family: KeyFamily::Ecdsa,
                    bits: 521
                })
                .is_err()
        );
        assert!(policy.check(KeySpec::Ed25519.shape()).is_ok());

        let only_p256 = serde_json::json!({"ecdsa-sha2-nistp256": 0});
        let policy =
            AllowedKeyLengths::parse(only_p256.as_object().expect("object")).expect("parse");
        assert!(policy.check(KeySpec::Ecdsa { bits: 256 }.shape()).is_ok());
        let error = policy
            .check(KeySpec::Ed25519.shape())
            .expect_err("not listed");
        assert!(error.contains("does not list this Ed25519 key"), "{error}");

        let bad = serde_json::json!({"dsa": 1024});
        assert!(AllowedKeyLengths::parse(bad.as_object().expect("object")).is_err());
        assert!(AllowedKeyLengths::default().check(rsa(1024)).is_ok());
    }
}
