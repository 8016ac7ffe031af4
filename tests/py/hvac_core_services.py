"""Vault's core services as hvac (the Python Vault client) drives them, against `rotor server -dev`:
tokens, policies, leases, audit, and (issue 20) AppRole, userpass and response wrapping.

Run by tests/tests/core_services_hvac.rs, which starts the server, creates the host `web` with
the accounts `app` and `mgmt-root` (their passwords come in ROTOR_APP_PASSWORD and
ROTOR_MGMT_PASSWORD), and afterwards scans the audit log this script enables for every secret
it wrote to ROTOR_SECRETS_OUT.

Environment: ROTOR_ADDR, ROTOR_CACERT, ROTOR_ROOT_TOKEN, ROTOR_AUDIT_FILE, ROTOR_SECRETS_OUT,
ROTOR_APP_PASSWORD, ROTOR_MGMT_PASSWORD. Exits non-zero with the failed check on stderr.
"""

import os
import sys
import time

import hvac
from hvac import exceptions

ADDR = os.environ["ROTOR_ADDR"]
CACERT = os.environ["ROTOR_CACERT"]
ROOT = os.environ["ROTOR_ROOT_TOKEN"]
AUDIT_FILE = os.environ["ROTOR_AUDIT_FILE"]
SECRETS_OUT = os.environ["ROTOR_SECRETS_OUT"]
APP_PASSWORD = os.environ["ROTOR_APP_PASSWORD"]

APPS_POLICY = """
# What an application may do: read the OS engine, never the management accounts.
path "os/*" {
  capabilities = ["read", "list"]
}
path "os/hosts/+/accounts/mgmt-*" {
  capabilities = ["deny"]
}
path "auth/token/create" {
  capabilities = ["update"]
}
"""

APP_CREDS = "os/hosts/web/accounts/app/creds"
MGMT_CREDS = "os/hosts/web/accounts/mgmt-root/creds"

secrets = []


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def client(token):
    return hvac.Client(url=ADDR, token=token, verify=CACERT)


def refused(call, what):
    """The call must be refused with 403 (hvac raises Forbidden)."""
    try:
        call()
    except exceptions.Forbidden:
        print(f"ok: refused: {what}", flush=True)
        return
    raise AssertionError(f"not refused: {what}")


def new_token(creator, **options):
    answer = creator.auth.token.create(**options)
    token = answer["auth"]["client_token"]
    secrets.append(token)
    return token, answer["auth"]


