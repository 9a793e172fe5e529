//! TLS for ldaps://: the trust anchors of `ldap_ca_cert`, or none at all with `skip_certificate_verify`.

/// The TLS settings for ldaps:// (and StartTLS, should it be added): the CA file as the only trust anchor when
/// given, no verification at all with `skip_certificate_verify`.
pub(super) fn tls_connector(ca_file: &str, skip_verify: bool) -> Result<Option<native_tls::TlsConnector>, String> {
    if ca_file.is_empty() && !skip_verify {
        return Ok(None);
    }
    let mut builder = native_tls::TlsConnector::builder();
    if !ca_file.is_empty() {
        let pem = std::fs::read_to_string(ca_file).map_err(|e| format!("ldap_ca_cert {ca_file}: {e}"))?;
        let certs = pem_blocks(&pem);
        if certs.is_empty() {
            return Err(format!("ldap_ca_cert {ca_file}: no PEM certificate found"));
        }
        for block in certs {
            let cert = native_tls::Certificate::from_pem(block.as_bytes())
                .map_err(|e| format!("ldap_ca_cert {ca_file}: {e}"))?;
            builder.add_root_certificate(cert);
        }
        builder.disable_built_in_roots(true);
    }
    if skip_verify {
        builder.danger_accept_invalid_certs(true);
        builder.danger_accept_invalid_hostnames(true);
    }
    builder.build().map(Some).map_err(|e| format!("TLS setup: {e}"))
}

/// Each `CERTIFICATE` block of a PEM bundle.
fn pem_blocks(pem: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else { break };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundles_split_into_certificates() {
        let one = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let bundle = format!("junk\n{one}\n{one}\n");
        assert_eq!(pem_blocks(&bundle).len(), 2);
        assert!(pem_blocks("nothing").is_empty());
    }
}
