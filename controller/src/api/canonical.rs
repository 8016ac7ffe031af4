//! The one spelling of a request path that routing, the ACL, audit and logs all use.
//!
//! A path reaches the API in many spellings (`os//hosts`, `os/./hosts`, `os%2Fhosts`, a
//! trailing `/`). If the router and the ACL read different spellings, a policy that denies one
//! spelling is bypassed by another (issue 15: `os//hosts/h1/accounts/mgmt-user/creds` read a
//! password its caller was denied). So the path is made canonical once, before anything else
//! looks at it: percent escapes decoded (as Vault's Go server does), empty and `.` segments
//! dropped, a trailing `/` removed; `..`, control characters and malformed escapes are refused
//! with a 400. Names the store folds to lowercase (ACL policy names) are folded here too, so
//! the ACL judges the name that is acted on.
//!
//! Must not know about mounts, tables or tokens: it only rewrites a string.

use super::error::ApiError;

/// Paths whose last segment is a name the store keeps in lowercase (Vault's ACL policy
/// names): `sys/policies/acl/Admin` writes `admin`, so the ACL must see `admin`.
const LOWERCASED_NAME_PREFIXES: &[&str] = &["sys/policies/acl/", "sys/policy/"];

/// The canonical form of `raw`, the request path after `/v1/` as it arrived (still
/// percent-encoded).
pub fn canonical_path(raw: &str) -> Result<String, ApiError> {
    let decoded = percent_decode(raw)?;
    if let Some(bad) = decoded.chars().find(|c| c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "invalid request path: it contains the control character {:?}",
            bad
        )));
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => continue,
            ".." => {
                return Err(ApiError::bad_request(
                    "invalid request path: '..' segments are not allowed; name the path directly",
                ));
            }
            other => segments.push(other),
        }
    }
    let mut path = segments.join("/");
    for prefix in LOWERCASED_NAME_PREFIXES {
        if let Some(name) = path.strip_prefix(prefix)
            && !name.contains('/')
        {
            path = format!("{prefix}{}", name.to_ascii_lowercase());
            break;
        }
    }
    Ok(path)
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(raw: &str) -> Result<String, ApiError> {
    if !raw.contains('%') {
        return Ok(raw.to_string());
    }
    let malformed = || {
        ApiError::bad_request(
            "invalid request path: a '%' must be followed by two hexadecimal digits",
        )
    };
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let high = bytes.get(index + 1).and_then(|b| (*b as char).to_digit(16));
            let low = bytes.get(index + 2).and_then(|b| (*b as char).to_digit(16));
            match (high, low) {
                (Some(high), Some(low)) => decoded.push((high * 16 + low) as u8),
                _ => return Err(malformed()),
            }
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| {
        ApiError::bad_request("invalid request path: its percent escapes do not decode to UTF-8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        canonical_path(raw).unwrap_or_else(|error| panic!("{raw}: {error}"))
    }

    #[test]
    fn every_spelling_of_a_path_is_one_path() {
        let expected = "os/hosts/h1/accounts/mgmt-user/creds";
        for spelling in [
            "os/hosts/h1/accounts/mgmt-user/creds",
            "os//hosts/h1/accounts/mgmt-user/creds",
            "os///hosts/h1/accounts/mgmt-user/creds",
            "/os/hosts/h1/accounts/mgmt-user/creds",
            "os/./hosts/h1/accounts/mgmt-user/creds",
            "os/hosts/h1/accounts/mgmt-user/creds/",
            "os/hosts/h1/accounts/mgmt-user/creds//",
            "os%2Fhosts%2fh1/accounts/mgmt-user/creds",
            "os/%2E/hosts/h1/accounts/mgmt-user/creds",
            "os/hosts/h1/accounts/%6dgmt-user/creds",
            "os/hosts/h1/accounts/mgmt-user/creds/%2e/",
        ] {
            assert_eq!(canonical(spelling), expected, "{spelling}");
        }
    }

    #[test]
    fn dot_dot_control_characters_and_bad_escapes_are_refused() {
        for bad in [
            "os/hosts/../sys/mounts",
            "os/hosts/%2E%2E/x",
            "os/hosts/h1%00/creds",
            "os/hosts/h1%0A",
            "os/hosts/%zz",
            "os/hosts/%4",
            "os/hosts/%ff%fe",
        ] {
            let error = canonical_path(bad).expect_err(bad);
            assert_eq!(error.status.as_u16(), 400, "{bad}");
            assert!(error.message.starts_with("invalid request path"), "{bad}");
        }
    }

    #[test]
    fn the_case_of_a_mount_is_kept_and_policy_names_are_folded() {
        assert_eq!(canonical("OS/hosts/h1"), "OS/hosts/h1");
        assert_eq!(
            canonical("sys/policies/acl/Admin"),
            "sys/policies/acl/admin"
        );
        assert_eq!(canonical("sys/policy/ADMIN/"), "sys/policy/admin");
        assert_eq!(
            canonical("sys/policies/password/Strong"),
            "sys/policies/password/Strong"
        );
    }
}
