//! The shape of a one-time password: what the controller issues (128 random bits as
//! lowercase hex in the 8-4-4-4-12 UUID layout, as Vault's SSH OTPs look) and the only
//! thing the agent's PAM helper forwards to it.
//!
//! The helper runs for every password typed at sshd, the account's own password included.
//! Checking the shape first means a real password never leaves the host and costs no round
//! trip. Must stay in step with the controller's generator (its tests check both).

/// Whether `text` has the shape of an OTP the controller issues.
pub fn otp_shaped(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(byte),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_issued_layout_passes() {
        assert!(otp_shaped("0f4c2a9e-17b3-4d5e-8a6f-0123456789ab"));
        for not_an_otp in [
            "",
            "App1-static-1",
            "correct horse battery staple",
            "0F4C2A9E-17B3-4D5E-8A6F-0123456789AB",
            "0f4c2a9e-17b3-4d5e-8a6f-0123456789a",
            "0f4c2a9e-17b3-4d5e-8a6f-0123456789abc",
            "0f4c2a9e17b3-4d5e-8a6f-0123456789ab-",
            "0f4c2a9e-17b3-4d5e-8a6f-0123456789ag",
            "0f4c2a9é-17b3-4d5e-8a6f-0123456789a",
        ] {
            assert!(!otp_shaped(not_an_otp), "{not_an_otp}");
        }
    }
}
