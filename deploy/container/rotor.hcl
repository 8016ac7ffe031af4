# The controller's configuration in the container image (deploy/container/Dockerfile).
# The store and its CA certificate live in the volume at /var/lib/rotor; the seal key in its
# own volume at /etc/rotor/seal, so the two can be backed up apart.
storage_path  = "/var/lib/rotor/rotor.redb"
seal_key_file = "/etc/rotor/seal/seal.key"
ca_cert_file  = "/var/lib/rotor/ca.pem"

listener "tcp" {
  address = "0.0.0.0:8200"
  tls_san = ["controller", "localhost"]
}

agent_listener {
  address           = "0.0.0.0:8201"
  advertise_address = "controller:8201"
}

log_format = "json"
