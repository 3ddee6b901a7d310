// Package probe actively fingerprints TLS servers.
//
// Engine is the prober the daemon uses: per target it runs, one after the
// other, JARM (10 connections), one ordinary handshake for the certificate
// and the HTTP Server header (1 connection), and ATSF (10 connections). The
// JARM type remains usable alone.
//
// # JARM
//
// JARM is implemented bit-identically to the reference jarm.py
// (docs/JARM.md is the contract; testdata/jarm holds the reference's
// vectors). The ClientHellos are hand-built bytes (BuildJARMProbes), the
// answer is read at fixed offsets (ParseJARMAnswer) and hashed
// (JARMHash). Quirks that are replicated on purpose, because public JARM
// lists are made with the reference:
//
//   - a 32-byte random session id in every probe, so the cipher offset
//     depends on the length byte the server echoes at offset 43;
//   - record version 0301 on the TLS 1.3 probes; probe 6 ("middle_out") in
//     forward cipher order; "extension order" only reverses the ALPN and
//     supported_versions lists; key_share in every probe, its GREASE share a
//     1-byte key of a group not offered; max_fragment_length offered;
//   - server_name is the target string verbatim (an IP literal by default),
//     its length fields counted in code points as Python's len() does;
//   - one read of at most 1484 bytes per probe, no record reassembly; a
//     failing shutdown(SHUT_RDWR) after the read drops the answer;
//   - the parser follows Python's clamped slices: a short header area gives
//     "cipher|version||", a truncated extension list, a zero-length or
//     non-UTF-8 ALPN give "|||"; the 0x0b, 0eac0b and absolute-offset 0ff00b
//     checks; legacy_version as the version; HRR parsed as a ServerHello;
//     ALPN = first 0010 extension minus 3 bytes;
//   - the hash: unknown ciphers code 46, version char "abcdef"[digit 4]
//     (Python's int(), Unicode digits included), no separators in the
//     SHA-256 input, 62 zeros only for ten "|||".
//
// One deliberate difference (docs/JARM.md §1.3): the x25519 key share is a real
// public key derived from the random source instead of 32 random bytes,
// so stacks that reject a key with the top bit set answer deterministically;
// one key per target serves its ten ClientHellos.
// An all-zero scalar is sent as 32 zero bytes, as jarm.py would send them,
// so the zero-random golden vectors still match.
//
// # Status mapping of (*JARM).Probe
//
//   - any connect/send/recv timeout, the hard per-target deadline or ctx
//     cancellation: StatusTimeout, JARM = ZeroJARM, JARMRaw = ten "|||";
//     the remaining probes are not sent (jarm.py aborts the same way);
//   - at least one probe parsed as a ServerHello: StatusOK;
//   - otherwise, every connect failed (refused, unreachable): StatusRefused;
//   - otherwise, some answer was neither a TLS alert nor a TLS handshake
//     record: StatusNotTLS;
//   - otherwise, some answer was a TLS alert or an unparsable handshake
//     record: StatusHandshakeError;
//   - otherwise, some probe was reset: StatusReset;
//   - otherwise (the server closed without a byte): StatusHandshakeError.
//
// All of these but StatusOK carry ZeroJARM, which is a status and never a
// fingerprint (Result.HasJARM is false). When jarm.py could not hash the raw
// string (a version char it crashes on, or a hostile ALPN containing "|" or
// "," that breaks the field split into fewer than 4 fields or more than ten
// pieces) the status is StatusHandshakeError with an Error saying why and an
// empty JARM. An ALPN with "|" that jarm.py still hashes to 62 characters
// keeps jarm.py's value.
//
// A target without a valid address is StatusRefused with no connection; a
// failure to build the probes (host name over 64 KiB, random source error)
// or a recovered panic of an injected Dialer is StatusHandshakeError; both
// carry ZeroJARM. Conns counts connection attempts, failed connects
// included. Error is a short text whenever the status is not ok.
//
// # ATSF
//
// The Active TLS Stack Fingerprint (docs/ATSF.md; Sosnowski et al.,
// TMA 2022) sends ten fixed ClientHellos. Their definitions are embedded
// unchanged from tumi8/active-tls-fingerprinting (CC BY 4.0) with their
// NOTICE (ATSFNotice). Each ClientHello goes out through utls v1.8.2 as an
// explicit ClientHelloSpec in the reference scanner's wire order, including
// its odd/even "reversed" quirk, the always-present key_share with its
// GREASE dummy share, the psk_modes override and legacy_version as
// defined; after ApplyPreset the GREASE values, cipher list and
// legacy_version are put back, and the first record's version is
// rewritten to min(Version, 0x0303) below utls. All 20 records of
// clienthello_wire_hex.txt (with and without SNI) are reproduced
// structurally: everything but random, session id and key-share public
// keys is byte-identical.
//
// The answer is read one record per Read (recordConn), so only what the
// client processed is recorded. A TLS 1.3 answer ends at the server's
// Finished: once the whole first flight is read and decrypted and holds no
// CertificateRequest, the connection closes there instead of letting utls
// parse the certificate, verify CertificateVerify and send its Finished,
// which no feature depends on (with a CertificateRequest the server's
// reaction to the client's answer may be an alert, a feature, so the
// handshake goes on). The negotiated version is then the ServerHello's.
// A TLS 1.2 handshake runs to the end as before: utls's checks of the
// ServerKeyExchange decide whether a version is reported. The TLS 1.3 handshake traffic secret comes
// from utls's KeyLogWriter and EncryptedExtensions, CertificateRequest and
// Certificate are decrypted here (AES-128/256-GCM, ChaCha20-Poly1305; the
// key exchange itself is utls's: x25519, P-256, P-384, P-521). Without a
// secret the encrypted fields stay empty and the gap is noted in the
// ClientHello's Error, never guessed. The per-ClientHello string and the
// combined string with its sha256 id follow docs/ATSF.md §2; against the three
// reference servers of local_fingerprints.tsv all 40 per-ClientHello
// strings, their negotiated versions and the 4 combined strings match.
//
// Rules measured on the reference scanner (docs/ATSF.md §2.1, §2.2.1), each tied
// to a test against a real loopback server in atsf_rules_test.go:
//
//   - SH-absent: a ServerHello (or HRR) that ends right after the
//     compression method gives an empty SH field; only a present, empty
//     extensions block gives "-" (OpenSSL TLS 1.2-only, GnuTLS, Java and Go
//     without SNI send no block). TestATSFServerHelloExtensionsBlock.
//   - CH2-order: after a HelloRetryRequest with a cookie, the second hello
//     has cookie (44) at its place in the default order (right before
//     key_share) and the odd/even reversal quirk is applied again to the
//     n+1 extensions; without a cookie the order is unchanged. It shows in
//     the fingerprint when the server answers EncryptedExtensions in the
//     client's order, as NSS does. TestATSFSecondHelloOrder.
//   - ALPN-unoffered: a server selecting a protocol the client did not
//     offer does not stop the handshake (the reference's client, a Go 1.16
//     fork, only refuses an ALPN answer to a hello without ALPN), so the
//     Certificate entry's extensions are still recorded (Apache answers
//     random6306 with http/1.1). utls checks the offered list it marshalled;
//     the hook that sees each record first overwrites one entry of that
//     list in place once the selected protocol is known (after the hellos
//     were sent). TestATSFUnofferedALPN.
//
// Remaining differences from the reference scanner, and why:
//
//   - The second ClientHello after a HelloRetryRequest is built by utls: same
//     versions, ciphers and GREASE values, but its key_share holds only the
//     requested share (the GREASE dummy is dropped, as in Go), and its
//     record version is 0x0303. Its extension order follows rule CH2-order
//     below. The cookie is only seen in an HRR that fits one record.
//   - utls's client logic decides where a handshake stops (downgrade canary,
//     forbidden TLS 1.3 extensions, 64 KiB handshake message limit, RSA keys
//     over 8192 bits, certificate parsing by this module's crypto/x509).
//     It may stop at a different point than the reference's older Go fork
//     for unusual servers; none of the reference servers shows a difference.
//     Weak suites are not enabled, because the reference aborts on them too.
//   - Only the first ServerHello, HelloRetryRequest, EncryptedExtensions,
//     CertificateRequest and Certificate of a connection are recorded, and
//     reading ends where the client's handshake ends, as the expected
//     strings show. When only an HRR arrived, version and cipher come from
//     it (the spec is silent). A TLS 1.3 Certificate without entries gives
//     "-".
//   - status_request removal keeps the field structure: "-5." and "_5."
//     are removed with their separator, so "_5.-18." becomes "_18." and a
//     lone "_5._" becomes "__" (the spec only says the substrings go).
//   - Politeness bounds the reference did not have: each connection reads at
//     most EngineConfig.ReadCap bytes (256 KiB) and every read has the I/O
//     timeout, all within the per-target deadline; a slower server yields an
//     empty answer where the reference might have waited. After a
//     ClientHello fails with a connect failure, a timeout or a non-TLS
//     answer the rest are not sent: the combined fingerprint needs all ten.
//   - The preset's Renegotiation level only changes client behaviour after
//     a handshake, which never happens here; it is not applied.
//
// # Certificate and HTTP
//
// One crypto/tls handshake (certificate not verified, every suite offered,
// TLS 1.0 to 1.3, the target's SNI or none) yields the leaf certificate;
// the chain is read from the records (decrypted for TLS 1.3), so a
// certificate crypto/x509 refuses still gives its SHA-256 and SHA-1 with
// CertFacts.ParseError set. No ALPN is offered: a server that answers with
// a protocol the client did not offer (Botan) would make crypto/tls abort
// before the Certificate, and HTTP/1.1 is the default without ALPN. If HTTP
// is selected, GET / goes over the same connection (Host = SNI or the IP,
// ":port" unless 443; GET because openssl s_server -www ignores HEAD) and
// only the answer's head is read: at most 16 KiB, within
// EngineConfig.HTTPWait (1 s, capped by the I/O timeout), so a TLS service
// that is no web server costs at most that wait. The status code and
// Server header are kept.
//
// # STARTTLS
//
// A target whose Target.StartTLS names a protocol (the sensor saw it: Zeek
// conn service, EVE app_proto), or whose port EngineConfig.StartTLSPorts
// maps (default: 21 ftp, 25 and 587 smtp, 110 pop3, 143 imap, 389 ldap,
// 5222 xmpp-client, 5269 xmpp-server, 5432 postgres), gets every
// connection of every kind upgraded first: a Dialer wrapper runs the
// protocol's exchange after connect (SMTP EHLO/STARTTLS, IMAP STARTTLS,
// POP3 STLS, FTP AUTH TLS, XMPP <starttls/>, the LDAP StartTLS extended
// operation, PostgreSQL SSLRequest), reading one byte at a time within the
// I/O timeout and 64 KiB, so nothing after the go-ahead is swallowed.
// Result.StartTLS records the protocol. A service that refuses the upgrade
// or answers something else is not_tls. The HTTP kind still sends its GET
// (a mail server answers it with an error line at once). The DB keys such
// JARM and ATSF values "PROTOCOL:hex", apart from direct TLS.
//
// # Engine status mapping
//
// Every selected kind gets a stackprint.KindResult with its own status,
// error, connection count and duration; JARM's status is the JARM mapping
// above; ATSF is ok when all ten ClientHellos answered (the combined
// fingerprint exists), partial when some did, else the first failure;
// cert is ok when a leaf certificate was received. The target status is ok
// when every kind is ok, partial when some kind is ok or partial, else the
// status of the first kind. HTTP only counts when it is the only kind: a
// TLS service that is no web server is normal.
//
// Before its first connection a probe takes all the connections its kinds
// need (21 for all kinds) from the destination IP's token bucket
// (EngineConfig.ConnRate per second, ConnBurst at least one target's
// worth). If they are not available within MaxRateWait (1 s) the target is
// rate_limited at once with no connection, every kind "not run": a busy IP
// (many names on one address) never ties up a probe slot, and the daemon
// retries it on a later sighting. A dial beyond EngineConfig.MaxConns is
// budget_exceeded and ends the kind like a timeout (a JARM with missing
// probes is never hashed). After a kind ends refused, not_tls or
// budget_exceeded, or after any connect timed out, the remaining kinds
// are not run and carry that status with "not run" in their error.
// Result.Conns counts real dial attempts.
package probe
