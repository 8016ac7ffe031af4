# Example controller configuration (rotor server -config /etc/rotor/rotor.hcl).
storage_path  = "/var/lib/rotor/rotor.redb"
seal_key_file = "/etc/rotor/seal.key"   # 0600, created by `rotor operator init`; back it up apart from the store
ca_cert_file  = "/var/lib/rotor/ca.pem"  # clients trust this (ROTOR_CACERT)

listener "tcp" {
  address = "0.0.0.0:8200"
  tls_san = ["rotor.example.com"]
}

agent_listener {
  address           = "0.0.0.0:8201"
  advertise_address = "rotor.example.com:8201"
  # max_jobs_per_agent = 32   # jobs one agent runs at once; more wait in the site's queue
  # max_jobs_per_host  = 1    # jobs touching one host at once
}

log_format = "json"