def main():
    root = client(ROOT)
    check(root.is_authenticated(), "the root token authenticates")

    root.sys.enable_audit_device(
        device_type="file", path="file", options={"file_path": AUDIT_FILE}
    )
    check("file/" in root.sys.list_enabled_audit_devices()["data"], "audit device listed")

    # Policies through the legacy sys/policy path hvac uses, and the new one.
    root.sys.create_or_update_policy(name="apps", policy=APPS_POLICY)
    check("apps" in root.sys.list_policies()["data"]["policies"], "policy listed")
    check(
        'os/hosts/+/accounts/mgmt-*' in root.sys.read_policy("apps")["data"]["rules"],
        "policy reads back",
    )
    check(
        root.sys.read_acl_policy("apps")["data"]["policy"].strip() == APPS_POLICY.strip(),
        "policy reads back from sys/policies/acl",
    )

    # A token with the policy reads what it allows and is denied the rest.
    token, auth = new_token(root, policies=["apps"], ttl="1h")
    check(sorted(auth["policies"]) == ["apps", "default"], "token carries apps and default")
    check(auth["lease_duration"] == 3600, "token ttl is 1h")
    app = client(token)
    check(app.is_authenticated(), "the apps token authenticates")
    creds = app.read(APP_CREDS)
    check(creds["data"]["password"] == APP_PASSWORD, "apps token reads the app account's password")
    check("web" in app.list("os/hosts")["data"]["keys"], "apps token lists hosts")
    refused(lambda: app.read(MGMT_CREDS), "apps token reading a mgmt-* account (deny)")
    refused(lambda: app.read("os/hosts/web/accounts/mgmt-root"), "apps token reading mgmt-root itself")
    refused(
        lambda: app.write("os/hosts/web/accounts/app/rotate"),
        "apps token rotating (no update capability)",
    )
    refused(lambda: app.sys.list_mounted_secrets_engines(), "apps token reading sys/mounts")
    refused(
        lambda: app.sys.create_or_update_policy(name="mine", policy='path "*" { capabilities = ["sudo"] }'),
        "apps token writing a policy",
    )
    caps = app.sys.get_capabilities(paths=[MGMT_CREDS, APP_CREDS])["data"]
    check(caps[MGMT_CREDS] == ["deny"], "capabilities-self: deny on mgmt-*")
    check(sorted(caps[APP_CREDS]) == ["list", "read"], "capabilities-self: read, list on app")

    # Accessors: look up without the token's value, then revoke by accessor.
    other, other_auth = new_token(root, policies=["apps"])
    seen = root.auth.token.lookup_accessor(other_auth["accessor"])["data"]
    check(seen["id"] == "" and "apps" in seen["policies"], "lookup-accessor hides the token")
    root.auth.token.revoke_accessor(other_auth["accessor"])
    refused(lambda: client(other).read(APP_CREDS), "token revoked by accessor")

    # A child of the apps token dies with its parent.
    child, _ = new_token(app, policies=["apps"])
    check(client(child).read(APP_CREDS) is not None, "child token reads")
    try:
        app.auth.token.create(policies=["root"])
        raise AssertionError("a non-root token created a root token")
    except exceptions.InvalidRequest:
        print("ok: apps token may not create a root token", flush=True)

    # Renewal of one's own token.
    renewed = app.auth.token.renew_self(increment="2h")
    check(renewed["auth"]["lease_duration"] == 7200, "renew-self extends to 2h")

    root.auth.token.revoke(token)
    check(not app.is_authenticated(), "the revoked token no longer authenticates")
    refused(lambda: app.read(APP_CREDS), "revoked token reading")
    refused(lambda: client(child).read(APP_CREDS), "child of the revoked token reading")

    # A limited-use token works exactly num_uses times.
    limited, _ = new_token(root, policies=["apps"], num_uses=2)
    limited_client = client(limited)
    check(limited_client.read(APP_CREDS) is not None, "limited token: use 1")
    check(limited_client.read(APP_CREDS) is not None, "limited token: use 2")
    refused(lambda: limited_client.read(APP_CREDS), "limited token: use 3")

    # Capabilities of another token, by token and by accessor (sys/capabilities, -accessor).
    probe, probe_auth = new_token(root, policies=["apps"])
    by_token = root.sys.get_capabilities(paths=[MGMT_CREDS], token=probe)["data"]
    check(by_token[MGMT_CREDS] == ["deny"], "sys/capabilities for another token")
    by_accessor = root.sys.get_capabilities(
        paths=[APP_CREDS], accessor=probe_auth["accessor"]
    )["data"]
    check(sorted(by_accessor[APP_CREDS]) == ["list", "read"], "sys/capabilities-accessor")

    # Leases: an SSH OTP is a lease owned by the token that asked for it.
    root.write_data(
        "ssh/roles/otp",
        data={"key_type": "otp", "default_user": "app1", "cidr_list": "192.0.2.0/24"},
    )
    root.sys.create_or_update_policy(
        name="otp", policy='path "ssh/creds/otp" { capabilities = ["update"] }'
    )
    holder, _ = new_token(root, policies=["otp"])
    issued = client(holder).secrets.ssh.generate_ssh_credentials(name="otp", ip="192.0.2.7")
    secrets.append(issued["data"]["key"])
    lease_id = issued["lease_id"]
    check(lease_id.startswith("ssh/creds/otp/"), "the OTP comes with a lease")
    check(root.sys.read_lease(lease_id)["data"]["id"] == lease_id, "sys/leases/lookup finds it")
    listed = root.sys.list_leases("ssh/creds/otp/")["data"]["keys"]
    check(lease_id.rsplit("/", 1)[1] in listed, "sys/leases/lookup/PREFIX lists it")
    try:
        root.sys.renew_lease(lease_id)
        raise AssertionError("an OTP lease was renewed")
    except exceptions.InvalidRequest as error:
        check("not renewable" in str(error), "an OTP lease is not renewable")
    root.auth.token.revoke(holder)
    deadline = time.monotonic() + 10
    while True:
        try:
            root.sys.read_lease(lease_id)
        except exceptions.InvalidRequest:
            print("ok: revoking the token revoked its lease", flush=True)
            break
        if time.monotonic() > deadline:
            raise AssertionError("the revoked token's lease still exists after 10s")
        time.sleep(0.2)
    other = root.secrets.ssh.generate_ssh_credentials(name="otp", ip="192.0.2.8")
    secrets.append(other["data"]["key"])
    root.sys.revoke_prefix("ssh/creds/otp")
    try:
        root.sys.read_lease(other["lease_id"])
        raise AssertionError("revoke-prefix left a lease")
    except exceptions.InvalidRequest:
        print("ok: revoke-prefix revoked the lease", flush=True)

    auth_methods(root)

    # The audit log holds the HMAC sys/audit-hash computes, never the value.
    hashed = root.sys.calculate_hash(path="file", input_to_hash=APP_PASSWORD)["data"]["hash"]
    with open(AUDIT_FILE, encoding="utf-8") as log:
        text = log.read()
    check(hashed in text, "the password's audit-hash appears in the audit log")
    check(APP_PASSWORD not in text, "the password does not appear in clear")

    with open(SECRETS_OUT, "w", encoding="utf-8") as out:
        out.write("\n".join(secrets) + "\n")
    print("ALL CHECKS PASSED", flush=True)


def lease_gone(root, lease_id, what):
    deadline = time.monotonic() + 10
    while True:
        try:
            root.sys.read_lease(lease_id)
        except exceptions.InvalidRequest:
            print(f"ok: {what}", flush=True)
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after 10s: {what}")
        time.sleep(0.2)


def auth_methods(root):
    """Issue 20: AppRole with a wrapped secret ID, userpass, and sys.wrap/unwrap."""
    root.sys.enable_auth_method("approle")
    root.sys.enable_auth_method("userpass")
    methods = root.sys.list_auth_methods()["data"]
    check("approle/" in methods and "userpass/" in methods, "sys/auth lists the enabled methods")
    root.auth.approle.create_or_update_approle(
        "web", token_policies=["apps", "otp"], token_ttl="1h", secret_id_num_uses=5
    )
    role_id = root.auth.approle.read_role_id("web")["data"]["role_id"]
    wrapped = root.auth.approle.generate_secret_id("web", wrap_ttl="60s")
    check(wrapped["data"] is None and wrapped["wrap_info"]["ttl"] == 60, "the secret ID comes wrapped")
    wrapping_token = wrapped["wrap_info"]["token"]
    secrets.append(wrapping_token)
    # The application holds only the wrapping token, and unwraps with it.
    secret_id = hvac.Client(url=ADDR, token=wrapping_token, verify=CACERT).sys.unwrap()["data"]["secret_id"]
    secrets.append(secret_id)
    try:
        root.sys.unwrap(wrapping_token)
        raise AssertionError("a wrapping token was unwrapped twice")
    except exceptions.InvalidRequest as error:
        check("wrapping token is not valid or does not exist" in str(error), "a second unwrap is refused")

    app = hvac.Client(url=ADDR, verify=CACERT)
    login = app.auth.approle.login(role_id=role_id, secret_id=secret_id)
    check(sorted(login["auth"]["policies"]) == ["apps", "default", "otp"], "AppRole login carries the role's policies")
    secrets.append(app.token)
    check(app.read(APP_CREDS)["data"]["password"] == APP_PASSWORD, "the AppRole token reads the app account's creds")
    refused(lambda: app.read(MGMT_CREDS), "the AppRole token reads no management account")
    try:
        hvac.Client(url=ADDR, verify=CACERT).auth.approle.login(role_id=role_id, secret_id="not-it")
        raise AssertionError("a wrong secret ID logged in")
    except exceptions.InvalidRequest as error:
        check("invalid role or secret ID" in str(error), "a wrong secret ID is refused")
    # The secret ID as the operator sees it: by accessor, uses left, then destroyed.
    accessors = root.auth.approle.list_secret_id_accessors("web")["data"]["keys"]
    info = root.auth.approle.read_secret_id("web", secret_id)["data"]
    check(info["secret_id_accessor"] in accessors, "the secret ID is listed by its accessor")
    check(info["secret_id_num_uses"] == 4, "one of the secret ID's five uses is spent")
    check("secret_id" not in info, "a lookup never shows the secret ID")
    root.auth.approle.destroy_secret_id_accessor("web", info["secret_id_accessor"])
    try:
        hvac.Client(url=ADDR, verify=CACERT).auth.approle.login(role_id=role_id, secret_id=secret_id)
        raise AssertionError("a destroyed secret ID logged in")
    except exceptions.InvalidRequest:
        print("ok: a destroyed secret ID logs in no more", flush=True)
    # A credential issued to the AppRole token goes when the token is revoked.
    issued = app.secrets.ssh.generate_ssh_credentials(name="otp", ip="192.0.2.9")
    secrets.append(issued["data"]["key"])
    root.auth.token.revoke(app.token)
    lease_gone(root, issued["lease_id"], "revoking the AppRole token revoked its OTP lease")

    alice_password = "alice-Pa55-2f8e4b"
    secrets.append(alice_password)
    root.auth.userpass.create_or_update_user("alice", password=alice_password, policies=["apps"])
    check(root.auth.userpass.list_user()["data"]["keys"] == ["alice"], "userpass lists its users")
    person = hvac.Client(url=ADDR, verify=CACERT)
    person.auth.userpass.login("alice", alice_password)
    secrets.append(person.token)
    check(person.read(APP_CREDS)["data"]["password"] == APP_PASSWORD, "alice reads what her policy allows")
    refused(lambda: person.read(MGMT_CREDS), "alice reads nothing more")
    try:
        hvac.Client(url=ADDR, verify=CACERT).auth.userpass.login("alice", "wrong")
        raise AssertionError("a wrong password logged in")
    except exceptions.InvalidRequest as error:
        check("invalid username or password" in str(error), "a wrong password is refused")

    data = root.sys.wrap(payload={"handover": "wrapped-value-91c3"}, ttl=60)
    token = data["wrap_info"]["token"]
    secrets.append(token)
    check(root.sys.unwrap(token)["data"] == {"handover": "wrapped-value-91c3"}, "sys.wrap then sys.unwrap")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - report any failure with its type
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
